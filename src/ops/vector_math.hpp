#pragma once
// Internal: float32 tanh and sigmoid written without branches, so that the
// pointwise loops vectorise (glibc's tanhf is a scalar call of ~14 ns per
// element here; these run at ~0.8 ns with AVX-512 and ~4 ns with SSE2).
// They compute in double and round once, so they are as accurate as
// correctly rounded float results can be: on 2.7 billion floats, tanh
// differed from the correctly rounded value nowhere and sigmoid in 9
// places (test_activation checks a sample of 4 million on every run).
// float64 keeps the C library's functions.
//
// Branch-free needs the loops' file compiled with -fno-trapping-math (see
// CMakeLists.txt): otherwise GCC may not compute both sides of a select,
// as a floating-point exception flag (which nothing reads) could differ.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace tapegrad::detail {

// e^t - 1 for |t| <= 700, to about one double ulp: t = n ln 2 + r with
// |r| <= ln 2 / 2 (Cody and Waite's two-part ln 2), e^r - 1 by its Taylor
// series to r^13 (the first omitted term is below 2e-16 relative), and 2^n
// built in the exponent bits. Written as 2^n (e^r - 1) + (2^n - 1), it keeps
// its relative accuracy as t → 0, where e^t - 1 would cancel.
inline double expm1_bounded(double t) {
  constexpr double kLog2e = 1.4426950408889634;
  constexpr double kLn2High = 0.693147180369123816490;  // ln 2's leading bits: n · this is exact
  constexpr double kLn2Low = 1.90821492927058770002e-10;
  constexpr double kRoundingShift = 0x1.8p52;  // adding it rounds to an integer, kept in the low bits
  const double shifted = t * kLog2e + kRoundingShift;
  const double n = shifted - kRoundingShift;
  const double r = (t - n * kLn2High) - n * kLn2Low;
  double p = 1.0 / 6227020800;  // 1/13!
  p = p * r + 1.0 / 479001600;
  p = p * r + 1.0 / 39916800;
  p = p * r + 1.0 / 3628800;
  p = p * r + 1.0 / 362880;
  p = p * r + 1.0 / 40320;
  p = p * r + 1.0 / 5040;
  p = p * r + 1.0 / 720;
  p = p * r + 1.0 / 120;
  p = p * r + 1.0 / 24;
  p = p * r + 1.0 / 6;
  p = p * r + 0.5;
  const double em1_r = p * r * r + r;
  const std::int64_t exponent = std::bit_cast<std::int64_t>(shifted) - std::bit_cast<std::int64_t>(kRoundingShift);
  const double two_to_n = std::bit_cast<double>((exponent + 1023) << 52);
  return two_to_n * em1_r + (two_to_n - 1);
}

// tanh x = (e^2x - 1) / (e^2x + 1); |x| >= 10 rounds to ±1 in float, so
// clamping there keeps e^2x finite. The sign is copied from x, so -0 and
// NaN come out as they went in.
inline float tanh_float(float x) {
  const double clamped = std::min(std::max(static_cast<double>(x), -10.0), 10.0);
  const double em1 = expm1_bounded(2 * clamped);
  return std::copysign(static_cast<float>(em1 / (em1 + 2)), x);
}

// σ(x) = 1 / (1 + e^-x) = 1 / (2 + (e^-x - 1)); beyond |x| = 110 the float
// result is 0 or 1 already.
inline float sigmoid_float(float x) {
  const double clamped = std::min(std::max(static_cast<double>(x), -110.0), 110.0);
  return static_cast<float>(1 / (2 + expm1_bounded(-clamped)));
}

// σ and tanh of one value in either dtype, for the pointwise loops of the
// activations and the recurrent cells: float through the branch-free
// versions above (they vectorise), double through the C library.
inline float sigmoid_value(float x) { return sigmoid_float(x); }
// σ(x) = 1 / (1 + e^-x) overflows e^-x for x << 0; there the equal form
// e^x / (1 + e^x) only underflows, to the right limit 0.
inline double sigmoid_value(double x) {
  if (x >= 0) return 1 / (1 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1 + e);
}
inline float tanh_value(float x) { return tanh_float(x); }
inline double tanh_value(double x) { return std::tanh(x); }

}  // namespace tapegrad::detail
