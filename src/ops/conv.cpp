// Convolution ops: shape checks, and three recorded ops that are each
// other's derivatives (conv2d, its input gradient conv_transpose2d, its
// weight gradient conv2d_weight_grad), so that the gradient of a CNN is
// differentiable again. The arithmetic is in conv_kernels.cpp.
//
// Every one of the three is bilinear, B(a, b), and its two derivatives are
// the adjoints of a ↦ B(a, b) and b ↦ B(a, b), which are the other two ops:
//   y  = conv(x, W):            dx = convᵀ(dy, W)      dW = conv_W(x, dy)
//   dx = convᵀ(g, W):           dg = conv(u, W)        dW = conv_W(u, g)
//   dW = conv_W(x, g):          dx = convᵀ(g, v)       dg = conv(x, v)
// (u, v the gradients reaching convᵀ's and conv_W's outputs).
#include "tapegrad/ops/conv.hpp"

#include <algorithm>
#include <type_traits>

#include "core/dispatch.hpp"
#include "ops/conv_kernels.hpp"
#include "ops/conv_onednn.hpp"
#include "ops/lane_sum.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad {

namespace {

using detail::ConvGeometry;
using detail::dispatch_float;

// What the checks name in their messages: the op, and the shapes as the
// caller gave them (conv1d's 3-D ones, not the 4-D views it convolves).
struct Caller {
  const char* op;
  const Shape& x;
  const Shape& weight;
  bool one_dimensional = false;
};

void check_window_options(const char* op, Size2 stride, Size2 padding, Size2 dilation, std::int64_t groups) {
  if (stride.h < 1 || stride.w < 1) throw_invalid(op, "stride must be >= 1, got ", stride.str());
  if (dilation.h < 1 || dilation.w < 1) throw_invalid(op, "dilation must be >= 1, got ", dilation.str());
  if (padding.h < 0 || padding.w < 0) throw_invalid(op, "padding must be >= 0, got ", padding.str());
  if (groups < 1) throw_invalid(op, "groups must be >= 1, got ", groups);
}

// The kernel, its taps spread by the dilation, must fit the padded input
// along one axis.
void check_kernel_fits(const Caller& caller, const char* axis, std::int64_t in, std::int64_t kernel,
                       std::int64_t padding, std::int64_t dilation) {
  const std::int64_t span = dilation * (kernel - 1) + 1;
  if (span > in + 2 * padding) {
    throw_invalid(caller.op, "kernel ", axis, " ", kernel, " (dilation ", dilation, ") spans ", span,
                  ", more than the padded input ", axis, " ", in + 2 * padding, " (input ", caller.x.str(),
                  ", padding ", padding, ")");
  }
}

// The geometry of a convolution of an [n, c, h, w] input by an
// [o, c/groups, kh, kw] weight, checked.
ConvGeometry conv_geometry(const Caller& caller, const Shape& x, const Shape& weight, Size2 stride, Size2 padding,
                           Size2 dilation, std::int64_t groups) {
  const char* op = caller.op;
  const std::int64_t out_channels = weight[0];
  const std::int64_t per_group = weight[1];
  if (weight[2] < 1 || weight[3] < 1) throw_invalid(op, "kernel size must be >= 1, got weight ", caller.weight.str());
  if (out_channels % groups != 0) {
    throw_invalid(op, "weight ", caller.weight.str(), " has ", out_channels,
                  " output channels, not divisible by groups = ", groups);
  }
  if (x[1] != per_group * groups) {
    if (groups == 1) {
      throw_invalid(op, "input ", caller.x.str(), " has ", x[1], " channels but weight ", caller.weight.str(),
                    " expects ", per_group);
    }
    throw_invalid(op, "input ", caller.x.str(), " has ", x[1], " channels but weight ", caller.weight.str(),
                  " expects ", per_group * groups, " (", per_group, " per group x ", groups, " groups)");
  }
  if (!caller.one_dimensional) check_kernel_fits(caller, "height", x[2], weight[2], padding.h, dilation.h);
  check_kernel_fits(caller, caller.one_dimensional ? "length" : "width", x[3], weight[3], padding.w, dilation.w);
  ConvGeometry g;
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  g.o = out_channels, g.kh = weight[2], g.kw = weight[3];
  g.stride = stride, g.padding = padding, g.dilation = dilation, g.groups = groups;
  g.oh = detail::conv_output_extent(g.h, g.kh, stride.h, padding.h, dilation.h);
  g.ow = detail::conv_output_extent(g.w, g.kw, stride.w, padding.w, dilation.w);
  return g;
}

void check_bias(const char* op, const Tensor& bias, const Tensor& x, std::int64_t channels) {
  if (!bias.defined()) return;
  detail::check_same_dtype(op, x, bias);
  if (bias.shape() != Shape{channels}) {
    throw_invalid(op, "bias ", bias.shape().str(), " does not match the ", channels, " output channels (expects [",
                  channels, "])");
  }
}

Shape input_shape(const ConvGeometry& g) { return Shape{g.n, g.c, g.h, g.w}; }
Shape output_shape(const ConvGeometry& g) { return Shape{g.n, g.o, g.oh, g.ow}; }
Shape weight_shape(const ConvGeometry& g) { return Shape{g.o, g.group_in(), g.kh, g.kw}; }

// db = Σ over images and pixels of the gradient g [n, o, oh, ow] reaching
// the output. A create-graph pass records it as sum(); otherwise a kernel
// adds in sum()'s order (a channel's pixels with lane_sum, the images one
// after another; one lane_sum of everything for a single channel; element
// by element for runs under four), so that the bias gradient is bit for bit
// the one sum() gives.
Tensor channel_sums(const Tensor& g, bool create_graph) {
  if (create_graph) return sum(g, {0, 2, 3});
  constexpr const char* kOp = "sum";
  const std::int64_t images = g.shape(0), channels = g.shape(1), pixels = g.shape(2) * g.shape(3);
  Tensor db = empty(Shape{channels}, g.dtype(), kOp);
  dispatch_float(g.dtype(), kOp, [&](auto tag) {
    using T = decltype(tag);
    launch(
        kOp,
        [images, channels, pixels](const T* gv, T* out) {
          if (channels == 1) {
            out[0] = static_cast<T>(detail::lane_sum(gv, images * pixels));
            return;
          }
          std::fill(out, out + channels, T(0));
          for (std::int64_t n = 0; n < images; ++n) {
            for (std::int64_t ch = 0; ch < channels; ++ch) {
              const T* run = gv + (n * channels + ch) * pixels;
              if (pixels >= 4) {
                out[ch] += static_cast<T>(detail::lane_sum(run, pixels));
              } else {
                for (std::int64_t i = 0; i < pixels; ++i) out[ch] += run[i];
              }
            }
          }
        },
        g, db);
  });
  return db;
}

// oneDNN's primitives allocate every time they run (memory objects and
// argument maps, measured in tests/test_capture.cpp), so a captured step,
// whose replays allocate nothing, cannot use them: capture refuses, naming
// the way out, rather than replay an op that allocates. Eagerly they run
// as before.
template <class T>
bool runs_onednn(const ConvGeometry& g, const char* op) {
  if (!std::is_same_v<T, float> || !detail::onednn_conv_selected(g)) return false;
  if (capturing()) {
    throw_runtime("capture", "'", op,
                  "' runs on the oneDNN backend, whose primitives allocate every time they run, and a replayed "
                  "step must not: capture with set_conv_backend(ConvBackend::Im2col) (the default)");
  }
  return true;
}

// The im2col kernels' workspace for g, a buffer of the op (of the program,
// in a captured step).
Tensor workspace_for(const ConvGeometry& g, DType dtype, const char* op) {
  return empty(Shape{detail::conv_workspace_size(g)}, dtype, op);
}

// out = f(a, w, bias) as a kernel on its own workspace, for the two im2col
// computations of that form (conv_forward, conv_input_grad).
template <class T, void (*F)(const ConvGeometry&, const T*, const T*, const T*, T*, T*)>
void launch_im2col(const ConvGeometry& g, const char* op, const Tensor& a, const Tensor& w, const Tensor& bias,
                   const Tensor& out) {
  launch(
      op, [g](const T* av, const T* wv, const T* bv, T* ov, T* workspace) { F(g, av, wv, bv, ov, workspace); }, a, w,
      bias, out, workspace_for(g, a.dtype(), op));
}

Tensor convolution(const ConvGeometry& g, const char* op, const Tensor& x, const Tensor& w, const Tensor& bias);
Tensor transposed_convolution(const ConvGeometry& g, const char* op, const Tensor& gy, const Tensor& w,
                              const Tensor& bias);
Tensor weight_gradient(const ConvGeometry& g, const Tensor& x, const Tensor& gy);

// y = conv(x, W) + b, recorded.
Tensor convolution(const ConvGeometry& g, const char* op, const Tensor& x, const Tensor& w, const Tensor& bias) {
  Tensor y = empty(output_shape(g), x.dtype(), op);
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>) {
      if (runs_onednn<T>(g, op) &&
          detail::onednn_conv_forward(g, x.data<T>(), w.data<T>(), bias.defined() ? bias.data<T>() : nullptr,
                                      y.data<T>())) {
        return;
      }
    }
    launch_im2col<T, detail::conv_forward<T>>(g, op, x, w, bias, y);
  });
  auto backward = [xs = saved_if(w.requires_grad(), x), ws = saved_if(x.requires_grad(), w), g](const Tensor& gy,
                                                                                                InputGrads& grads) {
    if (grads.needs(0)) grads.add(0, transposed_convolution(g, "conv_transpose2d", gy, ws, Tensor()));
    if (grads.needs(1)) grads.add(1, weight_gradient(g, xs, gy));
    if (grads.needs(2)) grads.add(2, channel_sums(gy, grads.create_graph()));
  };
  if (bias.defined()) return record_op({op, "y = W ⋆ x + b"}, y, {&x, &w, &bias}, backward);
  return record_op({op, "y = W ⋆ x"}, y, {&x, &w}, backward);
}

