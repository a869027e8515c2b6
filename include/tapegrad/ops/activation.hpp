#pragma once
// The activation functions of the lecture table, plus softmax and
// log-softmax. Each doc line gives f and f'.
#include <cstdint>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

/// y = x; y' = 1.
Tensor identity(const Tensor& x);
/// y = 1 / (1 + e^-x) (evaluated without overflow); y' = y(1 - y).
Tensor sigmoid(const Tensor& x);
/// y = tanh x; y' = 1 - y².
Tensor tanh(const Tensor& x);
/// y = max(0, x); y' = 1 for x > 0, else 0.
Tensor relu(const Tensor& x);
/// y = x for x > 0, slope·x otherwise; y' = 1 or slope.
Tensor leaky_relu(const Tensor& x, double slope = 0.01);
/// y = ln(1 + e^x) (stable for large |x|); y' = σ(x).
Tensor softplus(const Tensor& x);
/// y = clamp(x, low, high); y' = 1 inside [low, high], else 0.
Tensor hard_tanh(const Tensor& x, double low = -1.0, double high = 1.0);
/// y = arctan x; y' = 1 / (1 + x²).
Tensor arctan(const Tensor& x);
/// y = sin x; y' = cos x.
Tensor sin(const Tensor& x);
/// y = cos x; y' = -sin x.
Tensor cos(const Tensor& x);
/// y = sin x / x (1 at 0); y' = cos x / x - sin x / x² (0 at 0).
Tensor sinc(const Tensor& x);
/// y = e^(-x²); y' = -2x·y.
Tensor gaussian(const Tensor& x);
/// y = (√(x² + 1) - 1) / 2 + x; y' = x / (2√(x² + 1)) + 1.
Tensor bent_identity(const Tensor& x);
/// Soft exponential with a learnable scalar α (shape [] or [1]):
/// α < 0: -ln(1 - α(x + α)) / α;  α = 0: x;  α > 0: (e^(αx) - 1) / α + α.
/// Differentiable in x and in α.
Tensor soft_exponential(const Tensor& x, const Tensor& alpha);
/// y = 1 for x >= 0, else 0; zero gradient (see binary_step_ste).
Tensor binary_step(const Tensor& x);
/// y = sign(x) ∈ {-1, 0, 1}; zero gradient (see sign_ste).
Tensor sign(const Tensor& x);
/// Straight-through binary step: forward as binary_step, backward passes dy
/// unchanged where |x| <= 1 (0 elsewhere), so a perceptron can be trained.
Tensor binary_step_ste(const Tensor& x);
/// Straight-through sign: forward as sign, backward as hard_tanh (dy where |x| <= 1).
Tensor sign_ste(const Tensor& x);
/// y_i = e^(x_i - max) / Σ_j e^(x_j - max) along `axis`; dx = y ⊙ (dy - Σ dy ⊙ y).
Tensor softmax(const Tensor& x, std::int64_t axis = -1);
/// y = x - max - ln Σ e^(x - max) along `axis`; dx = dy - softmax(x) · Σ dy.
Tensor log_softmax(const Tensor& x, std::int64_t axis = -1);

}  // namespace tapegrad
