// broadcast_to and sum_to: the dual pair behind NumPy broadcasting. Each is
// the other's backward, so gradients through broadcasting are
// differentiable to any order, and unbroadcast (every broadcasting op's
// gradient helper) is just sum_to.
#include <algorithm>

#include "core/dispatch.hpp"
#include "ops/pointwise.hpp"
#include "ops/strided.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad {

namespace {

// True when x's shape broadcasts to `shape` (NumPy rules, x on the right).
bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.rank() > to.rank()) return false;
  for (std::size_t i = 0; i < from.rank(); ++i) {
    const std::int64_t f = from[from.rank() - 1 - i];
    const std::int64_t t = to[to.rank() - 1 - i];
    if (f != t && f != 1) return false;
  }
  return true;
}

}  // namespace

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  detail::check_defined("broadcast_to", x);
  if (!broadcasts_to(x.shape(), shape)) {
    throw_invalid("broadcast_to", "cannot broadcast ", x.shape().str(), " to ", shape.str());
  }
  if (x.shape() == shape) return x;
  Tensor y = empty(shape, x.dtype(), "broadcast_to");
  detail::dispatch_any(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch(
        "broadcast_to",
        [shape, strides = std::array<Shape, 2>{shape.strides(), detail::broadcast_strides(x.shape(), shape)}](
            const T* in, T* out) {
          detail::for_each_strided<2>(shape, strides,
                                      [&](const std::array<std::int64_t, 2>& at) { out[at[0]] = in[at[1]]; });
        },
        x, y);
  });
  return record_op({"broadcast_to", "y = x repeated along stretched axes; dx = sum_to(dy, x's shape)"}, y, {&x},
                   [in_shape = x.shape()](const Tensor& g, InputGrads& grads) { grads.add(0, sum_to(g, in_shape)); });
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  detail::check_defined("sum_to", x);
  if (!broadcasts_to(shape, x.shape())) {
    throw_invalid("sum_to", "cannot sum ", x.shape().str(), " to ", shape.str(), " (", shape.str(),
                  " must broadcast to it)");
  }
  if (x.shape() == shape) return x;
  detail::check_floating("sum_to", x);
  // Each element adds into the element of `shape` it was broadcast from:
  // strides are 0 along stretched axes.
  Tensor y = empty(shape, x.dtype(), "sum_to");
  detail::dispatch_float(x.dtype(), "sum_to", [&](auto tag) {
    using T = decltype(tag);
    launch(
        "sum_to",
        [in_shape = x.shape(), n = shape.numel(),
         strides = std::array<Shape, 2>{x.shape().strides(), detail::broadcast_strides(shape, x.shape())}](const T* in,
                                                                                                           T* out) {
          std::fill_n(out, n, T(0));
          detail::for_each_strided<2>(in_shape, strides,
                                      [&](const std::array<std::int64_t, 2>& at) { out[at[1]] += in[at[0]]; });
        },
        x, y);
  });
  return record_op(
      {"sum_to", "y = x summed over broadcast axes; dx = broadcast_to(dy, x's shape)"}, y, {&x},
      [in_shape = x.shape()](const Tensor& g, InputGrads& grads) { grads.add(0, broadcast_to(g, in_shape)); });
}

namespace detail {

Tensor unbroadcast(const Tensor& grad, const Shape& shape) { return sum_to(grad, shape); }

Tensor scaled_gradient(const Tensor& g, double c) {
  if (c == 1) return g;
  if (c == 0) return zeros_like(g);  // flat ops (sign, step): zeros even where g is NaN, as PyTorch
  if (c == -1) return neg(g);
  return g * c;
}

}  // namespace detail

}  // namespace tapegrad