// The adjoint of x ↦ conv(x, W), applied to gy (conv's output space), plus
// a bias per channel of the result; recorded.
Tensor transposed_convolution(const ConvGeometry& g, const char* op, const Tensor& gy, const Tensor& w,
                              const Tensor& bias) {
  Tensor x = empty(input_shape(g), gy.dtype(), op);
  dispatch_float(gy.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>) {
      if (runs_onednn<T>(g, op) && detail::onednn_conv_input_grad(g, gy.data<T>(), w.data<T>(), x.data<T>())) {
        if (bias.defined()) detail::add_channel_bias(g, bias.data<T>(), x.data<T>());
        return;
      }
    }
    launch_im2col<T, detail::conv_input_grad<T>>(g, op, gy, w, bias, x);
  });
  auto backward = [gs = saved_if(w.requires_grad(), gy), ws = saved_if(gy.requires_grad(), w), g](const Tensor& u,
                                                                                                  InputGrads& grads) {
    if (grads.needs(0)) grads.add(0, convolution(g, "conv2d", u, ws, Tensor()));
    if (grads.needs(1)) grads.add(1, weight_gradient(g, u, gs));
    if (grads.needs(2)) grads.add(2, channel_sums(u, grads.create_graph()));
  };
  if (bias.defined()) return record_op({op, "y = W ⋆ᵀ x + b"}, x, {&gy, &w, &bias}, backward);
  return record_op({op, "y = W ⋆ᵀ x"}, x, {&gy, &w}, backward);
}

