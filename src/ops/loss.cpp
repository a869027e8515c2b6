// Losses, each one fused node: the per-element losses are computed in
// double, reduced (mean, sum or none), and backward writes each input's
// gradient in one pass. Fusing is what keeps cross_entropy, BCE and
// BCE-with-logits finite for extreme inputs; the composed forms would
// take the log of an underflowed probability.
//
// In a create-graph pass each backward computes the same gradient with
// differentiable ops instead (softmax, sigmoid, log_softmax: the stable ops),
// so that it is recorded and differentiable again; the fused loops stay for
// plain backward.
#include "tapegrad/ops/loss.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/dispatch.hpp"
#include "ops/lane_softmax.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/ops/activation.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad {

namespace {

using detail::dispatch_float;

// Folds per-element losses into the output: a 0-d sum or mean (summed in
// double), or the losses themselves for Reduction::None.
Tensor reduce_losses(const Tensor& losses, Reduction reduction) {
  if (reduction == Reduction::None) return losses;
  Tensor result = empty(Shape{}, losses.dtype(), "loss");
  dispatch_float(losses.dtype(), "loss", [&](auto tag) {
    using T = decltype(tag);
    launch(
        "loss",
        [n = losses.numel(), mean = reduction == Reduction::Mean](const T* v, T* out) {
          double total = 0;
          for (std::int64_t k = 0; k < n; ++k) total += v[k];
          // Mean of no elements is 0/0 = NaN, as in PyTorch.
          if (mean) total /= static_cast<double>(n);
          out[0] = static_cast<T>(total);
        },
        losses, result);
  });
  return result;
}

// The share of the output gradient that reaches loss element k: dy[k] for
// Reduction::None; otherwise the one dy, divided by the count for Mean.
template <class T>
class LossGrad {
 public:
  LossGrad(const Tensor& grad, Reduction reduction, std::int64_t count) : LossGrad(grad.data<T>(), reduction, count) {}
  LossGrad(const T* grad, Reduction reduction, std::int64_t count)
      : g_(grad), per_element_(reduction == Reduction::None) {
    if (!per_element_) shared_ = g_[0] * (reduction == Reduction::Mean ? 1.0 / static_cast<double>(count) : 1.0);
  }
  double operator[](std::int64_t k) const { return per_element_ ? static_cast<double>(g_[k]) : shared_; }

