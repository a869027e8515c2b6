#pragma once
// Differentiable ops behind the nn layers: dropout and batch normalisation.
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

/// Batch normalisation of x [N, C] or [N, C, L] per channel c (axis 1), over
/// the M = N·L values of that channel:
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
