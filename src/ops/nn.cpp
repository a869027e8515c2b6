// Dropout and batch normalisation.
//
// batch_norm is one fused node rather than a composition of mean, sub, mul,
// sqrt and div: the composed graph would record ~8 nodes and allocate ~6
// temporaries of the input's size per call, and its backward would walk all
// of them; the fused backward is the closed form below, two passes over the
// data. The formula is gradient-checked in float64 (tests/test_nn.cpp).
#include "tapegrad/ops/nn.hpp"

#include <cmath>
#include <vector>

#include "core/dispatch.hpp"
#include "tapegrad/autograd.hpp"
#include "core/sampling.hpp"
#include "tapegrad/random.hpp"

namespace tapegrad {

namespace {

using detail::dispatch_float;

void check_probability(const char* op, double p) {
  if (!(p >= 0 && p < 1)) throw_invalid(op, "p must be in [0, 1), got ", p);
}

}  // namespace

Tensor dropout_mask(const Shape& shape, double p, DType dtype, Generator* generator) {
  check_probability("dropout_mask", p);
  if (!is_floating(dtype)) throw_invalid("dropout_mask", "needs a floating-point dtype, got ", dtype_name(dtype));
  Tensor mask = empty(shape, dtype, "dropout_mask");
  const double keep_scale = 1.0 / (1.0 - p);
  dispatch_float(dtype, "dropout_mask", [&](auto tag) {
    using T = decltype(tag);
    detail::sample_bernoulli(generator ? *generator : current_generator(), mask.data<T>(), mask.numel(), p, T(0),
                             static_cast<T>(keep_scale));
  });
  return mask;
}

Tensor dropout(const Tensor& x, const Tensor& mask) {
  constexpr const char* kOp = "dropout";
  detail::check_same_dtype(kOp, x, mask);
  detail::check_floating(kOp, x);
  if (mask.shape() != x.shape()) {
    throw_invalid(kOp, "mask ", mask.shape().str(), " does not match input ", x.shape().str());
  }
  Tensor y = empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), kOp, [&](auto tag) {
    using T = decltype(tag);
    const T* xv = x.data<T>();
    const T* mv = mask.data<T>();
    T* out = y.data<T>();
    for (std::int64_t i = 0; i < x.numel(); ++i) out[i] = xv[i] * mv[i];
  });
  return record_op({kOp, "y = x ⊙ mask"}, y, {&x}, [ms = saved(mask)](const Tensor& g, InputGrads& grads) {
    Tensor gx = empty(ms.shape(), ms.dtype());
    dispatch_float(ms.dtype(), "dropout", [&](auto tag) {
      using T = decltype(tag);
      const T* gv = g.data<T>();
      const T* mv = ms.data<T>();
      T* out = gx.data<T>();
      for (std::int64_t i = 0; i < ms.numel(); ++i) out[i] = gv[i] * mv[i];
    });
    grads.add(0, std::move(gx));
  });
}

Tensor dropout(const Tensor& x, double p, bool training) {
  check_probability("dropout", p);
  detail::check_floating("dropout", x);
  if (!training || p == 0) return x;
  return dropout(x, dropout_mask(x.shape(), p, x.dtype()));
}

namespace {

// x [N, C] or [N, C, L] viewed as [N, C, L]: element (n, c, l) at (n·C + c)·L + l.
struct Channels {
  std::int64_t n = 1;
  std::int64_t c = 1;
  std::int64_t l = 1;
  std::int64_t per_channel() const { return n * l; }
  template <class F>  // f(offset) over the M elements of channel ch
  void for_each(std::int64_t ch, F&& f) const {
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t base = (i * c + ch) * l;
      for (std::int64_t j = 0; j < l; ++j) f(base + j);
    }
  }
};

