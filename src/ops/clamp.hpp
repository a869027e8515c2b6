#pragma once
// Internal: clamp to [low, high] recorded under the caller's name and
// formula, so that ops defined as a clamp (hard_tanh) share its one kernel,
// derivative and NaN rule instead of repeating them.
#include "tapegrad/autograd.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::detail {

// Throws std::invalid_argument "<info.name>: needs low <= high, ..." first.
Tensor clamp_as(const Tensor& x, double low, double high, const OpInfo& info);

}  // namespace tapegrad::detail
