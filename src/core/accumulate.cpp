#include "core/accumulate.hpp"

#include "core/dispatch.hpp"
#include "tapegrad/storage.hpp"

namespace tapegrad::detail {

void accumulate_into(Tensor& slot, Tensor gradient) {
  if (!slot.defined()) {
    slot = std::move(gradient);
    return;
  }
  const bool sole_owner = slot.impl_ptr().use_count() == 1 && slot.impl()->storage.use_count() == 1;
  Tensor target = sole_owner ? slot : empty(slot.shape(), slot.dtype());
  dispatch_float(slot.dtype(), "accumulate_grad", [&](auto tag) {
    using T = decltype(tag);
    const T* a = slot.data<T>();
    const T* b = gradient.data<T>();
    T* out = target.data<T>();
    const std::int64_t n = slot.numel();
    for (std::int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
  });
  slot = std::move(target);
}

}  // namespace tapegrad::detail
