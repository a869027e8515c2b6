#pragma once
// Linear algebra. Products go through CBLAS sgemm/dgemm on contiguous
// buffers; transposes in the backward pass are passed as flags, never
// materialised.
#include <cstdint>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

/// C = A·B for [m,k]·[k,n], batched [b,m,k]·[b,k,n], or [b,m,k]·[k,n] (B shared);
/// dA = dC·Bᵀ, dB = Aᵀ·dC (summed over the batch when B is shared).
Tensor matmul(const Tensor& a, const Tensor& b);
/// y = x·Wᵀ + b for x [..., in], W [out, in], b [out] (b may be undefined);
/// dx = dy·W, dW = dyᵀ·x, db = Σ dy.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
/// Swaps two axes (default: the last two); dx = transpose of dy.
Tensor transpose(const Tensor& x, std::int64_t axis0 = -2, std::int64_t axis1 = -1);
/// Reorders axes: y.shape[i] = x.shape[dims[i]]; dx = dy permuted back.
Tensor permute(const Tensor& x, const std::vector<std::int64_t>& dims);

}  // namespace tapegrad
