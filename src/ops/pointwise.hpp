#pragma once
// Internal: builders for elementwise ops. An op supplies its forward value
// and its local derivative as generic lambdas; the builder runs the loops,
// records the node and applies the chain rule. The op's whole story then
// fits in a few lines of its own file.
//
// The derivative is written once and instantiated twice: on numbers, in the
// fused loop of a plain backward, and on Tensors, in a create-graph
// backward, where it is recorded and so differentiable again. It must
// therefore be generic arithmetic with unqualified calls (`using std::exp;
// return exp(x);` finds tapegrad::exp for Tensors). A derivative with
// elementwise branches (relu's step) is wrapped in piecewise(): evaluated
// as numbers even in a create-graph pass, and recorded as g * mask.
#include <cmath>
#include <type_traits>

#include "core/dispatch.hpp"
#include "ops/strided.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad::detail {

// Sums a gradient back to the shape of the input it belongs to, undoing
// broadcasting (sum_to, differentiable). The one helper every broadcasting
// op uses.
Tensor unbroadcast(const Tensor& grad, const Shape& shape);

// A derivative that is piecewise constant (relu's step, abs's sign, a
// clamp's window): its own derivative is zero almost everywhere, so a
// create-graph pass records g * mask with the mask as a constant. Only for
// such derivatives: marking a smooth one would silently drop its second
// derivative.
template <class F>
struct Piecewise {
  F f;
  template <class... Args>
  auto operator()(Args... args) const {
    return f(args...);
  }
};
template <class F>
Piecewise<F> piecewise(F f) {
  return {f};
}
template <class F>
inline constexpr bool is_piecewise = false;
template <class F>
inline constexpr bool is_piecewise<Piecewise<F>> = true;

// A derivative whose number form has branches for accuracy (a Taylor series
// near a cancellation) and whose Tensor form is a separate expression.
template <class OnNumbers, class OnTensors>
struct WithTensorForm {
  OnNumbers numbers;
  OnTensors tensors;
  template <class... Args>
  auto operator()(Args... args) const {
    return numbers(args...);
  }
};
template <class OnNumbers, class OnTensors>
WithTensorForm<OnNumbers, OnTensors> with_tensor_form(OnNumbers numbers, OnTensors tensors) {
  return {numbers, tensors};
}

// A derivative with no Tensor form yet: a create-graph pass through the op
// throws "<op>: double backward is not implemented" (listed in the README).
template <class F>
struct FirstOrderOnly {
  F first_order;
  template <class... Args>
  auto operator()(Args... args) const {
    return first_order(args...);
  }
};
template <class F>
FirstOrderOnly<F> first_order_only(F f) {
  return {f};
}

// The derivative on Tensors, for a create-graph pass: a Tensor, or a number
// where the derivative is a constant (add's 1).
template <class D, class... Args>
auto derivative_on_tensors(const D& derivative, const char* op, const Args&... args) {
  if constexpr (requires { derivative.tensors; }) {
    return derivative.tensors(args...);
  } else if constexpr (requires { derivative.first_order; }) {
    throw_runtime(op, "double backward is not implemented");
    return Tensor();
  } else {
    return derivative(args...);
  }
}

// y = f(x); dx = dy * df(x, y).
template <class Forward, class Derivative>
Tensor unary_pointwise(const Tensor& x, OpInfo info, Forward forward, Derivative derivative) {
  check_floating(info.name, x);
  Tensor y = empty(x.shape(), x.dtype(), info.name);
  dispatch_float(x.dtype(), info.name, [&](auto tag) {
    using T = decltype(tag);
    const T* in = x.data<T>();
    T* out = y.data<T>();
    const std::int64_t n = x.numel();
    for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(forward(in[i]));
  });
  if (!any_requires_grad({&x})) return unrecorded(info, y, {&x});
  return record_op(info, y, {&x},
                   [xs = saved(x), ys = saved(y), derivative, name = info.name](const Tensor& g, InputGrads& grads) {
                     if constexpr (!is_piecewise<Derivative>) {
                       if (grads.create_graph()) {
                         grads.add(0, g * derivative_on_tensors(derivative, name, xs, grads.output(ys)));
                         return;
                       }
                     }
                     // With create_graph, a piecewise derivative's mask (g = 1), then g * mask recorded.
                     const bool mask_only = grads.create_graph();
                     Tensor gx = empty(xs.shape(), xs.dtype());
                     dispatch_float(xs.dtype(), name, [&](auto tag) {
                       using T = decltype(tag);
                       const T* xv = xs.data<T>();
                       const T* yv = ys.data<T>();
                       const T* gv = mask_only ? nullptr : g.data<T>();
                       T* out = gx.data<T>();
                       const std::int64_t n = xs.numel();
                       for (std::int64_t i = 0; i < n; ++i) {
                         const T local = static_cast<T>(derivative(xv[i], yv[i]));
                         out[i] = mask_only ? local : gv[i] * local;
                       }
                     });
                     grads.add(0, mask_only ? g * gx : std::move(gx));
                   });
}

