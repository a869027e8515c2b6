#pragma once
// Internal: input checks shared by the layers. Messages start with the
// layer's str(), e.g. "Linear(784 -> 256): input [32x100] has 100 features,
// expected 784"; str() is only built on failure, never on the hot path.
#include <cstdint>
#include <string>

#include "tapegrad/error.hpp"
#include "tapegrad/nn/module.hpp"

namespace tapegrad::detail {

template <class... Parts>
[[noreturn]] void throw_layer(const nn::Module& layer, const Parts&... parts) {
  throw_invalid(layer.str().c_str(), parts...);
}

// The input is defined and has the dtype of the layer's parameters.
inline void check_input_dtype(const nn::Module& layer, const Tensor& input, DType expected) {
  if (!input.defined()) throw_layer(layer, "got an undefined input");
  if (input.dtype() != expected) {
    throw_layer(layer, "input is ", dtype_name(input.dtype()), " ", input.shape().str(),
                ", the layer's parameters are ", dtype_name(expected), " (convert the model with to())");
  }
}

// The last axis of the input holds `features` values.
inline void check_last_axis_features(const nn::Module& layer, const Tensor& input, std::int64_t features) {
  if (input.dim() == 0) throw_layer(layer, "input [] has no feature axis, expected ", features, " features");
  if (input.shape().back() != features) {
    throw_layer(layer, "input ", input.shape().str(), " has ", input.shape().back(), " features, expected ", features);
  }
}

}  // namespace tapegrad::detail
