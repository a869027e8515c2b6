#pragma once
// Differentiable 2-D pooling of NCHW inputs [N, C, H, W] (float32 or
// float64): max, average and adaptive average, with PyTorch's semantics.
//
// Window geometry along each spatial axis, for input extent I, kernel k,
// stride s, padding p, dilation d (d = 1 for the average pools):
//   output O = ⌊(I + 2p - d·(k - 1) - 1 + (ceil_mode ? s - 1 : 0)) / s⌋ + 1,
//   less one with ceil_mode if the last window would start at or past
//   I + p (every window starts inside the input or its left padding);
//   window o covers the positions o·s - p + j·d, j = 0 .. k-1.
// Padding must be at most half the kernel (p <= ⌊k/2⌋) and O >= 1 on both
// axes; a stride of 0 (the default) means the kernel size.
//
// Each pool is one node whose backward is itself a recorded op with its own
// derivative, so every pool is differentiable to any order.
#include "tapegrad/ops/window.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

struct MaxPool2dOptions {
  Size2 stride = 0;  // 0: the kernel size
  Size2 padding = 0;
  Size2 dilation = 1;
  bool ceil_mode = false;
};

/// y[n,c,i,j] = max of x[n,c,·,·] over window (i, j); padding counts as
/// -inf (never the max). The argmax is the first maximum in the window's
/// row-major scan (ties: the first gets the whole gradient), except that a
/// NaN is the max: it propagates, and the last NaN in the scan is the argmax
/// (as PyTorch on CPU). dx = dy scattered (added) to each window's argmax;
/// its derivative in dy is the gather of the argmax positions, whose
/// derivative is the scatter again. A window holding only padding (possible
/// with dilation) yields -inf and passes no gradient.
Tensor max_pool2d(const Tensor& x, Size2 kernel, MaxPool2dOptions options = {});

struct AvgPool2dOptions {
  Size2 stride = 0;  // 0: the kernel size
  Size2 padding = 0;
  bool ceil_mode = false;
  // Divide by the window's size including padding (but not the part a
  // ceil_mode window reaches past the right padding), else by the number of
  // input elements it covers.
  bool count_include_pad = true;
};

/// y[n,c,i,j] = Σ_window x[n,c,·,·] / divisor(i, j), padding counted as 0;
/// the divisor is per count_include_pad. y is linear in x: dx = dy/divisor
/// spread over each window (the adjoint), whose derivative in dy is
/// avg_pool2d again.
Tensor avg_pool2d(const Tensor& x, Size2 kernel, AvgPool2dOptions options = {});

/// Mean of x over bins giving an output [N, C, OH, OW]: output row i averages
/// input rows ⌊i·H/OH⌋ .. ⌈(i+1)·H/OH⌉ - 1 (columns alike), as PyTorch;
/// bins overlap when OH does not divide H. output_size 1 is global average
/// pooling. Linear, with the adjoint as backward, as avg_pool2d.
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size);

}  // namespace tapegrad