// dW = the weight gradient of conv(x, ·) for the output gradient gy; recorded.
Tensor weight_gradient(const ConvGeometry& g, const Tensor& x, const Tensor& gy) {
  constexpr const char* kOp = "conv2d_weight_grad";
  Tensor gw = empty(weight_shape(g), x.dtype(), kOp);
  dispatch_float(x.dtype(), kOp, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>) {
      if (runs_onednn<T>(g, kOp) && detail::onednn_conv_weight_grad(g, x.data<T>(), gy.data<T>(), gw.data<T>())) {
        return;
      }
    }
    launch(
        kOp,
        [g](const T* xv, const T* gv, T* gwv, T* workspace) { detail::conv_weight_grad<T>(g, xv, gv, gwv, workspace); },
        x, gy, gw, workspace_for(g, x.dtype(), kOp));
  });
  return record_op({kOp, "dW = dy ⋆ x"}, gw, {&x, &gy},
                   [xs = saved_if(gy.requires_grad(), x), gs = saved_if(x.requires_grad(), gy), g](const Tensor& v,
                                                                                                   InputGrads& grads) {
                     if (grads.needs(0)) grads.add(0, transposed_convolution(g, "conv_transpose2d", gs, v, Tensor()));
                     if (grads.needs(1)) grads.add(1, convolution(g, "conv2d", xs, v, Tensor()));
                   });
}

