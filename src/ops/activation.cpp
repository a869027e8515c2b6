// Activation functions of the lecture table. Most are pointwise: forward
// value and local derivative handed to unary_pointwise (ops/pointwise.hpp).
// soft_exponential has a learnable parameter and gets its own node.
// softmax and log_softmax live in softmax.cpp.
#include "tapegrad/ops/activation.hpp"

#include <algorithm>
#include <cmath>

#include "ops/clamp.hpp"
#include "ops/pointwise.hpp"
#include "ops/vector_math.hpp"
#include "tapegrad/ops/reduce.hpp"

namespace tapegrad {

using namespace detail::local_derivatives;
using detail::unary_pointwise;

namespace {

using detail::tanh_value;
// σ of a value: ops/vector_math.hpp's, shared with the recurrent cells.
template <class T>
T stable_sigmoid(T x) {
  return detail::sigmoid_value(x);
}
// The same on Tensors (softplus's derivative in a create-graph pass).
Tensor stable_sigmoid(const Tensor& x) { return sigmoid(x); }

}  // namespace

Tensor identity(const Tensor& x) {
  return unary_pointwise(
      x, {"identity", "y = x"}, [](auto v) { return v; }, reads<kNothing>([] { return 1.0; }));
}

Tensor sigmoid(const Tensor& x) {
  return unary_pointwise(
      x, {"sigmoid", "y = 1 / (1 + e^-x)"}, [](auto v) { return stable_sigmoid(v); },
      reads<kOutput>([](auto y) { return y * (1 - y); }));
}

namespace {

// g · tanh'(x) = g (1 - y²) as one op: tanh's create-graph backward, and
// so the node a Hessian-vector product differentiates. Its own derivatives
// are in the same terms: ∂/∂g = 1 - y², ∂/∂y = -2 g y.
Tensor tanh_backward(const Tensor& g, const Tensor& y) {
  return detail::binary_pointwise(
      g, y, {"tanh_backward", "dx = g · (1 - y²)"}, [](auto gv, auto yv) { return gv * (1 - yv * yv); },
      reads<kInputB>([](auto yv) { return 1 - yv * yv; }),
      reads<kInputA | kInputB>([](auto gv, auto yv) { return -2 * gv * yv; }));
}

}  // namespace

Tensor tanh(const Tensor& x) {
  return unary_pointwise(x, {"tanh", "y = tanh x"}, [](auto v) { return tanh_value(v); },
                         reads<kOutput>(with_backward_op([](auto y) { return 1 - y * y; }, tanh_backward)));
}

Tensor relu(const Tensor& x) {
  // std::max(v, 0) keeps a NaN input (v < 0 is false), as PyTorch does.
  // The step is read off the output (y > 0 exactly where x > 0, and a NaN
  // fails both): the next layer saves y anyway, so x need not be kept.
  return unary_pointwise(
      x, {"relu", "y = max(0, x)"}, [](auto v) { return std::max(v, decltype(v)(0)); },
      reads<kOutput>(piecewise([](auto y) { return y > 0 ? 1.0 : 0.0; })));
}

Tensor leaky_relu(const Tensor& x, double slope) {
  return unary_pointwise(
      x, {"leaky_relu", "y = x if x > 0 else slope·x"},
      [slope](auto v) { return v > 0 ? v : static_cast<decltype(v)>(slope) * v; },
      reads<kInput>(piecewise([slope](auto v) { return v > 0 ? 1.0 : slope; })));
}

Tensor softplus(const Tensor& x) {
  // ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|): the exponent is never
  // positive, so nothing overflows, and log1p keeps the tail for x << 0.
  return unary_pointwise(
      x, {"softplus", "y = ln(1 + e^x)"},
      [](auto v) { return std::max(v, decltype(v)(0)) + std::log1p(std::exp(-std::abs(v))); },
      reads<kInput>([](auto v) { return stable_sigmoid(v); }));
}

Tensor hard_tanh(const Tensor& x, double low, double high) {
  return detail::clamp_as(x, low, high, {"hard_tanh", "y = clamp(x, low, high)"});
}

Tensor arctan(const Tensor& x) {
  return unary_pointwise(
      x, {"arctan", "y = arctan x"}, [](auto v) { return std::atan(v); },
      reads<kInput>([](auto v) { return 1 / (1 + v * v); }));
}

Tensor sin(const Tensor& x) {
  return unary_pointwise(
      x, {"sin", "y = sin x"}, [](auto v) { return std::sin(v); }, reads<kInput>([](auto v) {
        using std::cos;
        return cos(v);
      }));
}

Tensor cos(const Tensor& x) {
  return unary_pointwise(
      x, {"cos", "y = cos x"}, [](auto v) { return std::cos(v); }, reads<kInput>([](auto v) {
        using std::sin;
        return -sin(v);
      }));
}

namespace {

// c_n(t) = Σ_{k≥0} (-t)^k / (2k + n)! for t = x² >= 0: c_0(x²) = cos x,
// c_1(x²) = sinc x, and sinc'(x) = -x (c_2(x²) - c_3(x²)), a form with no
// cancellation at 0. Its derivative needs no division either,
// c_n'(t) = -(c_{n+1}(t) - n c_{n+2}(t)) / 2, so the family carries sinc
// to any order.
double sinc_series_value(double t, int n) {
  if (t < 4) {  // the series: the 20th term is below 4^20 / 40!, 1e-35
    double factorial = 1;
    for (int k = 2; k <= n; ++k) factorial *= k;
    double term = 1 / factorial;
    double total = 0;
    for (int k = 0; k < 20; ++k) {
      total += term;
      term *= -t / ((2.0 * k + n + 1) * (2.0 * k + n + 2));
    }
    return total;
  }
  // Upward from c_0, c_1 by c_m = (1/(m-2)! - c_{m-2}) / t: with t >= 4
  // the subtraction loses at most a digit for the orders used.
  const double x = std::sqrt(t);
  double even = std::cos(x), odd = std::sin(x) / x;  // c_m for the parity of n, from m = 0 or 1
  double factorial = 1;                               // (m - 2)! for the next m
  for (int m = 2; m <= n; ++m) {
    if (m > 2) factorial *= m - 2;
    double& c = (m % 2 == 0) ? even : odd;
    c = (1 / factorial - c) / t;
  }
  return n % 2 == 0 ? even : odd;
}

Tensor sinc_series(const Tensor& t, int n);
double sinc_series_of(double t, int n) { return sinc_series_value(t, n); }
Tensor sinc_series_of(const Tensor& t, int n) { return sinc_series(t, n); }

Tensor sinc_series(const Tensor& t, int n) {
  return unary_pointwise(
      t, {"sinc_series", "y = Σ_k (-t)^k / (2k + n)!"}, [n](auto v) { return sinc_series_value(v, n); },
      reads<kInput>([n](auto v) { return -(sinc_series_of(v, n + 1) - n * sinc_series_of(v, n + 2)) / 2; }));
}

}  // namespace

Tensor sinc(const Tensor& x) {
  return unary_pointwise(
      x, {"sinc", "y = sin x / x"}, [](auto v) { return v == 0 ? decltype(v)(1) : std::sin(v) / v; },
      reads<kInput>(with_tensor_form(
          [](auto v) {
        // cos x / x - sin x / x² subtracts two terms of size 1/x to get
        // about -x/3: near 0 use the Taylor series -x/3 + x³/30 - x⁵/840 +
        // x⁷/45360 instead (next term x⁹/3991680, below 1e-15 relative at 0.1).
        const double t = v;
        if (std::abs(t) < 0.1) {
          const double t2 = t * t;
          return t * (-1.0 / 3 + t2 * (1.0 / 30 + t2 * (-1.0 / 840 + t2 / 45360)));
        }
        return std::cos(t) / t - std::sin(t) / (t * t);
      },
          [](const Tensor& v) {
            const Tensor t = v * v;
            return -v * (sinc_series(t, 2) - sinc_series(t, 3));
          })));
}

Tensor gaussian(const Tensor& x) {
  return unary_pointwise(
      x, {"gaussian", "y = e^(-x²)"}, [](auto v) { return std::exp(-v * v); },
      reads<kInput | kOutput>([](auto v, auto y) { return -2 * v * y; }));
}

Tensor bent_identity(const Tensor& x) {
  // √(x² + 1) - 1 = x² / (√(x² + 1) + 1) avoids cancellation near 0, and
  // hypot avoids overflowing x² for huge |x|.
  return unary_pointwise(
      x, {"bent_identity", "y = (√(x² + 1) - 1) / 2 + x"},
      [](auto v) {
        using T = decltype(v);
        const T root = std::hypot(v, T(1));
        return v * (v / (root + 1)) / 2 + v;
      },
      reads<kInput>(with_tensor_form([](auto v) { return v / (2 * std::hypot(v, decltype(v)(1))) + 1; },
                                     [](const Tensor& v) { return v / (2 * sqrt(v * v + 1.0)) + 1.0; })));
}

namespace {

// The α-derivatives of soft_exponential below are differences that cancel
// as α → 0 (both tend to 1 + x²/2); these factors are evaluated from their
// Taylor series where the direct forms would lose all their digits.

// (e^u (u - 1) + 1) / u² = Σ_{k≥2} (k - 1) u^(k-2) / k!.
double softexp_growth_factor(double u) {
  if (std::abs(u) >= 0.1) return (std::exp(u) * (u - 1) + 1) / (u * u);
  double power_over_factorial = 0.5;  // u^(k-2) / k! at k = 2
  double total = 0;
  for (int k = 2; k < 14; ++k) {
    total += (k - 1) * power_over_factorial;
    power_over_factorial *= u / (k + 1);
  }
  return total;
}

// (ln(1 + v) - v / (1 + v)) / v² = Σ_{k≥2} (-1)^k (k - 1) v^(k-2) / k.
double softexp_log_factor(double v) {
  if (std::abs(v) >= 0.1) return (std::log1p(v) - v / (1 + v)) / (v * v);
  double power = 1;  // (-v)^(k-2)
  double total = 0;
  for (int k = 2; k < 22; ++k) {
    total += power * (k - 1) / k;
    power *= -v;
  }
  return total;
}

// The same factors on Tensors, for a create-graph pass, through two
// families whose derivatives stay in the family without a division (so
// without a cancellation at 0), to any order:
//   φ_n(u) = Σ_{k≥0} u^k / (k + n)!,  φ_0 = e^u,  G = φ_1 - φ_2,
//            φ_n' = φ_n - n φ_{n+1};
//   ψ_n(v) = Σ_{k≥0} (-v)^k / (k + n) (n >= 1),  L = 1/(1 + v) - ψ_2,
//            ψ_n' = n ψ_{n+1} - 1/(1 + v).
double softexp_phi_value(double u, int n) {
  if (std::abs(u) < 1) {  // the series: the 25th term is below 1/25!, 6e-26
    double factorial = 1;
    for (int k = 2; k <= n; ++k) factorial *= k;
    double term = 1 / factorial;
    double total = 0;
    for (int k = 0; k < 25; ++k) {
      total += term;
      term *= u / (k + n + 1);
    }
    return total;
  }
  // Upward from e^u by φ_m = (φ_{m-1} - 1/(m-1)!) / u, |u| >= 1.
  double value = std::exp(u);
  double factorial = 1;  // (m - 1)!
  for (int m = 1; m <= n; ++m) {
    if (m > 1) factorial *= m - 1;
    value = (value - 1 / factorial) / u;
  }
  return value;
}

double softexp_psi_value(double v, int n) {
  if (std::abs(v) < 0.5) {  // the series: the 60th term is below 0.5^60, 1e-18
    double power = 1;  // (-v)^k
    double total = 0;
    for (int k = 0; k < 60; ++k) {
      total += power / (k + n);
      power *= -v;
    }
    return total;
  }
  // Upward from ψ_1 = ln(1 + v)/v by ψ_m = (1/(m-1) - ψ_{m-1}) / v, |v| >= 0.5.
  double value = std::log1p(v) / v;
  for (int m = 2; m <= n; ++m) value = (1.0 / (m - 1) - value) / v;
  return value;
}

Tensor softexp_phi(const Tensor& u, int n);
Tensor softexp_psi(const Tensor& v, int n);
double softexp_phi_of(double u, int n) { return softexp_phi_value(u, n); }
Tensor softexp_phi_of(const Tensor& u, int n) { return softexp_phi(u, n); }
double softexp_psi_of(double v, int n) { return softexp_psi_value(v, n); }
Tensor softexp_psi_of(const Tensor& v, int n) { return softexp_psi(v, n); }

Tensor softexp_phi(const Tensor& u, int n) {
  return unary_pointwise(
      u, {"soft_exponential_phi", "y = Σ_k u^k / (k + n)!"}, [n](auto v) { return softexp_phi_value(v, n); },
      reads<kInput>([n](auto v) { return softexp_phi_of(v, n) - n * softexp_phi_of(v, n + 1); }));
}

Tensor softexp_psi(const Tensor& v, int n) {
  return unary_pointwise(
      v, {"soft_exponential_psi", "y = Σ_k (-v)^k / (k + n)"}, [n](auto w) { return softexp_psi_value(w, n); },
      reads<kInput>([n](auto w) { return n * softexp_psi_of(w, n + 1) - 1 / (1 + w); }));
}

}  // namespace

Tensor soft_exponential(const Tensor& x, const Tensor& alpha) {
  constexpr const char* kOp = "soft_exponential";
  detail::check_same_dtype(kOp, x, alpha);
  detail::check_floating(kOp, x);
  if (alpha.numel() != 1 || alpha.dim() > 1) {
    throw_invalid(kOp, "alpha must have shape [] or [1], got ", alpha.shape().str());
  }
  // α is read inside the kernels, so that a captured step follows the
  // value it has at each replay (a learnable parameter).
  // With u = αx and v = -α(x + α) (so 1 - α(x + α) = 1 + v):
  //   α > 0: y = (e^u - 1)/α + α,  dy/dx = e^u,       dy/dα = x²·G(u) + 1
  //   α < 0: y = -ln(1 + v)/α,     dy/dx = 1/(1 + v), dy/dα = (x + α)²·L(v) + 1/(1 + v)
  //   α = 0: y = x,                dy/dx = 1,         dy/dα = x²/2 + 1
  // with G, L the factors above (G(0) = L(0) = 1/2), so y is C¹ in α at 0.
  Tensor y = empty(x.shape(), x.dtype(), kOp);
  detail::dispatch_float(x.dtype(), kOp, [&](auto tag) {
    using T = decltype(tag);
    launch(
        kOp,
        [n = x.numel()](const T* xv, const T* alpha_value, T* out) {
          const double a = alpha_value[0];
          for (std::int64_t i = 0; i < n; ++i) {
            const double t = xv[i];
            double value = t;
            if (a > 0) value = std::expm1(a * t) / a + a;
            if (a < 0) value = -std::log1p(-a * (t + a)) / a;
            out[i] = static_cast<T>(value);
          }
        },
        x, alpha, y);
  });
  constexpr OpInfo kInfo{kOp, "y = (e^(αx) - 1)/α + α | x | -ln(1 - α(x + α))/α"};
  if (!any_requires_grad({&x, &alpha})) return unrecorded(kInfo, y, {&x, &alpha});
  return record_op(kInfo, y, {&x, &alpha},
                   [xs = saved(x), alpha_saved = saved(alpha), alpha_shape = alpha.shape()](const Tensor& g,
                                                                                            InputGrads& grads) {
                     if (grads.create_graph()) {
                       const double a = alpha_saved.item();  // saved: the value the forward used
                       // The same derivatives with ops, α as a recorded 0-d tensor; the
                       // branch is fixed by α's sign at the forward. α = 0 takes the e^(αx)
                       // side: y is C² in x and α there except d²y/dα², which jumps
                       // (x³/3 from the right, 2x + 2x³/3 from the left); the right
                       // side's value is used.
                       const Tensor al = reshape(alpha_saved, std::vector<std::int64_t>{});
                       Tensor dx, da;
                       if (a >= 0) {
                         const Tensor u = al * xs;
                         dx = exp(u);
                         da = xs * xs * (softexp_phi(u, 1) - softexp_phi(u, 2)) + 1.0;
                       } else {
                         const Tensor shifted = xs + al;
                         const Tensor v = -(al * shifted);
                         dx = 1.0 / (1.0 + v);
                         da = shifted * shifted * (dx - softexp_psi(v, 2)) + dx;
                       }
                       if (grads.needs(0)) grads.add(0, g * dx);
                       if (grads.needs(1)) {
                         grads.add(1, reshape(sum(g * da), std::vector<std::int64_t>(alpha_shape.begin(), alpha_shape.end())));
                       }
                       return;
                     }
                     const bool want_x = grads.needs(0);
                     const bool want_alpha = grads.needs(1);
                     Tensor gx = want_x ? empty(xs.shape(), xs.dtype(), kOp) : Tensor();
                     Tensor g_alpha_tensor = want_alpha ? empty(alpha_shape, xs.dtype(), kOp) : Tensor();
                     detail::dispatch_float(xs.dtype(), kOp, [&](auto tag) {
                       using T = decltype(tag);
                       launch(
                           kOp,
                           [n = xs.numel()](const T* xv, const T* alpha_value, const T* gv, T* out, T* g_alpha_out) {
                             const double a = alpha_value[0];
                             double g_alpha = 0;
                             for (std::int64_t i = 0; i < n; ++i) {
                               const double t = xv[i];
                               double dx = 1;
                               double da = t * t / 2 + 1;
                               if (a > 0) {
                                 const double u = a * t;
                                 dx = std::exp(u);
                                 da = t * t * softexp_growth_factor(u) + 1;
                               } else if (a < 0) {
                                 const double v = -a * (t + a);
                                 dx = 1 / (1 + v);
                                 da = (t + a) * (t + a) * softexp_log_factor(v) + dx;
                               }
                               if (out != nullptr) out[i] = static_cast<T>(gv[i] * dx);
                               g_alpha += gv[i] * da;
                             }
                             if (g_alpha_out != nullptr) g_alpha_out[0] = static_cast<T>(g_alpha);
                           },
                           xs, alpha_saved, g, gx, g_alpha_tensor);
                     });
                     if (want_x) grads.add(0, std::move(gx));
                     if (want_alpha) grads.add(1, std::move(g_alpha_tensor));
                   });
}

Tensor binary_step(const Tensor& x) {
  // Flat almost everywhere: the node exists so backward passes through it,
  // and it hands back zeros (binary_step_ste is the trainable variant).
  return unary_pointwise(
      x, {"binary_step", "y = 1 if x >= 0 else 0"}, [](auto v) { return v >= 0 ? decltype(v)(1) : decltype(v)(0); },
      reads<kNothing>([] { return 0.0; }));
}

Tensor sign(const Tensor& x) {
  return unary_pointwise(
      x, {"sign", "y = sign x"}, [](auto v) { return static_cast<decltype(v)>((v > 0) - (v < 0)); },
      reads<kNothing>([] { return 0.0; }));
}

Tensor binary_step_ste(const Tensor& x) {
  // Straight-through estimator: backward pretends the step was hard_tanh,
  // so an error signal reaches weights behind a hard threshold.
  return unary_pointwise(
      x, {"binary_step_ste", "y = 1 if x >= 0 else 0; dx = dy where |x| <= 1"},
      [](auto v) { return v >= 0 ? decltype(v)(1) : decltype(v)(0); },
      reads<kInput>(piecewise([](auto v) { return std::abs(v) <= 1 ? 1.0 : 0.0; })));
}

Tensor sign_ste(const Tensor& x) {
  return unary_pointwise(
      x, {"sign_ste", "y = sign x; dx = dy where |x| <= 1"},
      [](auto v) { return static_cast<decltype(v)>((v > 0) - (v < 0)); },
      reads<kInput>(piecewise([](auto v) { return std::abs(v) <= 1 ? 1.0 : 0.0; })));
}

}  // namespace tapegrad
