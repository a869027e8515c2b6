#pragma once
// Internal: input checks shared by the layers. Messages start with the
// layer's str(), e.g. "Linear(784 -> 256): input [32x100] has 100 features, expected 784".
#include <cstdint>
#include <string>

#include "tapegrad/error.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::detail {

// The input is defined and has the dtype of the layer's parameters.
inline void check_input_dtype(const std::string& layer, const Tensor& input, DType expected) {
  if (!input.defined()) throw_invalid(layer.c_str(), "got an undefined input");
  if (input.dtype() != expected) {
    throw_invalid(layer.c_str(), "input is ", dtype_name(input.dtype()), " ", input.shape().str(),
                  ", the layer's parameters are ", dtype_name(expected), " (convert the model with to())");
  }
}

// The last axis of the input holds `features` values.
inline void check_last_axis_features(const std::string& layer, const Tensor& input, std::int64_t features) {
  if (input.dim() == 0) throw_invalid(layer.c_str(), "input [] has no feature axis, expected ", features, " features");
  if (input.shape().back() != features) {
    throw_invalid(layer.c_str(), "input ", input.shape().str(), " has ", input.shape().back(), " features, expected ",
                  features);
  }
}

}  // namespace tapegrad::detail