 private:
  const T* g_;
  bool per_element_;
  double shared_ = 0;
};

// The same share as a Tensor, for a create-graph pass: dy for
// Reduction::None, the one (0-d) dy for Sum, dy / count for Mean. It
// broadcasts against the loss elements, and is recorded: in a second-order
// pass dy itself depends on the inputs.
Tensor loss_weight(const Tensor& grad, Reduction reduction, std::int64_t count) {
  if (reduction == Reduction::Mean) return grad / static_cast<double>(count);
  return grad;
}

// Per-sample weights against [N, C] scores: [N] → [N, 1] for Reduction::None.
Tensor sample_weight(const Tensor& grad, Reduction reduction, std::int64_t samples, const Shape& scores) {
  Tensor w = loss_weight(grad, reduction, samples);
  return reduction == Reduction::None && scores.rank() == 2 ? unsqueeze(w, -1) : w;
}

// One-hot rows of the scores' shape and dtype for int64 class targets: a
// constant (targets are not differentiable).
Tensor one_hot_of(const Tensor& target, const Shape& scores, DType dtype) {
  Tensor rows = zeros(scores, dtype);
  const std::int64_t classes = scores.back();
  dispatch_float(dtype, "one_hot", [&](auto tag) {
    using T = decltype(tag);
    T* out = rows.data<T>();
    const std::int64_t* t = target.data<std::int64_t>();
    for (std::int64_t n = 0, end = target.numel(); n < end; ++n) out[n * classes + t[n]] = T(1);
  });
  return rows;
}

// Elementwise losses take a target of exactly the input's shape and dtype:
// broadcasting [N, 1] against [N] would silently build an [N, N] loss.
void check_elementwise_pair(const char* op, const char* input_name, const Tensor& input, const Tensor& target) {
  detail::check_same_dtype(op, input, target);
  detail::check_floating(op, input);
  if (target.shape() != input.shape()) {
    throw_invalid(op, "target ", target.shape().str(), " does not match ", input_name, " ", input.shape().str());
  }
}

// Class-index targets: int64 [N] for [N, C] scores, 0-d for [C].
void check_class_target_shape(const char* op, const char* input_name, const Tensor& input, const Tensor& target) {
  const Shape expected = input.dim() == 2 ? Shape{input.shape(0)} : Shape{};
  if (target.shape() != expected) {
    throw_invalid(op, "target ", target.shape().str(), " does not match ", input_name, " ", input.shape().str());
  }
}

// Inside the kernels that index by class: a replayed step sees new targets.
void check_class_values(const char* op, const std::int64_t* t, std::int64_t count, std::int64_t classes) {
  for (std::int64_t n = 0; n < count; ++n) {
    if (t[n] < 0 || t[n] >= classes) {
      throw_out_of_range(op, "target ", t[n], " of sample ", n, " is out of range for ", classes, " classes");
    }
  }
}

void check_scores(const char* op, const char* input_name, const Tensor& input) {
  detail::check_floating(op, input);
  if (input.dim() != 1 && input.dim() != 2) {
    throw_invalid(op, "expects ", input_name, " [N, C] or [C], got ", input.shape().str());
  }
  if (input.shape().back() == 0) throw_invalid(op, input_name, " ", input.shape().str(), " have no classes");
}

// The per-sample shape of a [N, C] or [C] score tensor.
Shape sample_shape(const Tensor& scores) { return scores.dim() == 2 ? Shape{scores.shape(0)} : Shape{}; }

// squared error under either name (mse_loss, sse_loss).
Tensor squared_error(const Tensor& prediction, const Tensor& target, Reduction reduction, OpInfo info) {
  check_elementwise_pair(info.name, "prediction", prediction, target);
  Tensor losses = empty(prediction.shape(), prediction.dtype(), info.name);
  dispatch_float(prediction.dtype(), info.name, [&](auto tag) {
    using T = decltype(tag);
    launch(
        info.name,
        [n = losses.numel()](const T* p, const T* t, T* out) {
          for (std::int64_t k = 0; k < n; ++k) {
            const double d = static_cast<double>(p[k]) - t[k];
            out[k] = static_cast<T>(d * d);
          }
        },
        prediction, target, losses);
  });
  Tensor y = reduce_losses(losses, reduction);
  if (!any_requires_grad({&prediction, &target})) return unrecorded(info, y, {&prediction, &target});
  return record_op(
      info, y, {&prediction, &target},
      [ps = saved(prediction), ts = saved(target), reduction, name = info.name](const Tensor& g, InputGrads& grads) {
        // d/dŷ (ŷ - y)² = 2(ŷ - y) = -d/dy.
        if (grads.create_graph()) {
          const Tensor gp = loss_weight(g, reduction, ps.numel()) * (2.0 * (ps - ts));
          if (grads.needs(0)) grads.add(0, gp);
          if (grads.needs(1)) grads.add(1, -gp);
          return;
        }
        Tensor gp = empty(ps.shape(), ps.dtype(), name);
        Tensor gt = grads.needs(1) ? empty(ps.shape(), ps.dtype(), name) : Tensor();
        dispatch_float(ps.dtype(), name, [&](auto tag) {
          using T = decltype(tag);
          launch(
              name,
              [reduction, n = ps.numel()](const T* p, const T* t, const T* grad, T* out, T* negated) {
                const LossGrad<T> w(grad, reduction, n);
                for (std::int64_t k = 0; k < n; ++k) {
                  out[k] = static_cast<T>(2 * (static_cast<double>(p[k]) - t[k]) * w[k]);
                }
                if (negated != nullptr) {
                  for (std::int64_t k = 0; k < n; ++k) negated[k] = -out[k];
                }
              },
              ps, ts, g, gp, gt);
        });
        if (grads.needs(1)) grads.add(1, std::move(gt));
        if (grads.needs(0)) grads.add(0, std::move(gp));
      });
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction) {
  constexpr const char* op = "cross_entropy";
  check_scores(op, "logits", logits);
  detail::check_defined(op, target);
  const bool indexed = target.dtype() == DType::Int64;
  if (indexed) {
    check_class_target_shape(op, "logits", logits, target);  // the values: in the kernel
  } else {
    check_elementwise_pair(op, "logits", logits, target);
  }
  const std::int64_t classes = logits.shape().back();
  const std::int64_t samples = logits.numel() / classes;
  Tensor losses = empty(sample_shape(logits), logits.dtype(), op);
  // ln Σ_c e^(z_c) per sample, kept for backward: softmax = e^(z - lse).
  Tensor lse = empty(Shape{samples}, DType::Float64, op);
  dispatch_float(logits.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    launch(
        op,
        [samples, classes](const T* z, const std::int64_t* classes_of, const T* soft, T* out, double* lse_v) {
          if (classes_of != nullptr) check_class_values("cross_entropy", classes_of, samples, classes);
          for (std::int64_t n = 0; n < samples; ++n) {
            const T* row = z + n * classes;
            const auto [top, total] = detail::max_and_exp_sum(row, classes);
            const double log_norm = top + std::log(total);
            lse_v[n] = log_norm;
            double loss = 0;
            if (classes_of != nullptr) {
              loss = log_norm - row[classes_of[n]];
            } else {
              const T* y = soft + n * classes;
              for (std::int64_t c = 0; c < classes; ++c) {
                // Skipping y = 0 keeps a -inf logit from turning 0·∞ into NaN.
                if (y[c] != 0) loss += y[c] * (log_norm - row[c]);
              }
            }
            out[n] = static_cast<T>(loss);
          }
        },
        logits, indexed ? target : no_buffer(), indexed ? no_buffer() : target, losses, lse);
  });
  Tensor result = reduce_losses(losses, reduction);
  const OpInfo info{op, "loss = -Σ y · log_softmax(z); dz = softmax(z) - y"};
  if (!any_requires_grad({&logits, &target})) return unrecorded(info, result, {&logits, &target});
  return record_op(
      info, result, {&logits, &target},
      [zs = saved(logits), ts = saved(target), lse, indexed, reduction, samples, classes](const Tensor& g,
                                                                                          InputGrads& grads) {
        if (grads.create_graph()) {
          // The same gradients from the stable softmax and log_softmax ops, recorded.
          const Tensor w = sample_weight(g, reduction, samples, zs.shape());
          if (indexed) {
            if (grads.needs(0)) grads.add(0, w * (softmax(zs, -1) - one_hot_of(ts, zs.shape(), zs.dtype())));
            return;
          }
          if (grads.needs(0)) grads.add(0, w * (sum(ts, {-1}, /*keepdim=*/true) * softmax(zs, -1) - ts));
          if (grads.needs(1)) grads.add(1, -(w * log_softmax(zs, -1)));
          return;
        }
        Tensor gz = grads.needs(0) ? empty(zs.shape(), zs.dtype(), op) : Tensor();
        Tensor gt = grads.needs(1) ? empty(zs.shape(), zs.dtype(), op) : Tensor();
        dispatch_float(zs.dtype(), op, [&](auto tag) {
          using T = decltype(tag);
          launch(
              op,
              [reduction, samples, classes](const T* z, const double* lse_v, const T* grad,
                                            const std::int64_t* classes_of, const T* soft, T* gz_v, T* gt_v) {
                const LossGrad<T> w(grad, reduction, samples);
                for (std::int64_t n = 0; n < samples; ++n) {
                  const T* row = z + n * classes;
                  const double wn = w[n];
                  if (gz_v != nullptr) {
                    T* out = gz_v + n * classes;
                    if (classes_of != nullptr) {
                      for (std::int64_t c = 0; c < classes; ++c)
                        out[c] = static_cast<T>(wn * std::exp(row[c] - lse_v[n]));
                      const std::int64_t t = classes_of[n];
                      out[t] = static_cast<T>(out[t] - wn);
                    } else {
                      // d/dz_c Σ_k y_k (lse - z_k) = (Σ_k y_k) p_c - y_c: softmax - y
                      // for proper distributions, and still exact when rows do not sum to 1.
                      const T* y = soft + n * classes;
                      double mass = 0;
                      for (std::int64_t c = 0; c < classes; ++c) mass += y[c];
                      for (std::int64_t c = 0; c < classes; ++c) {
                        out[c] = static_cast<T>(wn * (mass * std::exp(row[c] - lse_v[n]) - y[c]));
                      }
                    }
                  }
                  if (gt_v != nullptr) {
                    // Soft targets: d loss / d y_c = lse - z_c = -log_softmax(z)_c.
                    T* out = gt_v + n * classes;
                    for (std::int64_t c = 0; c < classes; ++c) out[c] = static_cast<T>(wn * (lse_v[n] - row[c]));
                  }
                }
              },
              zs, lse, g, indexed ? ts : no_buffer(), indexed ? no_buffer() : ts, gz, gt);
        });
        if (gz.defined()) grads.add(0, std::move(gz));
        if (gt.defined()) grads.add(1, std::move(gt));
      });
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction) {
  constexpr const char* op = "nll_loss";
  check_scores(op, "log_probs", log_probs);
  detail::check_defined(op, target);
  if (target.dtype() != DType::Int64) {
    throw_invalid(op, "expects int64 class indices, got ", dtype_name(target.dtype()), " ", target.shape().str());
  }
  check_class_target_shape(op, "log_probs", log_probs, target);  // the values: in the kernel
  const std::int64_t classes = log_probs.shape().back();
  const std::int64_t samples = log_probs.numel() / classes;
  Tensor losses = empty(sample_shape(log_probs), log_probs.dtype(), op);
  dispatch_float(log_probs.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    launch(
        op,
        [samples, classes](const T* lp, const std::int64_t* t, T* out) {
          check_class_values("nll_loss", t, samples, classes);
          for (std::int64_t n = 0; n < samples; ++n) out[n] = -lp[n * classes + t[n]];
        },
        log_probs, target, losses);
  });
  Tensor result = reduce_losses(losses, reduction);
  const OpInfo info{op, "loss = -logp[t]"};
  if (!any_requires_grad({&log_probs})) return unrecorded(info, result, {&log_probs});
  return record_op(
      info, result, {&log_probs, &target},
      [shape = log_probs.shape(), ts = saved(target), reduction, samples, classes](const Tensor& g, InputGrads& grads) {
        if (grads.create_graph()) {  // linear in dy: -dy at the target classes, recorded
          grads.add(0, -(sample_weight(g, reduction, samples, shape) * one_hot_of(ts, shape, g.dtype())));
          return;
        }
        Tensor gx = empty(shape, g.dtype(), op);
        dispatch_float(g.dtype(), op, [&](auto tag) {
          using T = decltype(tag);
          launch(
              op,
              [reduction, samples, classes](const std::int64_t* t, const T* grad, T* out) {
                std::fill_n(out, samples * classes, T(0));
                const LossGrad<T> w(grad, reduction, samples);
                for (std::int64_t n = 0; n < samples; ++n) out[n * classes + t[n]] = static_cast<T>(-w[n]);
              },
              ts, g, gx);
        });
        grads.add(0, std::move(gx));
      });
}