// Visits (offset into a, offset into b, offset into out) over the
// broadcast output shape, with fast paths for equal shapes and scalars.
template <class F>
void for_each_broadcast(const Shape& a, const Shape& b, const Shape& out, F&& f) {
  const std::int64_t n = out.numel();
  if (a == out && b == out) {
    for (std::int64_t i = 0; i < n; ++i) f(i, i, i);
  } else if (a == out && b.numel() == 1) {
    for (std::int64_t i = 0; i < n; ++i) f(i, 0, i);
  } else if (b == out && a.numel() == 1) {
    for (std::int64_t i = 0; i < n; ++i) f(0, i, i);
  } else {
    for_each_strided<3>(out, {broadcast_strides(a, out), broadcast_strides(b, out), out.strides()},
                        [&](const std::array<std::int64_t, 3>& o) { f(o[0], o[1], o[2]); });
  }
}

// y = f(a, b) with NumPy broadcasting;
// da = unbroadcast(dy * df_da(a, b, y)), db = unbroadcast(dy * df_db(a, b, y)).
template <class Forward, class DerivA, class DerivB>
Tensor binary_pointwise(const Tensor& a, const Tensor& b, OpInfo info, Forward forward, DerivA deriv_a,
                        DerivB deriv_b) {
  check_same_dtype(info.name, a, b);
  check_floating(info.name, a);
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), info.name);
  Tensor y = empty(out_shape, a.dtype(), info.name);
  dispatch_float(a.dtype(), info.name, [&](auto tag) {
    using T = decltype(tag);
    const T* av = a.data<T>();
    const T* bv = b.data<T>();
    T* out = y.data<T>();
    for_each_broadcast(a.shape(), b.shape(), out_shape,
                       [&](std::int64_t ia, std::int64_t ib, std::int64_t io) { out[io] = static_cast<T>(forward(av[ia], bv[ib])); });
  });
  if (!any_requires_grad({&a, &b})) return unrecorded(info, y, {&a, &b});
  return record_op(
      info, y, {&a, &b},
      [as = saved(a), bs = saved(b), ys = saved(y), deriv_a, deriv_b, name = info.name](const Tensor& g,
                                                                                        InputGrads& grads) {
        auto input_grad = [&](auto derivative, const Shape& input_shape) {
          if constexpr (!is_piecewise<decltype(derivative)>) {
            if (grads.create_graph()) {
              return unbroadcast(g * derivative_on_tensors(derivative, name, as, bs, grads.output(ys)), input_shape);
            }
          }
          const bool mask_only = grads.create_graph();
          Tensor full_grad = empty(ys.shape(), ys.dtype());
          dispatch_float(ys.dtype(), name, [&](auto tag) {
            using T = decltype(tag);
            const T* av = as.data<T>();
            const T* bv = bs.data<T>();
            const T* yv = ys.data<T>();
            const T* gv = mask_only ? nullptr : g.data<T>();
            T* out = full_grad.data<T>();
            for_each_broadcast(as.shape(), bs.shape(), ys.shape(), [&](std::int64_t ia, std::int64_t ib, std::int64_t io) {
              const T local = static_cast<T>(derivative(av[ia], bv[ib], yv[io]));
              out[io] = mask_only ? local : gv[io] * local;
            });
          });
          return unbroadcast(mask_only ? g * full_grad : full_grad, input_shape);
        };
        if (grads.needs(0)) grads.add(0, input_grad(deriv_a, as.shape()));
        if (grads.needs(1)) grads.add(1, input_grad(deriv_b, bs.shape()));
      });
}

// Same-dtype 0-d tensor for tensor-scalar arithmetic.
inline Tensor scalar_like(double value, const Tensor& like) {
  check_defined("scalar", like);
  return scalar(value, like.dtype());
}

}  // namespace tapegrad::detail
