#pragma once
// Internal: the sum of a contiguous run of values as the reductions add
// it, shared by the ops whose gradients must be bit for bit what sum()
// gives (a convolution's bias gradient).

#include <cstdint>

namespace tapegrad::detail {

// Σ of n contiguous values, in double: float32 loses digits fast. Eight
// running sums, so that the adds do not wait on each other (one chain is
// bound by the add's latency) and the loop vectorises.
template <class T>
double lane_sum(const T* values, std::int64_t n) {
  constexpr std::int64_t kLanes = 8;
  double lanes[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (std::int64_t k = 0; k < kLanes; ++k) lanes[k] += values[i + k];
  }
  double total = 0;
  for (; i < n; ++i) total += values[i];
  for (double lane : lanes) total += lane;
  return total;
}

}  // namespace tapegrad::detail
