#pragma once
// Losses. Each reduces by mean (default), sum or not at all.
#include "tapegrad/tensor.hpp"

namespace tapegrad {

enum class Reduction { Mean, Sum, None };

/// Fused softmax + cross-entropy on logits [N, C] (or [C]).
/// `target` is either int64 class indices [N] (or 0-d), or float
/// probabilities / one-hot rows of the logits' shape.
/// loss_n = -Σ_c y_nc · log_softmax(z_n)_c, computed with log-sum-exp;
/// dz = softmax(z) - y (divided by N for Reduction::Mean).
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction = Reduction::Mean);
/// Negative log-likelihood of log-probabilities [N, C] and int64 classes [N]:
/// loss_n = -logp[n, t_n].
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction = Reduction::Mean);
/// Mean squared error: mean((ŷ - y)²) (Sum gives Σ (ŷ - y)²).
Tensor mse_loss(const Tensor& prediction, const Tensor& target, Reduction reduction = Reduction::Mean);
/// Sum of squared errors: Σ (ŷ - y)², i.e. mse_loss with Reduction::Sum.
Tensor sse_loss(const Tensor& prediction, const Tensor& target);
/// Binary cross-entropy on probabilities p: -(y ln p + (1 - y) ln(1 - p)), each
/// log clamped at -100 as PyTorch does, so p = 0 or 1 gives a finite loss (the
/// same value as PyTorch's). The gradient is the exact derivative of that clamped
/// loss, dp = -y/p + (1 - y)/(1 - p) with a clamped log's term dropped. It differs
/// from PyTorch's (p - y) / max(p(1 - p), 1e-12) where p(1 - p) < 1e-12: at p = 0
/// this gives 1 - y where PyTorch gives -y·1e12, at p = 1 -y where PyTorch gives
/// (1 - y)·1e12, and just inside (e.g. p = 1e-13) the exact (p - y) / (p(1 - p))
/// where PyTorch divides by 1e-12. dy = ln(1 - p) - ln p with the clamped logs,
/// ±100 at p = 0 or 1, where PyTorch gives ±inf.
Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, Reduction reduction = Reduction::Mean);
/// BCE on logits z, stable for any z including ±inf: y·softplus(-z) + (1 - y)·softplus(z)
/// with softplus(z) = max(z, 0) + ln(1 + e^-|z|), a term with weight 0 skipped,
/// so a certain wrong logit (z = +inf, y = 0) costs +inf and a certain right one 0
/// (PyTorch 1.13 gives NaN at z = -inf, and at z = +inf with y = 1);
/// dz = σ(z) - y (finite at ±inf), dy = -z.
Tensor bce_with_logits(const Tensor& logits, const Tensor& target, Reduction reduction = Reduction::Mean);

}  // namespace tapegrad