Tensor mse_loss(const Tensor& prediction, const Tensor& target, Reduction reduction) {
  return squared_error(prediction, target, reduction, {"mse_loss", "loss = mean((ŷ - y)²)"});
}

Tensor sse_loss(const Tensor& prediction, const Tensor& target) {
  return squared_error(prediction, target, Reduction::Sum, {"sse_loss", "loss = Σ (ŷ - y)²"});
}

Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, Reduction reduction) {
  constexpr const char* op = "binary_cross_entropy";
  check_elementwise_pair(op, "probs", probs, target);
  // ln p and ln(1 - p), each clamped at -100 as PyTorch does: p = 0 or 1
  // then costs at most 100 instead of ∞. log1p keeps ln(1 - p) exact for tiny p.
  auto clamped_logs = [](double p) {
    return std::pair{std::max(std::log(p), -100.0), std::max(std::log1p(-p), -100.0)};
  };
  Tensor losses = empty(probs.shape(), probs.dtype(), op);
  dispatch_float(probs.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    launch(
        op,
        [clamped_logs, shape = probs.shape()](const T* p, const T* y, T* out) {
          for (std::int64_t k = 0, end = shape.numel(); k < end; ++k) {
            if (!(p[k] >= 0 && p[k] <= 1)) {
              throw_invalid("binary_cross_entropy", "probabilities must lie in [0, 1], got ", p[k], " at index ", k,
                            " of ", shape.str());
            }
            const auto [log_p, log_q] = clamped_logs(p[k]);
            out[k] = static_cast<T>(-(y[k] * log_p + (1 - static_cast<double>(y[k])) * log_q));
          }
        },
        probs, target, losses);
  });
  Tensor result = reduce_losses(losses, reduction);
  const OpInfo info{op, "loss = -(y ln p + (1 - y) ln(1 - p)), logs clamped at -100"};
  if (!any_requires_grad({&probs, &target})) return unrecorded(info, result, {&probs, &target});
  return record_op(
      info, result, {&probs, &target},
      [ps = saved(probs), ys = saved(target), reduction, clamped_logs](const Tensor& g, InputGrads& grads) {
        if (grads.create_graph()) {
          // Where a log is clamped (p = 0 or 1, or within e^-100 of it) its
          // branch is the constant -100: 0/1 masks of the unclamped logs, as
          // constants, and p (or 1 - p) replaced by 1 under a clamped log, so
          // that neither ln 0 nor 1/0 is ever evaluated (0·∞ would be NaN).
          Tensor keep_p = empty(ps.shape(), ps.dtype());
          Tensor keep_q = empty(ps.shape(), ps.dtype());
          dispatch_float(ps.dtype(), op, [&](auto tag) {
            using T = decltype(tag);
            const T* p = ps.data<T>();
            for (std::int64_t k = 0, end = ps.numel(); k < end; ++k) {
              const auto [log_p, log_q] = clamped_logs(p[k]);
              keep_p.data<T>()[k] = log_p > -100 ? T(1) : T(0);
              keep_q.data<T>()[k] = log_q > -100 ? T(1) : T(0);
            }
          });
          const Tensor p_safe = ps * keep_p + (1.0 - keep_p);
          const Tensor q_safe = (1.0 - ps) * keep_q + (1.0 - keep_q);
          const Tensor w = loss_weight(g, reduction, ps.numel());
          if (grads.needs(0)) grads.add(0, w * (keep_q * (1.0 - ys) / q_safe - keep_p * ys / p_safe));
          if (grads.needs(1)) {
            const Tensor log_p = log(p_safe) * keep_p - 100.0 * (1.0 - keep_p);
            const Tensor log_q = log(q_safe) * keep_q - 100.0 * (1.0 - keep_q);
            grads.add(1, w * (log_q - log_p));
          }
          return;
        }
        Tensor gp = grads.needs(0) ? empty(ps.shape(), ps.dtype(), op) : Tensor();
        Tensor gy = grads.needs(1) ? empty(ps.shape(), ps.dtype(), op) : Tensor();
        dispatch_float(ps.dtype(), op, [&](auto tag) {
          using T = decltype(tag);
          launch(
              op,
              [clamped_logs, reduction, n = ps.numel()](const T* p, const T* y, const T* grad, T* gpv, T* gyv) {
                const LossGrad<T> w(grad, reduction, n);
                for (std::int64_t k = 0; k < n; ++k) {
                  const double pk = p[k], yk = y[k];
                  const auto [log_p, log_q] = clamped_logs(pk);
                  if (gpv) {
                    // The derivative of the clamped loss: a clamped log is flat,
                    // so its 1/p (or 1/(1 - p)) term drops out exactly where it
                    // would be infinite, and the gradient stays finite at 0 and 1.
                    // PyTorch clamps differently, (p - y) / max(p(1 - p), 1e-12):
                    // the two differ near 0 and 1 (ops/loss.hpp says how).
                    const double d_log_p = log_p > -100 ? -yk / pk : 0.0;
                    const double d_log_q = log_q > -100 ? (1 - yk) / (1 - pk) : 0.0;
                    gpv[k] = static_cast<T>(w[k] * (d_log_p + d_log_q));
                  }
                  if (gyv) gyv[k] = static_cast<T>(w[k] * (log_q - log_p));
                }
              },
              ps, ys, g, gp, gy);
        });
        if (gp.defined()) grads.add(0, std::move(gp));
        if (gy.defined()) grads.add(1, std::move(gy));
      });
}

