#pragma once
// Internal: the one stable pass behind softmax, log_softmax and
// cross_entropy: a lane's maximum and Σ e^(x - max), in double. Shifting by
// the maximum keeps every e^(x - max) <= 1 and the sum >= 1: no overflow for
// logits of 1000, no log of 0.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

namespace tapegrad::detail {

// The lane is lane[0], lane[stride], ..., lane[(n - 1) * stride].
template <class T>
std::pair<double, double> max_and_exp_sum(const T* lane, std::int64_t n, std::int64_t stride = 1) {
  T top = -INFINITY;
  for (std::int64_t j = 0; j < n; ++j) top = std::max(top, lane[j * stride]);
  const double shift = top;
  double total = 0;
  for (std::int64_t j = 0; j < n; ++j) total += std::exp(static_cast<double>(lane[j * stride]) - shift);
  return {shift, total};
}

}  // namespace tapegrad::detail
