#pragma once
// Gradient clipping, between backward() and step(), as torch.nn.utils does.
// Both write the gradients in place; parameters without one are skipped. A
// gradient that backward shared between leaves (add passes one tensor to
// both inputs) is copied first, so each leaf is clipped exactly once.
#include <limits>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad::optim {

// norm_type of the max-norm.
inline constexpr double kInfinityNorm = std::numeric_limits<double>::infinity();

// The p-norm of all gradients together, as if concatenated into one vector
// (norm_type = infinity: the largest |g|). When it exceeds max_norm, every
// gradient is scaled by max_norm / (norm + 1e-6). Returns the norm before
// clipping (0 when no parameter has a gradient). A non-finite norm is an
// error: scaling by it would silently turn every gradient into NaN.
double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type = 2.0);
// The same, with the norm left in `norm` (a float64 0-d tensor): the form a
// captured step uses (capture.hpp), where every replay writes its own norm
// there; the form above refuses capture, as a number cannot be updated.
void clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type, Tensor& norm);

// Clamps every gradient element to [-clip_value, clip_value].
void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value);

}  // namespace tapegrad::optim