Tensor bce_with_logits(const Tensor& logits, const Tensor& target, Reduction reduction) {
  constexpr const char* op = "bce_with_logits";
  check_elementwise_pair(op, "logits", logits, target);
  Tensor losses = empty(logits.shape(), logits.dtype(), op);
  dispatch_float(logits.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    launch(
        op,
        [n = losses.numel()](const T* z, const T* y, T* out) {
          for (std::int64_t k = 0; k < n; ++k) {
            // -(y ln σ(z) + (1 - y) ln(1 - σ(z))) = y·softplus(-z) + (1 - y)·softplus(z),
            // with softplus(z) = max(z, 0) + ln(1 + e^-|z|): its only exponent, -|z|,
            // is never positive, so nothing overflows and no σ underflows into a log.
            // A term whose weight is 0 is skipped: at z = ±∞ one softplus is ∞, and
            // 0·∞ would turn an exact 0 or ∞ loss into NaN (the form max(z, 0) - z·y
            // + ... makes ∞ - ∞ at z = +∞ for any y).
            const double zk = z[k], yk = y[k];
            const double log_term = std::log1p(std::exp(-std::abs(zk)));
            double loss = 0;
            if (yk != 0) loss += yk * (std::max(-zk, 0.0) + log_term);
            if (yk != 1) loss += (1 - yk) * (std::max(zk, 0.0) + log_term);
            out[k] = static_cast<T>(loss);
          }
        },
        logits, target, losses);
  });
  Tensor result = reduce_losses(losses, reduction);
  const OpInfo info{op, "loss = y·softplus(-z) + (1 - y)·softplus(z); dz = σ(z) - y"};
  if (!any_requires_grad({&logits, &target})) return unrecorded(info, result, {&logits, &target});
  return record_op(info, result, {&logits, &target},
                   [zs = saved(logits), ys = saved(target), reduction](const Tensor& g, InputGrads& grads) {
                     if (grads.create_graph()) {  // σ from the stable sigmoid op, recorded
                       const Tensor w = loss_weight(g, reduction, zs.numel());
                       if (grads.needs(0)) grads.add(0, w * (sigmoid(zs) - ys));
                       if (grads.needs(1)) grads.add(1, -(w * zs));
                       return;
                     }
                     Tensor gz = grads.needs(0) ? empty(zs.shape(), zs.dtype(), op) : Tensor();
                     Tensor gy = grads.needs(1) ? empty(zs.shape(), zs.dtype(), op) : Tensor();
                     dispatch_float(zs.dtype(), op, [&](auto tag) {
                       using T = decltype(tag);
                       launch(
                           op,
                           [reduction, n = zs.numel()](const T* z, const T* y, const T* grad, T* gzv, T* gyv) {
                             const LossGrad<T> w(grad, reduction, n);
                             for (std::int64_t k = 0; k < n; ++k) {
                               const double zk = z[k];
                               if (gzv) {
                                 // σ(z) evaluated on the side where e^(-|z|) cannot overflow.
                                 const double e = std::exp(-std::abs(zk));
                                 const double sigma = zk >= 0 ? 1 / (1 + e) : e / (1 + e);
                                 gzv[k] = static_cast<T>(w[k] * (sigma - y[k]));
                               }
                               if (gyv) gyv[k] = static_cast<T>(-w[k] * zk);
                             }
                           },
                           zs, ys, g, gz, gy);
                     });
                     if (gz.defined()) grads.add(0, std::move(gz));
                     if (gy.defined()) grads.add(1, std::move(gy));
                   });
}

}  // namespace tapegrad
