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
#include <tuple>
#include <type_traits>

#include "core/dispatch.hpp"
#include "ops/strided.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad::detail {

// Sums a gradient back to the shape of the input it belongs to, undoing
// broadcasting (sum_to, differentiable). The one helper every broadcasting
// op uses.
Tensor unbroadcast(const Tensor& grad, const Shape& shape);

// The vocabulary ops describe their local derivatives with.
namespace local_derivatives {

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

// The number form of a derivative that carries a second form beside it:
// what the fused first-order loop calls.
template <class OnNumbers>
struct NumberForm {
  OnNumbers numbers;
  template <class... Args>
  auto operator()(Args... args) const {
    return numbers(args...);
  }
};

// A derivative whose number form has branches for accuracy (a Taylor series
// near a cancellation) and whose Tensor form is a separate expression.
template <class OnNumbers, class OnTensors>
struct WithTensorForm : NumberForm<OnNumbers> {
  OnTensors tensors;
};
template <class OnNumbers, class OnTensors>
WithTensorForm<OnNumbers, OnTensors> with_tensor_form(OnNumbers numbers, OnTensors tensors) {
  return {{numbers}, tensors};
}

// A derivative whose create-graph product g · f'(x) is a fused op of its
// own, backward_op(g, <what the mask reads>) (tanh_backward): one recorded
// node and one loop instead of the three ops of g * (1 - y * y), in both the
// create-graph backward and the backward of that backward.
template <class OnNumbers, class BackwardOp>
struct WithBackwardOp : NumberForm<OnNumbers> {
  BackwardOp backward_op;
};
template <class OnNumbers, class BackwardOp>
WithBackwardOp<OnNumbers, BackwardOp> with_backward_op(OnNumbers numbers, BackwardOp backward_op) {
  return {{numbers}, backward_op};
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

// What a local derivative reads, so that the node saves only that: the
// input (or, of a binary op, input a and input b) and the output. A
// derivative wrapped in reads<mask>() is called with just those, in that
// order (tanh: reads<kOutput>([](auto y) { return 1 - y * y; })); an
// unwrapped one reads everything. Reading nothing means a constant (add's 1,
// neg's -1): the gradient passes through, scaled when the constant is not 1.
inline constexpr unsigned kNothing = 0, kInput = 1, kInputA = 1, kInputB = 2, kOutput = 4,
                          kEverything = kInputA | kInputB | kOutput;
template <unsigned Mask, class F>
struct Reads {
  F f;
};
template <unsigned Mask, class F>
Reads<Mask, F> reads(F f) {
  return {f};
}
template <class D>
struct ReadsOf {
  static constexpr unsigned mask = kEverything;
  static const D& inner(const D& d) { return d; }
};
template <unsigned Mask, class F>
struct ReadsOf<Reads<Mask, F>> {
  static constexpr unsigned mask = Mask;
  static const F& inner(const Reads<Mask, F>& d) { return d.f; }
};

}  // namespace local_derivatives
using namespace local_derivatives;

// Calls a local derivative with the arguments its mask names, in the order
// (a, b, y); a unary op passes its input as a, and nothing as b.
template <unsigned Mask, class F, class A, class B, class Y>
auto call_reading(const F& f, const A& a, const B& b, const Y& y) {
  auto pick = [](auto bit, const auto& value) {
    if constexpr ((Mask & decltype(bit)::value) != 0) {
      return std::tuple<const std::decay_t<decltype(value)>&>(value);
    } else {
      return std::tuple<>();
    }
  };
  return std::apply(f, std::tuple_cat(pick(std::integral_constant<unsigned, kInputA>{}, a),
                                      pick(std::integral_constant<unsigned, kInputB>{}, b),
                                      pick(std::integral_constant<unsigned, kOutput>{}, y)));
}

// The derivative on Tensors, for a create-graph pass: a Tensor, or a number
// where the derivative is a constant (add's 1).
template <unsigned Mask, class D, class A, class B, class Y>
auto derivative_on_tensors(const D& derivative, const char* op, const A& a, const B& b, const Y& y) {
  if constexpr (requires { derivative.tensors; }) {
    return call_reading<Mask>(derivative.tensors, a, b, y);
  } else if constexpr (requires { derivative.first_order; }) {
    throw_runtime(op, "double backward is not implemented");
    return Tensor();
  } else {
    return call_reading<Mask>(derivative, a, b, y);
  }
}

// g · c for a derivative that is the constant c: g itself when c is 1.
Tensor scaled_gradient(const Tensor& g, double c);

// An element of `values` when the mask reads it, else a placeholder the
// derivative never sees.
template <unsigned Mask, unsigned Bit, class T>
T element_if_read(const T* values, std::int64_t i) {
  if constexpr ((Mask & Bit) != 0) {
    return values[i];
  } else {
    return T();
  }
}

// y = f(x); dx = dy * df(x, y).
template <class Forward, class Derivative>
Tensor unary_pointwise(const Tensor& x, OpInfo info, Forward forward, Derivative derivative) {
  check_floating(info.name, x);
  Tensor y = empty(x.shape(), x.dtype(), info.name);
  dispatch_float(x.dtype(), info.name, [&](auto tag) {
    using T = decltype(tag);
    launch(
        info.name,
        [forward, n = x.numel()](const T* in, T* out) {
          for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(forward(in[i]));
        },
        x, y);
  });
  if (!any_requires_grad({&x})) return unrecorded(info, y, {&x});
  constexpr unsigned mask = ReadsOf<Derivative>::mask & (kInput | kOutput);
  return record_op(info, y, {&x},
                   [xs = saved_if(mask & kInput, x), ys = saved_if(mask & kOutput, y),
                    local = ReadsOf<Derivative>::inner(derivative), name = info.name](const Tensor& g,
                                                                                       InputGrads& grads) {
                     using Local = std::decay_t<decltype(local)>;
                     if constexpr (mask == kNothing && !requires { local.first_order; }) {
                       grads.add(0, scaled_gradient(g, local()));
                       return;
                     }
                     if constexpr (!is_piecewise<Local>) {
                       if (grads.create_graph()) {
                         const Tensor y_on_tape = (mask & kOutput) ? grads.output(ys) : Tensor();
                         if constexpr (requires { local.backward_op; }) {
                           auto fused = [&](const auto&... read) { return local.backward_op(g, read...); };
                           grads.add(0, call_reading<mask>(fused, xs, Tensor(), y_on_tape));
                         } else {
                           grads.add(0, g * derivative_on_tensors<mask>(local, name, xs, Tensor(), y_on_tape));
                         }
                         return;
                       }
                     }
                     // With create_graph, a piecewise derivative's mask (g = 1), then g * mask recorded.
                     const bool mask_only = grads.create_graph();
                     Tensor gx = empty(g.shape(), g.dtype(), name);
                     dispatch_float(g.dtype(), name, [&](auto tag) {
                       using T = decltype(tag);
                       launch(
                           name,
                           [local, mask_only, n = g.numel()](const T* xv, const T* yv, const T* gv, T* out) {
                             for (std::int64_t i = 0; i < n; ++i) {
                               const T local_value = static_cast<T>(
                                   call_reading<mask>(local, element_if_read<mask, kInput>(xv, i), T(),
                                                      element_if_read<mask, kOutput>(yv, i)));
                               out[i] = mask_only ? local_value : gv[i] * local_value;
                             }
                           },
                           (mask & kInput) ? xs : no_buffer(), (mask & kOutput) ? ys : no_buffer(),
                           mask_only ? no_buffer() : g, gx);
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
// Saved: what the derivatives of the inputs that need a gradient read.
template <class Forward, class DerivA, class DerivB>
Tensor binary_pointwise(const Tensor& a, const Tensor& b, OpInfo info, Forward forward, DerivA deriv_a,
                        DerivB deriv_b) {
  check_same_dtype(info.name, a, b);
  check_floating(info.name, a);
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), info.name);
  Tensor y = empty(out_shape, a.dtype(), info.name);
  dispatch_float(a.dtype(), info.name, [&](auto tag) {
    using T = decltype(tag);
    launch(
        info.name,
        [forward, sa = a.shape(), sb = b.shape(), out_shape](const T* av, const T* bv, T* out) {
          for_each_broadcast(sa, sb, out_shape, [&](std::int64_t ia, std::int64_t ib, std::int64_t io) {
            out[io] = static_cast<T>(forward(av[ia], bv[ib]));
          });
        },
        a, b, y);
  });
  if (!any_requires_grad({&a, &b})) return unrecorded(info, y, {&a, &b});
  const unsigned read =
      (a.requires_grad() ? ReadsOf<DerivA>::mask : 0u) | (b.requires_grad() ? ReadsOf<DerivB>::mask : 0u);
  return record_op(
      info, y, {&a, &b},
      [as = saved_if(read & kInputA, a), bs = saved_if(read & kInputB, b), ys = saved_if(read & kOutput, y),
       local_a = ReadsOf<DerivA>::inner(deriv_a), local_b = ReadsOf<DerivB>::inner(deriv_b),
       name = info.name](const Tensor& g, InputGrads& grads) {
        auto input_grad = [&](auto mask_constant, const auto& local, std::size_t input) {
          constexpr unsigned mask = decltype(mask_constant)::value;
          using Local = std::decay_t<decltype(local)>;
          const Shape& input_shape = grads.input_shape(input);
          if constexpr (mask == kNothing && !requires { local.first_order; }) {
            return unbroadcast(scaled_gradient(g, local()), input_shape);
          }
          if constexpr (!is_piecewise<Local>) {
            if (grads.create_graph()) {
              const Tensor y_on_tape = (mask & kOutput) ? grads.output(ys) : Tensor();
              return unbroadcast(g * derivative_on_tensors<mask>(local, name, as, bs, y_on_tape), input_shape);
            }
          }
          const bool mask_only = grads.create_graph();
          Tensor full_grad = empty(g.shape(), g.dtype(), name);
          dispatch_float(g.dtype(), name, [&](auto tag) {
            using T = decltype(tag);
            launch(
                name,
                [local, mask_only, sa = grads.input_shape(0), sb = grads.input_shape(1), sg = g.shape()](
                    const T* av, const T* bv, const T* yv, const T* gv, T* out) {
                  constexpr unsigned reads_mask = decltype(mask_constant)::value;
                  for_each_broadcast(sa, sb, sg, [&](std::int64_t ia, std::int64_t ib, std::int64_t io) {
                    const T local_value = static_cast<T>(
                        call_reading<reads_mask>(local, element_if_read<reads_mask, kInputA>(av, ia),
                                           element_if_read<reads_mask, kInputB>(bv, ib), element_if_read<reads_mask, kOutput>(yv, io)));
                    out[io] = mask_only ? local_value : gv[io] * local_value;
                  });
                },
                (mask & kInputA) ? as : no_buffer(), (mask & kInputB) ? bs : no_buffer(), (mask & kOutput) ? ys : no_buffer(),
                mask_only ? no_buffer() : g, full_grad);
          });
          return unbroadcast(mask_only ? g * full_grad : full_grad, input_shape);
        };
        using MaskA = std::integral_constant<unsigned, ReadsOf<DerivA>::mask>;
        using MaskB = std::integral_constant<unsigned, ReadsOf<DerivB>::mask>;
        if (grads.needs(0)) grads.add(0, input_grad(MaskA{}, local_a, 0));
        if (grads.needs(1)) grads.add(1, input_grad(MaskB{}, local_b, 1));
      });
}

// Same-dtype 0-d tensor for tensor-scalar arithmetic.
inline Tensor scalar_like(double value, const Tensor& like) {
  check_defined("scalar", like);
  return scalar(value, like.dtype());
}

}  // namespace tapegrad::detail
