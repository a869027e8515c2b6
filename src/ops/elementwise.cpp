// Elementwise arithmetic. Each op: forward value and local derivatives,
// handed to the pointwise builders (ops/pointwise.hpp), which broadcast,
// record the node and sum gradients back to each input's shape.
#include "tapegrad/ops/elementwise.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

#include "ops/clamp.hpp"
#include "ops/pointwise.hpp"
#include "ops/strided.hpp"

namespace tapegrad {

using namespace detail::local_derivatives;
using detail::binary_pointwise;
using detail::scalar_like;
using detail::unary_pointwise;

Tensor add(const Tensor& a, const Tensor& b) {
  return binary_pointwise(
      a, b, {"add", "y = a + b"}, [](auto x, auto y) { return x + y; }, reads<kNothing>([] { return 1.0; }),
      reads<kNothing>([] { return 1.0; }));
}

Tensor sub(const Tensor& a, const Tensor& b) {
  return binary_pointwise(
      a, b, {"sub", "y = a - b"}, [](auto x, auto y) { return x - y; }, reads<kNothing>([] { return 1.0; }),
      reads<kNothing>([] { return -1.0; }));
}

Tensor mul(const Tensor& a, const Tensor& b) {
  return binary_pointwise(
      a, b, {"mul", "y = a * b"}, [](auto x, auto y) { return x * y; }, reads<kInputB>([](auto bv) { return bv; }),
      reads<kInputA>([](auto av) { return av; }));
}

Tensor div(const Tensor& a, const Tensor& b) {
  return binary_pointwise(
      a, b, {"div", "y = a / b"}, [](auto x, auto y) { return x / y; },
      reads<kInputB>([](auto bv) { return 1 / bv; }),
      reads<kInputB | kOutput>([](auto bv, auto y) { return -y / bv; }));
}

Tensor neg(const Tensor& x) {
  return unary_pointwise(
      x, {"neg", "y = -x"}, [](auto v) { return -v; }, reads<kNothing>([] { return -1.0; }));
}

namespace {

// 1 where `a` is 0 (and, with `b`, where both are: over the broadcast
// shape), else 0. Constants: the branches of pow's derivatives sit on
// these sets, which have no interior to differentiate.
Tensor zero_mask(const Tensor& a) {
  Tensor mask = empty(a.shape(), a.dtype(), "pow");
  detail::dispatch_float(a.dtype(), "pow", [&](auto tag) {
    using T = decltype(tag);
    launch(
        "pow",
        [n = a.numel()](const T* av, T* out) {
          for (std::int64_t i = 0; i < n; ++i) out[i] = av[i] == 0 ? T(1) : T(0);
        },
        a, mask);
  });
  return mask;
}

Tensor both_zero_mask(const Tensor& a, const Tensor& b) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "pow");
  Tensor mask = empty(shape, a.dtype(), "pow");
  detail::dispatch_float(a.dtype(), "pow", [&](auto tag) {
    using T = decltype(tag);
    launch(
        "pow",
        [sa = a.shape(), sb = b.shape(), shape](const T* av, const T* bv, T* out) {
          detail::for_each_broadcast(sa, sb, shape, [&](std::int64_t ia, std::int64_t ib, std::int64_t io) {
            out[io] = av[ia] == 0 && bv[ib] == 0 ? T(1) : T(0);
          });
        },
        a, b, mask);
  });
  return mask;
}

}  // namespace

