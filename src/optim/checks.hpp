#pragma once
// Internal: the option checks every optimizer and schedule shares. Messages
// read "<who>: <option> must be ..., got <value>".
#include <cmath>

#include "tapegrad/error.hpp"

namespace tapegrad::optim::detail {

inline void check_finite(const char* who, const char* option, double value) {
  if (!std::isfinite(value)) throw_invalid(who, option, " must be finite, got ", value);
}

inline void check_nonnegative(const char* who, const char* option, double value) {
  check_finite(who, option, value);
  if (value < 0) throw_invalid(who, option, " must be >= 0, got ", value);
}

inline void check_positive(const char* who, const char* option, double value) {
  check_finite(who, option, value);
  if (value <= 0) throw_invalid(who, option, " must be > 0, got ", value);
}

// [0, 1): decay rates (betas, RMSprop's alpha, a plateau's factor).
inline void check_rate(const char* who, const char* option, double value) {
  if (!(value >= 0 && value < 1)) throw_invalid(who, option, " must be in [0, 1), got ", value);
}

}  // namespace tapegrad::optim::detail
