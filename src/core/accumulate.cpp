#include "core/accumulate.hpp"

#include "core/capture_hooks.hpp"
#include "core/dispatch.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/storage.hpp"

namespace tapegrad::detail {

namespace {

// out = a + b elementwise; `out` may be `a`'s buffer.
void add_into(const Tensor& a, const Tensor& b, Tensor& out) {
  dispatch_float(a.dtype(), "accumulate_grad", [&](auto tag) {
    using T = decltype(tag);
    launch(
        "accumulate_grad",
        [n = a.numel()](const T* av, const T* bv, T* ov) {
          for (std::int64_t i = 0; i < n; ++i) ov[i] = av[i] + bv[i];
        },
        a, b, out);
  });
}

}  // namespace

void accumulate_into(Tensor& slot, Tensor gradient) {
  if (!slot.defined()) {
    slot = std::move(gradient);
    return;
  }
  if (grad_enabled() && (slot.requires_grad() || gradient.requires_grad())) {
    // A create-graph pass: the sum is part of the gradient's graph, so it is
    // a recorded op of its own (and never written in place).
    Tensor sum = empty(slot.shape(), slot.dtype(), "accumulate_grad");
    add_into(slot, gradient, sum);
    slot = record_op({"accumulate_grad", "y = a + b (gradient contributions summed)"}, sum, {&slot, &gradient},
                     [](const Tensor& g, InputGrads& grads) {
                       grads.add(0, g);
                       grads.add(1, g);
                     });
    return;
  }
  // A slot on the tape (a gradient from a create-graph pass) may be saved by
  // the ops that read it: never overwrite it.
  const bool sole_owner =
      slot.impl_ptr().use_count() == 1 && owners_besides_capture(slot.impl()->storage) == 1 && !slot.requires_grad();
  Tensor target = sole_owner ? slot : empty(slot.shape(), slot.dtype(), "accumulate_grad");
  add_into(slot, gradient, target);
  slot = std::move(target);
}

}  // namespace tapegrad::detail