Tensor pow(const Tensor& a, const Tensor& b) {
  // The Tensor forms keep the number forms' values, with the branch points
  // handled by constant masks and safe substitutes, so that no 0·∞ NaN
  // appears where the number form has none:
  //   da = b·a^(b-1), 0 where b = 0. Only b = 0 with a = 0 needs a branch
  //     (0·0^-1): there the exponent becomes 0, so 0·a^0 = 0. Elsewhere at
  //     b = 0 the product is already 0, and its b-derivative 1/a is kept.
  //   db = a^b ln a, 0 where a = 0: ln sees 1 there instead of 0, and the
  //     term is multiplied by the constant mask of a ≠ 0.
  return binary_pointwise(
      a, b, {"pow", "y = a ^ b"}, [](auto x, auto p) { return std::pow(x, p); },
      reads<kInputA | kInputB>(
          with_tensor_form([](auto x, auto p) { return p == 0 ? 0 * x : p * std::pow(x, p - 1); },
                           [](const Tensor& x, const Tensor& p) { return p * pow(x, p - 1.0 + both_zero_mask(x, p)); })),
      // d(a^b)/db = a^b ln a; at a = 0 the limit from the right is 0 for b > 0.
      reads<kInputA | kOutput>(with_tensor_form([](auto x, auto y) { return x == 0 ? 0 * x : y * std::log(x); },
                                                [](const Tensor& x, const Tensor& y) {
                                                  const Tensor at_zero = zero_mask(x);
                                                  return y * log(x + at_zero) * (1.0 - at_zero);
                                                })));
}

Tensor pow(const Tensor& x, double exponent) {
  return unary_pointwise(
      x, {"pow", "y = x ^ p (constant p)"}, [exponent](auto v) { return std::pow(v, static_cast<decltype(v)>(exponent)); },
      reads<kInput>([exponent](auto v) -> decltype(v) {
        using std::pow;
        if (exponent == 0) return 0 * v;
        return static_cast<decltype(v)>(exponent * pow(v, exponent - 1));
      }));
}

Tensor exp(const Tensor& x) {
  return unary_pointwise(
      x, {"exp", "y = e^x"}, [](auto v) { return std::exp(v); }, reads<kOutput>([](auto y) { return y; }));
}

Tensor log(const Tensor& x) {
  return unary_pointwise(
      x, {"log", "y = ln x"}, [](auto v) { return std::log(v); }, reads<kInput>([](auto v) { return 1 / v; }));
}

Tensor sqrt(const Tensor& x) {
  return unary_pointwise(
      x, {"sqrt", "y = sqrt(x)"}, [](auto v) { return std::sqrt(v); },
      reads<kOutput>([](auto y) { return 1 / (2 * y); }));
}

Tensor abs(const Tensor& x) {
  return unary_pointwise(
      x, {"abs", "y = |x|"}, [](auto v) { return std::abs(v); },
      reads<kInput>(piecewise([](auto v) { return static_cast<decltype(v)>((v > 0) - (v < 0)); })));
}

Tensor detail::clamp_as(const Tensor& x, double low, double high, const OpInfo& info) {
  if (!(low <= high)) throw_invalid(info.name, "needs low <= high, got low=", low, " high=", high);
  return unary_pointwise(
      x, info,
      [low, high](auto v) {
        using T = decltype(v);
        // v goes first: std::max and std::min return their first argument
        // when a comparison is false, so a NaN v comes out NaN, as in PyTorch.
        return std::min(std::max(v, static_cast<T>(low)), static_cast<T>(high));
      },
      reads<kInput>(piecewise([low, high](auto v) { return static_cast<decltype(v)>(v >= low && v <= high); })));
}

Tensor clamp(const Tensor& x, double low, double high) {
  return detail::clamp_as(x, low, high, {"clamp", "y = min(max(x, low), high)"});
}

