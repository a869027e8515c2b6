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
/// log clamped at -100 as PyTorch does, so p = 0 or 1 gives a finite loss.
Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, Reduction reduction = Reduction::Mean);
/// BCE on logits z, stable for any |z|: max(z, 0) - z·y + ln(1 + e^-|z|);
/// dz = σ(z) - y.
Tensor bce_with_logits(const Tensor& logits, const Tensor& target, Reduction reduction = Reduction::Mean);

}  // namespace tapegrad