void check_channel_vector(const char* what, const Tensor& t, const Tensor& x, std::int64_t channels) {
  detail::check_same_dtype("batch_norm", x, t);
  if (t.shape() != Shape{channels}) {
    throw_invalid("batch_norm", what, " ", t.shape().str(), " does not match the ", channels, " channels of input ",
                  x.shape().str(), " (expects [", channels, "])");
  }
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  constexpr const char* kOp = "batch_norm";
  detail::check_floating(kOp, x);
  if (x.dim() != 2 && x.dim() != 3) throw_invalid(kOp, "expects input [N x C] or [N x C x L], got ", x.shape().str());
  if (!(momentum >= 0 && momentum <= 1)) throw_invalid(kOp, "momentum must be in [0, 1], got ", momentum);
  if (!(eps >= 0)) throw_invalid(kOp, "eps must be >= 0, got ", eps);
  const Channels dims{x.shape(0), x.shape(1), x.dim() == 3 ? x.shape(2) : 1};
  if (weight.defined() != bias.defined()) throw_invalid(kOp, "weight and bias must be both given or both undefined");
  const bool affine = weight.defined();
  if (affine) {
    check_channel_vector("weight", weight, x, dims.c);
    check_channel_vector("bias", bias, x, dims.c);
  }
  if (running_mean.defined() != running_var.defined()) {
    throw_invalid(kOp, "running_mean and running_var must be both given or both undefined");
  }
  const bool tracking = running_mean.defined();
  if (tracking) {
    check_channel_vector("running_mean", running_mean, x, dims.c);
    check_channel_vector("running_var", running_var, x, dims.c);
  }
  const std::int64_t m = dims.per_channel();
  if (training && m < 2) {
    throw_invalid(kOp, "training needs more than one value per channel, got input ", x.shape().str());
  }
  if (!training && !tracking) throw_invalid(kOp, "evaluation mode needs running_mean and running_var");

  Tensor xhat = empty(x.shape(), x.dtype());
  Tensor y = empty(x.shape(), x.dtype());
  std::vector<double> invstd(static_cast<std::size_t>(dims.c));
  dispatch_float(x.dtype(), kOp, [&](auto tag) {
    using T = decltype(tag);
    const T* xv = x.data<T>();
    T* hv = xhat.data<T>();
    T* yv = y.data<T>();
    T* rm = tracking ? static_cast<T*>(running_mean.raw_data()) : nullptr;
    T* rv = tracking ? static_cast<T*>(running_var.raw_data()) : nullptr;
    for (std::int64_t ch = 0; ch < dims.c; ++ch) {
      double mu = 0;
      double var = 0;
      if (training) {  // two passes, in double: no cancellation from Σx² - (Σx)²/M
        dims.for_each(ch, [&](std::int64_t i) { mu += xv[i]; });
        mu /= static_cast<double>(m);
        dims.for_each(ch, [&](std::int64_t i) { var += (xv[i] - mu) * (xv[i] - mu); });
        var /= static_cast<double>(m);
        if (tracking) {
          rm[ch] = static_cast<T>((1 - momentum) * rm[ch] + momentum * mu);
          rv[ch] = static_cast<T>((1 - momentum) * rv[ch] + momentum * var * static_cast<double>(m) / (m - 1));
        }
      } else {
        mu = rm[ch];
        var = rv[ch];
      }
      const double s = 1.0 / std::sqrt(var + eps);
      invstd[ch] = s;
      const double gamma = affine ? weight.data<T>()[ch] : 1.0;
      const double beta = affine ? bias.data<T>()[ch] : 0.0;
      dims.for_each(ch, [&](std::int64_t i) {
        const double h = (xv[i] - mu) * s;
        hv[i] = static_cast<T>(h);
        yv[i] = static_cast<T>(gamma * h + beta);
      });
    }
  });

  auto backward = [hs = saved(xhat), ws = affine ? saved(weight) : Tensor(), invstd, dims, training, affine](
                      const Tensor& g, InputGrads& grads) {
    dispatch_float(g.dtype(), "batch_norm", [&](auto tag) {
      using T = decltype(tag);
      const T* gv = g.data<T>();
      const T* hv = hs.data<T>();
      const double count = static_cast<double>(dims.per_channel());
      Tensor gx = grads.needs(0) ? empty(hs.shape(), hs.dtype()) : Tensor();
      Tensor gw = affine ? empty(Shape{dims.c}, hs.dtype()) : Tensor();
      Tensor gb = affine ? empty(Shape{dims.c}, hs.dtype()) : Tensor();
      for (std::int64_t ch = 0; ch < dims.c; ++ch) {
        double sum_g = 0;    // Σ dy   = dβ
        double sum_g_h = 0;  // Σ dy·x̂ = dγ
        dims.for_each(ch, [&](std::int64_t i) {
          sum_g += gv[i];
          sum_g_h += gv[i] * hv[i];
        });
        if (affine) {
          gw.data<T>()[ch] = static_cast<T>(sum_g_h);
          gb.data<T>()[ch] = static_cast<T>(sum_g);
        }
        if (!gx.defined()) continue;
        const double scale = (affine ? ws.data<T>()[ch] : 1.0) * invstd[ch];
        T* out = gx.data<T>();
        if (training) {
          dims.for_each(ch, [&](std::int64_t i) {
            out[i] = static_cast<T>(scale * (gv[i] - (sum_g + hv[i] * sum_g_h) / count));
          });
        } else {
          dims.for_each(ch, [&](std::int64_t i) { out[i] = static_cast<T>(scale * gv[i]); });
        }
      }
      if (gx.defined()) grads.add(0, std::move(gx));
      if (affine && grads.needs(1)) grads.add(1, std::move(gw));
      if (affine && grads.needs(2)) grads.add(2, std::move(gb));
    });
  };
  if (affine) {
    return record_op({kOp, training ? "y = γ (x - μ_B) / √(σ²_B + ε) + β" : "y = γ (x - μ_run) / √(σ²_run + ε) + β"}, y,
                     {&x, &weight, &bias}, backward);
  }
  return record_op({kOp, training ? "y = (x - μ_B) / √(σ²_B + ε)" : "y = (x - μ_run) / √(σ²_run + ε)"}, y, {&x},
                   backward);
}

}  // namespace tapegrad
