#include "core/dispatch.hpp"
#include "ops/pointwise.hpp"
#include "ops/strided.hpp"

namespace tapegrad::detail {

Tensor unbroadcast(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  // Each gradient element adds into the input element it was broadcast
  // from: the input's strides are 0 along stretched axes.
  Tensor out = zeros(shape, grad.dtype());
  dispatch_float(grad.dtype(), "unbroadcast", [&](auto tag) {
    using T = decltype(tag);
    const T* g = grad.data<T>();
    T* o = out.data<T>();
    for_each_strided<2>(grad.shape(), {grad.shape().strides(), broadcast_strides(shape, grad.shape())},
                        [&](const std::array<std::int64_t, 2>& at) { o[at[1]] += g[at[0]]; });
  });
  return out;
}

}  // namespace tapegrad::detail
