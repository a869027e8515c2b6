#pragma once
// Reductions over all elements or over chosen axes (negative axes count
// from the end), optionally keeping the reduced axes with extent 1.
#include <cstdint>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

using Axes = std::vector<std::int64_t>;

/// Σ x over all elements (0-d result); dx = dy broadcast.
Tensor sum(const Tensor& x);
/// Σ x over `axes`; dx = dy broadcast back over the reduced axes.
Tensor sum(const Tensor& x, const Axes& axes, bool keepdim = false);
/// mean over all elements; dx = dy / n.
Tensor mean(const Tensor& x);
/// mean over `axes`; dx = dy / n broadcast, n = number of reduced elements.
Tensor mean(const Tensor& x, const Axes& axes, bool keepdim = false);
/// max over all elements. The gradient is split evenly among tied maxima. A NaN
/// element makes the result NaN (as PyTorch), and the NaNs count as the tied
/// maxima: they share the gradient, the numbers get 0.
Tensor max(const Tensor& x);
/// max over `axes`; dx = dy / k at each of the k tied arg-maxima, 0 elsewhere.
/// A lane holding NaN gives NaN, its k NaNs the tied arg-maxima (PyTorch's
/// max(x, dim) sends the gradient to the first NaN only; amax makes it NaN).
Tensor max(const Tensor& x, const Axes& axes, bool keepdim = false);
/// min over all elements (ties and NaN as max).
Tensor min(const Tensor& x);
/// min over `axes` (ties and NaN as max).
Tensor min(const Tensor& x, const Axes& axes, bool keepdim = false);
/// Unbiased variance over all elements: Σ (x - mean)² / (n - 1).
Tensor var(const Tensor& x);
/// Variance over `axes` (all axes when empty): Σ (x - mean)² / (n - 1) if
/// unbiased, else / n. Composed from mean, sub, mul and sum.
Tensor var(const Tensor& x, const Axes& axes, bool unbiased = true, bool keepdim = false);
/// Index of the largest element along `axis` (first on ties; the first NaN if
/// any, where max gives NaN, as PyTorch); int64, no gradient.
Tensor argmax(const Tensor& x, std::int64_t axis, bool keepdim = false);
/// Index of the largest element of the flattened tensor (first NaN if any); int64 0-d, no gradient.
Tensor argmax(const Tensor& x);

}  // namespace tapegrad
