#include "tapegrad/nn/flatten.hpp"

#include "nn/checks.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad::nn {

Flatten::Flatten(std::int64_t start_axis, std::int64_t end_axis)
    : Module("Flatten"), start_axis_(start_axis), end_axis_(end_axis) {
  // Axes of one sign can be compared now; mixed ones only against an input's rank.
  if ((start_axis < 0) == (end_axis < 0) && start_axis > end_axis) {
    throw_invalid("Flatten", "start_axis ", start_axis, " comes after end_axis ", end_axis);
  }
}

Tensor Flatten::forward(const Tensor& input) {
  if (!input.defined()) detail::throw_layer(*this, "got an undefined input");
  // Checked here so that the error names the layer (flatten's own would not).
  const auto rank = static_cast<std::int64_t>(input.dim());
  for (const std::int64_t axis : {start_axis_, end_axis_}) {
    if (axis < -rank || axis >= rank) {
      detail::throw_layer(*this, "input ", input.shape().str(), " of rank ", rank, " has no axis ", axis);
    }
  }
  const std::int64_t start = start_axis_ < 0 ? start_axis_ + rank : start_axis_;
  const std::int64_t end = end_axis_ < 0 ? end_axis_ + rank : end_axis_;
  if (start > end) {
    detail::throw_layer(*this, "start axis ", start, " comes after end axis ", end, " for input ", input.shape().str());
  }
  return flatten(input, start_axis_, end_axis_);
}

std::string Flatten::str() const {
  return detail::concat("Flatten(start_axis=", start_axis_, ", end_axis=", end_axis_, ")");
}

}  // namespace tapegrad::nn