void check_operands(const char* op, const Tensor& x, const Tensor& weight) {
  detail::check_same_dtype(op, x, weight);
  detail::check_floating(op, x);
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Conv2dOptions options) {
  constexpr const char* kOp = "conv2d";
  check_operands(kOp, x, weight);
  if (x.dim() != 4) throw_invalid(kOp, "expects input [N x C x H x W], got ", x.shape().str());
  if (weight.dim() != 4) {
    throw_invalid(kOp, "expects weight [out_channels x in_channels/groups x kH x kW], got ", weight.shape().str());
  }
  check_window_options(kOp, options.stride, options.padding, options.dilation, options.groups);
  const ConvGeometry g = conv_geometry({kOp, x.shape(), weight.shape()}, x.shape(), weight.shape(), options.stride,
                                       options.padding, options.dilation, options.groups);
  check_bias(kOp, bias, x, g.o);
  return convolution(g, kOp, x, weight, bias);
}

Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, Conv1dOptions options) {
  constexpr const char* kOp = "conv1d";
  check_operands(kOp, x, weight);
  if (x.dim() != 3) throw_invalid(kOp, "expects input [N x C x L], got ", x.shape().str());
  if (weight.dim() != 3) {
    throw_invalid(kOp, "expects weight [out_channels x in_channels/groups x k], got ", weight.shape().str());
  }
  check_window_options(kOp, options.stride, options.padding, options.dilation, options.groups);
  // As a 2-D convolution of a one-row image by a one-row kernel.
  const Tensor x2 = unsqueeze(x, 2);
  const Tensor w2 = unsqueeze(weight, 2);
  const ConvGeometry g =
      conv_geometry({kOp, x.shape(), weight.shape(), true}, x2.shape(), w2.shape(), {1, options.stride},
                    {0, options.padding}, {1, options.dilation}, options.groups);
  check_bias(kOp, bias, x, g.o);
  return squeeze(convolution(g, kOp, x2, w2, bias), 2);
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, ConvTranspose2dOptions options) {
  constexpr const char* kOp = "conv_transpose2d";
  check_operands(kOp, x, weight);
  if (x.dim() != 4) throw_invalid(kOp, "expects input [N x C_in x H x W], got ", x.shape().str());
  if (weight.dim() != 4) {
    throw_invalid(kOp, "expects weight [in_channels x out_channels/groups x kH x kW], got ", weight.shape().str());
  }
  check_window_options(kOp, options.stride, options.padding, options.dilation, options.groups);
  const Size2 extra = options.output_padding;
  if (extra.h < 0 || extra.w < 0 || extra.h >= options.stride.h || extra.w >= options.stride.w) {
    throw_invalid(kOp, "output_padding must be >= 0 and smaller than the stride ", options.stride.str(), ", got ",
                  extra.str());
  }
  const Shape& xs = x.shape();
  const Shape& ws = weight.shape();
  if (ws[2] < 1 || ws[3] < 1) throw_invalid(kOp, "kernel size must be >= 1, got weight ", ws.str());
  if (xs[1] != ws[0]) {
    throw_invalid(kOp, "input ", xs.str(), " has ", xs[1], " channels but weight ", ws.str(), " expects ", ws[0]);
  }
  if (ws[0] % options.groups != 0) {
    throw_invalid(kOp, "weight ", ws.str(), " has ", ws[0],
                  " input channels, not divisible by groups = ", options.groups);
  }
  // The convolution this op transposes maps [n, c, h, w] to x's [n, o, H, W].
  auto extent = [](std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t d, std::int64_t op) {
    return (in - 1) * s - 2 * p + d * (k - 1) + 1 + op;
  };
  const std::int64_t h = extent(xs[2], ws[2], options.stride.h, options.padding.h, options.dilation.h, extra.h);
  const std::int64_t w = extent(xs[3], ws[3], options.stride.w, options.padding.w, options.dilation.w, extra.w);
  if (h < 1 || w < 1) {
    throw_invalid(kOp, "input ", xs.str(), " with weight ", ws.str(), ", stride ", options.stride.str(), ", padding ",
                  options.padding.str(), " gives an empty output ", h, "x", w);
  }
  ConvGeometry g;
  g.n = xs[0], g.c = ws[1] * options.groups, g.h = h, g.w = w;
  g.o = ws[0], g.kh = ws[2], g.kw = ws[3], g.oh = xs[2], g.ow = xs[3];
  g.stride = options.stride, g.padding = options.padding, g.dilation = options.dilation, g.groups = options.groups;
  check_bias(kOp, bias, x, g.c);
  return transposed_convolution(g, kOp, x, weight, bias);
}

