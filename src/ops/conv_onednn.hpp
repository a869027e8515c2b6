#pragma once
// Internal: float32 convolutions through oneDNN (built with
// TAPEGRAD_ONEDNN=ON, chosen with set_conv_backend(ConvBackend::OneDnn)).
// Each call returns false when it did not run (oneDNN not built in, not
// selected, or a geometry it does not take), and the caller then runs the
// im2col kernels, which stay the reference.
#include "ops/conv_kernels.hpp"

namespace tapegrad::detail {

// Whether the three calls below run for g (the backend is oneDNN and it
// takes the geometry), known before any of them runs: an op that cannot
// run them in a captured step refuses up front.
bool onednn_conv_selected(const ConvGeometry& g);

bool onednn_conv_forward(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y);
bool onednn_conv_input_grad(const ConvGeometry& g, const float* gy, const float* w, float* gx);
bool onednn_conv_weight_grad(const ConvGeometry& g, const float* x, const float* gy, float* gw);

}  // namespace tapegrad::detail
