#pragma once
// Convolutions over NCHW images (and NCL sequences): conv2d, conv1d, the
// transposed convolution and the weight gradient of a convolution, as ops.
//
// The three 2-D ops close under differentiation, so a convolution's
// gradient is differentiable to any order. With y = conv2d(x, W):
//   dx = conv_transpose2d(dy, W)          (the adjoint of x ↦ conv2d(x, W))
//   dW = conv2d_weight_grad(x, dy, k)     (the adjoint of W ↦ conv2d(x, W))
// and each of those two is again bilinear, with derivatives written with
// the same three ops.
//
// Output size. Along each spatial axis, an input of extent H, padded by p on
// both sides, with a kernel of k taps spaced d apart (dilation) moved by s
// (stride), gives
//     H_out = ⌊(H + 2p − d(k − 1) − 1) / s⌋ + 1
// outputs. Receptive field: output i reads the inputs i·s − p + j·d for
// j = 0..k−1, a window d(k − 1) + 1 wide; stacking layers adds their
// windows' widths minus one, times the product of the strides before them.
//
// How: im2col (each output pixel's window copied into a column), one
// matrix product per group for a chunk of images (BLAS transpose flags,
// no transposed copies), col2im for the input gradient.
#include <cstdint>

#include "tapegrad/ops/window.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

struct Conv2dOptions {
  Size2 stride = 1;
  Size2 padding = 0;  // zeros added on both sides of each spatial axis
  Size2 dilation = 1;
  // Channels split into `groups` independent convolutions: input channels
  // and output channels must both be divisible by it (groups = C is a
  // depthwise convolution).
  std::int64_t groups = 1;
};

/// 2-D convolution (cross-correlation, as in PyTorch and every framework):
///   y[n, o, i, j] = b[o] + Σ_{c, u, v} W[o, c, u, v] · x[n, g·C/G + c, i·s_h − p_h + u·d_h, j·s_w − p_w + v·d_w]
/// for output channel o in group g. x [N, C, H, W]; weight [O, C/groups,
/// kH, kW]; bias [O] or undefined; y [N, O, H_out, W_out] (the formula
/// above). dx = conv_transpose2d(dy, W), dW = conv2d_weight_grad(x, dy,
/// {kH, kW}), db = Σ_{n,i,j} dy.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), Conv2dOptions options = {});

struct Conv1dOptions {
  std::int64_t stride = 1;
  std::int64_t padding = 0;
  std::int64_t dilation = 1;
  std::int64_t groups = 1;
};

/// 1-D convolution over sequences: x [N, C, L], weight [O, C/groups, k],
/// bias [O] or undefined; y [N, O, L_out] with L_out as H_out above. The
/// 2-D convolution of x viewed as [N, C, 1, L].
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), Conv1dOptions options = {});

struct ConvTranspose2dOptions {
  Size2 stride = 1;
  Size2 padding = 0;
  // Extra rows/columns at the bottom/right of the output, to pick one of the
  // `stride` input sizes a strided convolution maps to the same output
  // size; must be smaller than the stride.
  Size2 output_padding = 0;
  Size2 dilation = 1;
  std::int64_t groups = 1;
};

/// Transposed convolution (the adjoint of conv2d in x; "deconvolution"):
/// x [N, C_in, H, W]; weight [C_in, C_out/groups, kH, kW] (the layout of
/// the conv2d it transposes, whose input channels are C_out); bias [C_out]
/// or undefined; y [N, C_out, H_out, W_out] with
///     H_out = (H − 1)·s − 2p + d(k − 1) + 1 + output_padding,
/// so that conv2d of a [.., H_out, W_out] input with the same options has
/// output [.., H, W]. conv_transpose2d(dy, W, {}, options) is the input
/// gradient of y = conv2d(x, W, {}, options) for the right output_padding.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        ConvTranspose2dOptions options = {});

/// The weight gradient of y = conv2d(x, W, ..., options) for the output
/// gradient dy: dW[o, c, u, v] = Σ_{n,i,j} dy[n, o, i, j] · x[n, g·C/G + c,
/// i·s − p + u·d, j·s − p + v·d] for a kernel of size `kernel`; dW
/// [O, C/groups, kH, kW] with O = dy's channels. Linear in x and in dy, and
/// differentiable in both.
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& grad_output, Size2 kernel, Conv2dOptions options = {});

/// Which code runs the float32 convolutions (float64 always runs im2col,
/// the reference). OneDnn needs a build with -DTAPEGRAD_ONEDNN=ON (Debian's
/// libdnnl-dev): oneDNN's JIT kernels (AVX-512 where the CPU has it), with
/// a reorder to and from its blocked layouts around each call. The default
/// is Im2col, or OneDnn when the environment variable
/// TAPEGRAD_CONV_BACKEND=onednn is set and oneDNN is built in. Process-wide.
enum class ConvBackend { Im2col, OneDnn };
void set_conv_backend(ConvBackend backend);
ConvBackend conv_backend();
bool onednn_available();

}  // namespace tapegrad