// NaN in either argument gives NaN (std::max alone keeps only a NaN in its
// first argument). Gradients follow the max/min reductions: the extremum
// takes it, ties split it evenly, so maximum(x, x) has gradient 1; a NaN
// is the extremum and two NaNs tie. PyTorch 1.13 sends the whole gradient
// to both inputs of a NaN lane instead.
namespace {

template <class T>
T nan_or(T other, T value) {
  return std::isnan(other) ? other : value;
}

// The share of the gradient that goes to `x` in a lane with `y`, given
// whether x beats y (x > y for maximum, x < y for minimum).
template <class T>
double extremum_share(T x, T y, bool x_wins) {
  if (std::isnan(x) || std::isnan(y)) return std::isnan(x) ? (std::isnan(y) ? 0.5 : 1.0) : 0.0;
  return x_wins ? 1.0 : (x == y ? 0.5 : 0.0);
}

}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary_pointwise(
      a, b, {"maximum", "y = max(a, b), NaN if either is"}, [](auto x, auto y) { return nan_or(y, std::max(x, y)); },
      reads<kInputA | kInputB>(piecewise([](auto x, auto y) { return extremum_share(x, y, x > y); })),
      reads<kInputA | kInputB>(piecewise([](auto x, auto y) { return extremum_share(y, x, y > x); })));
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  return binary_pointwise(
      a, b, {"minimum", "y = min(a, b), NaN if either is"}, [](auto x, auto y) { return nan_or(y, std::min(x, y)); },
      reads<kInputA | kInputB>(piecewise([](auto x, auto y) { return extremum_share(x, y, x < y); })),
      reads<kInputA | kInputB>(piecewise([](auto x, auto y) { return extremum_share(y, x, y < x); })));
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(b, a)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(b, a)); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(b, a)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(a, b), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(a, b), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(a, b), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(a, b), b); }

// where and masked_fill: a select between two tensors by a mask. The
// gradient of the selected side is the incoming gradient itself and the
// other side's is an exact 0 (not g·0), so a NaN or Inf in the branch not
// taken never reaches a gradient, as in PyTorch. Backward is where() again,
// linear in g, so it is differentiable to any order with no formula of its
// own; the mask gets no gradient.
namespace {

Shape select_shape(const char* op, const char* names[3], const Shape* shapes[3]) {
  try {
    return broadcast_shapes(broadcast_shapes(*shapes[0], *shapes[1], op), *shapes[2], op);
  } catch (const std::invalid_argument&) {
    throw_invalid(op, "cannot broadcast ", names[0], " ", shapes[0]->str(), ", ", names[1], " ", shapes[1]->str(),
                  " and ", names[2], " ", shapes[2]->str(), " to one shape");
  }
}

Tensor select(const OpInfo& info, const Tensor& cond, const Tensor& a, const Tensor& b, const char* a_name,
              const char* b_name) {
  detail::check_defined(info.name, cond);
  detail::check_same_dtype(info.name, a, b);
  const char* names[3] = {"mask", a_name, b_name};
  const Shape* shapes[3] = {&cond.shape(), &a.shape(), &b.shape()};
  const Shape out_shape = select_shape(info.name, names, shapes);
  Tensor y = empty(out_shape, a.dtype(), info.name);
  detail::dispatch_any(cond.dtype(), [&](auto cond_tag) {
    using C = decltype(cond_tag);
    detail::dispatch_any(a.dtype(), [&](auto tag) {
      using T = decltype(tag);
      launch(
          info.name,
          [out_shape,
           strides = std::array<Shape, 4>{detail::broadcast_strides(cond.shape(), out_shape),
                                          detail::broadcast_strides(a.shape(), out_shape),
                                          detail::broadcast_strides(b.shape(), out_shape), out_shape.strides()}](
              const C* cv, const T* av, const T* bv, T* out) {
            detail::for_each_strided<4>(out_shape, strides, [&](const std::array<std::int64_t, 4>& o) {
              out[o[3]] = cv[o[0]] != C(0) ? av[o[1]] : bv[o[2]];
            });
          },
          cond, a, b, y);
    });
  });
  if (!any_requires_grad({&a, &b})) return unrecorded(info, y, {&a, &b});
  return record_op(info, y, {&a, &b}, [mask = saved(cond)](const Tensor& g, InputGrads& grads) {
    const Tensor zero = scalar_like(0.0, g);
    if (grads.needs(0)) grads.add(0, detail::unbroadcast(where(mask, g, zero), grads.input_shape(0)));
    if (grads.needs(1)) grads.add(1, detail::unbroadcast(where(mask, zero, g), grads.input_shape(1)));
  });
}

}  // namespace

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return select({"where", "y = a where cond != 0, else b"}, cond, a, b, "a", "b");
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  detail::check_defined("masked_fill", x);
  return select({"masked_fill", "y = value where mask != 0, else x"}, mask, scalar_like(value, x), x, "value", "x");
}

}  // namespace tapegrad