Tensor conv2d_weight_grad(const Tensor& x, const Tensor& grad_output, Size2 kernel, Conv2dOptions options) {
  constexpr const char* kOp = "conv2d_weight_grad";
  check_operands(kOp, x, grad_output);
  if (x.dim() != 4) throw_invalid(kOp, "expects input [N x C x H x W], got ", x.shape().str());
  if (grad_output.dim() != 4) {
    throw_invalid(kOp, "expects grad_output [N x O x H_out x W_out], got ", grad_output.shape().str());
  }
  check_window_options(kOp, options.stride, options.padding, options.dilation, options.groups);
  if (kernel.h < 1 || kernel.w < 1) throw_invalid(kOp, "kernel size must be >= 1, got ", kernel.str());
  const std::int64_t out_channels = grad_output.shape(1);
  if (x.shape(1) % options.groups != 0) {
    throw_invalid(kOp, "input ", x.shape().str(), " has ", x.shape(1),
                  " channels, not divisible by groups = ", options.groups);
  }
  const Shape weight{out_channels, x.shape(1) / options.groups, kernel.h, kernel.w};
  const ConvGeometry g = conv_geometry({kOp, x.shape(), weight}, x.shape(), weight, options.stride, options.padding,
                                       options.dilation, options.groups);
  if (grad_output.shape() != output_shape(g)) {
    throw_invalid(kOp, "grad_output ", grad_output.shape().str(), " does not match the convolution's output ",
                  output_shape(g).str(), " for input ", x.shape().str(), " and kernel ", kernel.str());
  }
  return weight_gradient(g, x, grad_output);
}

}  // namespace tapegrad
