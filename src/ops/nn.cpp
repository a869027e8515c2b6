// Dropout, channel dropout and batch normalisation.
//
// batch_norm is one fused node rather than a composition of mean, sub, mul,
// sqrt and div: the composed graph would record ~8 nodes and allocate ~6
// temporaries of the input's size per call, and its backward would walk all
// of them; the fused backward is the closed form below, two passes over the
// data. The formula is gradient-checked in float64 (tests/test_nn.cpp).
// A create-graph backward writes the same closed form with ops, the batch
// statistics recomputed from x with mean ops, so that it is differentiable
// again (gradgradcheck in tests/test_nn.cpp).
#include "tapegrad/ops/nn.hpp"

#include <cmath>
#include <type_traits>
#include <vector>

#include "core/dispatch.hpp"
#include "core/sampling.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"
#include "tapegrad/random.hpp"

namespace tapegrad {

namespace {

using detail::dispatch_float;

void check_probability(const char* op, double p) {
  if (!(p >= 0 && p < 1)) throw_invalid(op, "p must be in [0, 1), got ", p);
}

// The shape of dropout2d's mask for x [N, C, H, W] or [C, H, W]: x's with H
// and W set to 1.
Shape channel_mask_shape(const Tensor& x) {
  if (x.dim() != 3 && x.dim() != 4) {
    throw_invalid("dropout2d", "expects input [N x C x H x W] or [C x H x W], got ", x.shape().str());
  }
  Shape shape = x.shape();
  shape[x.dim() - 1] = 1;
  shape[x.dim() - 2] = 1;
  return shape;
}

}  // namespace

Tensor dropout_mask(const Shape& shape, double p, DType dtype, Generator* generator) {
  check_probability("dropout_mask", p);
  if (!is_floating(dtype)) throw_invalid("dropout_mask", "needs a floating-point dtype, got ", dtype_name(dtype));
  Tensor mask = empty(shape, dtype, "dropout_mask");
  const double keep_scale = 1.0 / (1.0 - p);
  dispatch_float(dtype, "dropout_mask", [&](auto tag) {
    using T = decltype(tag);
    // The generator is looked up when the kernel runs (see rand).
    launch(
        "dropout_mask",
        [generator, n = mask.numel(), p, keep = static_cast<T>(keep_scale)](T* out) {
          detail::sample_bernoulli(generator ? *generator : current_generator(), out, n, p, T(0), keep);
        },
        mask);
  });
  return mask;
}

namespace {

// out = x ⊙ mask: dropout's forward and backward kernel.
template <class T>
auto masked_product(std::int64_t n) {
  return [n](const T* x, const T* mask, T* out) {
    for (std::int64_t i = 0; i < n; ++i) out[i] = x[i] * mask[i];
  };
}

}  // namespace

Tensor dropout(const Tensor& x, const Tensor& mask) {
  constexpr const char* kOp = "dropout";
  detail::check_same_dtype(kOp, x, mask);
  detail::check_floating(kOp, x);
  if (mask.shape() != x.shape()) {
    throw_invalid(kOp, "mask ", mask.shape().str(), " does not match input ", x.shape().str());
  }
  Tensor y = empty(x.shape(), x.dtype(), kOp);
  dispatch_float(x.dtype(), kOp, [&](auto tag) {
    using T = decltype(tag);
    launch(kOp, masked_product<T>(x.numel()), x, mask, y);
  });
  return record_op({kOp, "y = x ⊙ mask"}, y, {&x}, [ms = saved(mask)](const Tensor& g, InputGrads& grads) {
    if (grads.create_graph()) {  // the mask is a constant: dx = dy ⊙ mask, recorded
      grads.add(0, g * ms);
      return;
    }
    Tensor gx = empty(ms.shape(), ms.dtype(), "dropout");
    dispatch_float(ms.dtype(), "dropout", [&](auto tag) {
      using T = decltype(tag);
      launch("dropout", masked_product<T>(ms.numel()), g, ms, gx);
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

Tensor dropout2d(const Tensor& x, const Tensor& mask) {
  constexpr const char* kOp = "dropout2d";
  detail::check_floating(kOp, x);
  detail::check_same_dtype(kOp, x, mask);
  const Shape expected = channel_mask_shape(x);
  if (mask.shape() != expected) {
    throw_invalid(kOp, "mask ", mask.shape().str(), " does not match input ", x.shape().str(), " (expects ",
                  expected.str(), ")");
  }
  return x * mask;
}

Tensor dropout2d(const Tensor& x, double p, bool training) {
  check_probability("dropout2d", p);
  detail::check_floating("dropout2d", x);
  const Shape mask_shape = channel_mask_shape(x);
  if (!training || p == 0) return x;
  return x * dropout_mask(mask_shape, p, x.dtype());
}

namespace {

// x [N, C, *] viewed as [N, C, L], L the product of the trailing extents (1
// for [N, C], H·W for [N, C, H, W]): element (n, c, l) at (n·C + c)·L + l, so
// a channel is N contiguous runs of L values.
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

// What batch_norm's kernels know besides their buffers.
struct BatchNormSettings {
  Channels dims;
  bool training = false;
  double momentum = 0, eps = 0;
};

// y = γ x̂ + β per channel (γ, β null: 1 and 0), and the channel's μ and
// 1/√(σ² + ε) into stats [2, C] for the backward. In training the batch's
// statistics, and the running ones (rm, rv; null when not tracked)
// updated; in evaluation the running ones read (Running is then const T).
template <class T, class Running>
void batch_norm_channels(const BatchNormSettings& k, const T* xv, const T* gamma, const T* beta, Running* rm,
                         Running* rv, T* yv, double* stats) {
  const Channels& dims = k.dims;
  const std::int64_t m = dims.per_channel();
  const double momentum = k.momentum;
  for (std::int64_t ch = 0; ch < dims.c; ++ch) {
    double mu = 0;
    double var = 0;
    if (k.training) {  // two passes, in double: no cancellation from Σx² - (Σx)²/M
      dims.for_each(ch, [&](std::int64_t i) { mu += xv[i]; });
      mu /= static_cast<double>(m);
      dims.for_each(ch, [&](std::int64_t i) { var += (xv[i] - mu) * (xv[i] - mu); });
      var /= static_cast<double>(m);
      if constexpr (!std::is_const_v<Running>) {
        if (rm) {
          rm[ch] = static_cast<T>((1 - momentum) * rm[ch] + momentum * mu);
          rv[ch] = static_cast<T>((1 - momentum) * rv[ch] + momentum * var * static_cast<double>(m) / (m - 1));
        }
      }
    } else {
      mu = rm[ch];
      var = rv[ch];
    }
    const double s = 1.0 / std::sqrt(var + k.eps);
    stats[ch] = mu;
    stats[dims.c + ch] = s;
    const double g = gamma ? gamma[ch] : 1.0;
    const double b = beta ? beta[ch] : 0.0;
    dims.for_each(ch, [&](std::int64_t i) {
      const double h = (xv[i] - mu) * s;
      yv[i] = static_cast<T>(g * h + b);
    });
  }
}

// The first-order backward: dγ = Σ dy·x̂ and dβ = Σ dy per channel (gw, gb;
// null without affine), and dx (null when not needed).
template <class T>
void batch_norm_backward_channels(const BatchNormSettings& k, const T* gv, const T* xv, const T* gamma,
                                  const double* stats, T* gx, T* gw, T* gb) {
  const Channels& dims = k.dims;
  const double count = static_cast<double>(dims.per_channel());
  for (std::int64_t ch = 0; ch < dims.c; ++ch) {
    const double mu = stats[ch], s = stats[dims.c + ch];
    double sum_g = 0;    // Σ dy   = dβ
    double sum_g_h = 0;  // Σ dy·x̂ = dγ
    dims.for_each(ch, [&](std::int64_t i) {
      sum_g += gv[i];
      sum_g_h += gv[i] * ((xv[i] - mu) * s);
    });
    if (gw) {
      gw[ch] = static_cast<T>(sum_g_h);
      gb[ch] = static_cast<T>(sum_g);
    }
    if (!gx) continue;
    const double scale = (gamma ? gamma[ch] : 1.0) * s;
    if (k.training) {
      dims.for_each(ch, [&](std::int64_t i) {
        gx[i] = static_cast<T>(scale * (gv[i] - (sum_g + (xv[i] - mu) * s * sum_g_h) / count));
      });
    } else {
      dims.for_each(ch, [&](std::int64_t i) { gx[i] = static_cast<T>(scale * gv[i]); });
    }
  }
}

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
  if (x.dim() < 2) throw_invalid(kOp, "expects input [N x C x *] (at least 2 axes), got ", x.shape().str());
  if (!(momentum >= 0 && momentum <= 1)) throw_invalid(kOp, "momentum must be in [0, 1], got ", momentum);
  if (!(eps >= 0)) throw_invalid(kOp, "eps must be >= 0, got ", eps);
  Channels dims{x.shape(0), x.shape(1), 1};
  for (std::size_t a = 2; a < x.dim(); ++a) dims.l *= x.shape()[a];
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

  // Backward keeps x and the per-channel μ and 1/√(σ² + ε) (stats, in
  // double, written by the forward kernel: a replay's batch has its own),
  // and recomputes x̂ = (x - μ)/√(σ² + ε) from them: as many bytes as
  // keeping x̂, and x is what a create-graph backward differentiates.
  Tensor y = empty(x.shape(), x.dtype(), kOp);
  Tensor stats = empty(Shape{2, dims.c}, DType::Float64, kOp);
  const BatchNormSettings settings{dims, training, momentum, eps};
  dispatch_float(x.dtype(), kOp, [&](auto tag) {
    using T = decltype(tag);
    if (training) {  // the running statistics are updated
      launch(
          kOp,
          [settings](const T* xv, const T* gamma, const T* beta, T* rm, T* rv, T* yv, double* st) {
            batch_norm_channels(settings, xv, gamma, beta, rm, rv, yv, st);
          },
          x, weight, bias, running_mean, running_var, y, stats);
    } else {  // the running statistics are read
      launch(
          kOp,
          [settings](const T* xv, const T* gamma, const T* beta, const T* rm, const T* rv, T* yv, double* st) {
            batch_norm_channels(settings, xv, gamma, beta, rm, rv, yv, st);
          },
          x, weight, bias, running_mean, running_var, y, stats);
    }
  });

  auto backward = [xs = saved(x), ws = affine ? saved(weight) : Tensor(), stats, settings, dims, training, affine](
                      const Tensor& g, InputGrads& grads) {
    const double count = static_cast<double>(dims.per_channel());
    if (grads.create_graph()) {
      // The closed form below with ops. In training μ_B and σ²_B are
      // recomputed from x (they depend on it); in evaluation the running
      // statistics are constants.
      // Statistics over every axis but the channel axis 1, kept as [1, C, 1, ...].
      Axes axes{0};
      std::vector<std::int64_t> per_channel{1, dims.c};
      for (std::size_t a = 2; a < xs.dim(); ++a) {
        axes.push_back(static_cast<std::int64_t>(a));
        per_channel.push_back(1);
      }
      const Shape stat_shape(per_channel);
      Tensor xhat, scale;
      if (training) {
        const Tensor centred = xs - mean(xs, axes, /*keepdim=*/true);
        scale = 1.0 / sqrt(mean(centred * centred, axes, /*keepdim=*/true) + settings.eps);
        xhat = centred * scale;
      } else {
        const std::vector<double> st = stats.to_vector();  // μ, then 1/√(σ² + ε)
        const auto middle = st.begin() + dims.c;
        scale = from_vector(std::vector<double>(middle, st.end()), stat_shape, xs.dtype());
        xhat = (xs - from_vector(std::vector<double>(st.begin(), middle), stat_shape, xs.dtype())) * scale;
      }
      const Tensor sum_g = sum(g, axes, /*keepdim=*/true);           // dβ
      const Tensor sum_g_h = sum(g * xhat, axes, /*keepdim=*/true);  // dγ
      if (grads.needs(0)) {
        if (affine) scale = reshape(ws, per_channel) * scale;
        grads.add(0, training ? scale * (g - (sum_g + xhat * sum_g_h) / count) : scale * g);
      }
      if (affine && grads.needs(1)) grads.add(1, reshape(sum_g_h, {dims.c}));
      if (affine && grads.needs(2)) grads.add(2, reshape(sum_g, {dims.c}));
      return;
    }
    constexpr const char* kBackward = "batch_norm";
    Tensor gx = grads.needs(0) ? empty(xs.shape(), xs.dtype(), kBackward) : Tensor();
    Tensor gw = affine ? empty(Shape{dims.c}, xs.dtype(), kBackward) : Tensor();
    Tensor gb = affine ? empty(Shape{dims.c}, xs.dtype(), kBackward) : Tensor();
    dispatch_float(g.dtype(), kBackward, [&](auto tag) {
      using T = decltype(tag);
      launch(
          kBackward,
          [settings](const T* gv, const T* xv, const T* gamma, const double* st, T* gxv, T* gwv, T* gbv) {
            batch_norm_backward_channels(settings, gv, xv, gamma, st, gxv, gwv, gbv);
          },
          g, xs, ws, stats, gx, gw, gb);
    });
    if (gx.defined()) grads.add(0, std::move(gx));
    if (affine && grads.needs(1)) grads.add(1, std::move(gw));
    if (affine && grads.needs(2)) grads.add(2, std::move(gb));
  };
  if (affine) {
    return record_op({kOp, training ? "y = γ (x - μ_B) / √(σ²_B + ε) + β" : "y = γ (x - μ_run) / √(σ²_run + ε) + β"}, y,
                     {&x, &weight, &bias}, backward);
  }
  return record_op({kOp, training ? "y = (x - μ_B) / √(σ²_B + ε)" : "y = (x - μ_run) / √(σ²_run + ε)"}, y, {&x},
                   backward);
}

}  // namespace tapegrad
