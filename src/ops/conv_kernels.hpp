#pragma once
// Internal: the three computations behind the convolution ops, on raw
// buffers (no graph): the convolution itself, its input gradient (a
// transposed convolution) and its weight gradient. Each works on chunks of
// images: im2col copies a chunk's windows into a column matrix, one BLAS
// product per group does the arithmetic, col2im adds columns back. The
// column matrix and its output-side rows live in a workspace the caller
// passes (conv_workspace_size elements), so that the functions allocate
// nothing and run as kernels of a captured step (kernel.hpp).
#include <cstdint>

#include "tapegrad/ops/window.hpp"

namespace tapegrad::detail {

// A convolution's shapes: input [n, c, h, w], weight [o, c/groups, kh, kw],
// output [n, o, oh, ow]. The transposed convolution uses the same
// description with input and output swapped.
struct ConvGeometry {
  std::int64_t n = 0, c = 0, h = 0, w = 0;
  std::int64_t o = 0, kh = 0, kw = 0;
  std::int64_t oh = 0, ow = 0;
  Size2 stride = 1, padding = 0, dilation = 1;
  std::int64_t groups = 1;

  std::int64_t group_in() const { return c / groups; }
  std::int64_t group_out() const { return o / groups; }
  // Rows of one group's column matrix: one per (channel, tap).
  std::int64_t patch() const { return group_in() * kh * kw; }
  std::int64_t pixels() const { return oh * ow; }
  std::int64_t input_size() const { return n * c * h * w; }
  std::int64_t output_size() const { return n * o * oh * ow; }
  std::int64_t weight_size() const { return o * patch(); }
};

// The output extent along one axis: ⌊(in + 2p − d(k − 1) − 1) / s⌋ + 1,
// or 0 or less when the kernel does not fit the padded input.
inline std::int64_t conv_output_extent(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t padding,
                                       std::int64_t dilation) {
  const std::int64_t span = in + 2 * padding - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

// Elements of the workspace the three functions below need for g.
std::int64_t conv_workspace_size(const ConvGeometry& g);

// y = conv(x, w) + bias (bias may be null).
template <class T>
void conv_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, T* workspace);
// gx = the input gradient of conv(·, w) for the output gradient gy
// (overwritten, not accumulated), plus bias[ch] on each channel ch of gx
// (bias may be null).
template <class T>
void conv_input_grad(const ConvGeometry& g, const T* gy, const T* w, const T* bias, T* gx, T* workspace);
// gw = the weight gradient of conv(x, ·) for the output gradient gy.
template <class T>
void conv_weight_grad(const ConvGeometry& g, const T* x, const T* gy, T* gw, T* workspace);
// x [n, c, h, w] += bias[ch] on each channel ch (the transposed
// convolution's bias).
template <class T>
void add_channel_bias(const ConvGeometry& g, const T* bias, T* x);

}  // namespace tapegrad::detail
