#pragma once
// Differentiable ops behind the nn layers: dropout, channel dropout and batch
// normalisation.
#include "tapegrad/tensor.hpp"

namespace tapegrad {

/// Inverted-dropout mask from `generator` (else the thread's current
/// generator, random.hpp): each element is 0 with probability p, else
/// 1/(1 - p), so E[x ⊙ mask] = x. p in [0, 1).
Tensor dropout_mask(const Shape& shape, double p, DType dtype = kDefaultDType, Generator* generator = nullptr);
/// y = x ⊙ mask for a mask of x's shape and dtype (a fixed mask makes dropout
/// deterministic, e.g. for gradcheck); dx = dy ⊙ mask.
Tensor dropout(const Tensor& x, const Tensor& mask);
/// Inverted dropout: when `training`, y = x ⊙ dropout_mask(x.shape(), p) (a
/// fresh mask each call); otherwise, or for p = 0, y = x (the same tensor).
Tensor dropout(const Tensor& x, double p, bool training = true);

/// Channel dropout (as PyTorch's Dropout2d) of x [N, C, H, W], or of one
/// sample [C, H, W]: y = x ⊙ mask with mask [N, C, 1, 1] (resp. [C, 1, 1])
/// broadcast over H and W, so that each feature map is kept whole (scaled by
/// the mask's 1/(1 - p)) or zeroed whole; dx = dy ⊙ mask. Recorded as a
/// broadcasting multiply by the constant mask: differentiable to any order.
Tensor dropout2d(const Tensor& x, const Tensor& mask);
/// When `training`, dropout2d(x, dropout_mask([N, C, 1, 1], p)) (a fresh
/// mask each call, from the thread's current generator, so manual_seed
/// reproduces it); otherwise, or for p = 0, y = x (the same tensor).
Tensor dropout2d(const Tensor& x, double p, bool training = true);

/// Batch normalisation of x [N, C, *] (any rank >= 2: [N, C], [N, C, L],
/// [N, C, H, W], ...) per channel c (axis 1), over the M = N·L values of that
/// channel, L the product of the trailing extents (H·W for images):
///   training:   y = γ (x - μ_B) / √(σ²_B + ε) + β with the batch mean μ_B and
///               biased variance σ²_B; then, if the running statistics are
///               defined, they are updated in place (not recorded):
///               running_mean ← (1 - momentum)·running_mean + momentum·μ_B,
///               running_var  ← (1 - momentum)·running_var  + momentum·σ²_B·M/(M - 1)
///               (the unbiased variance, as PyTorch).
///   evaluation: the same with the running statistics in place of μ_B, σ²_B.
/// γ (weight) and β (bias) are [C] or both undefined (no affine transform);
/// running statistics are [C]. One fused node; with x̂ the normalised input,
/// dβ = Σ dy, dγ = Σ dy·x̂, and dx = γ/√(σ²+ε) · (dy - (Σ dy + x̂·Σ dy·x̂)/M)
/// in training (μ_B and σ²_B depend on x), dx = γ/√(σ²+ε) · dy in evaluation.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum = 0.1, double eps = 1e-5);

}  // namespace tapegrad
