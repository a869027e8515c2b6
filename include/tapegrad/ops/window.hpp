#pragma once
// The (height, width) pair that convolution and pooling take for kernel
// sizes, strides, paddings and dilations: one number means both, as in
// PyTorch (`{.stride = 2}` or `{.stride = {2, 1}}`).
#include <cstdint>
#include <string>

namespace tapegrad {

struct Size2 {
  std::int64_t h = 0;
  std::int64_t w = 0;
  Size2() = default;
  Size2(std::int64_t both) : h(both), w(both) {}  // NOLINT: implicit on purpose, as PyTorch's int-or-pair
  Size2(std::int64_t height, std::int64_t width) : h(height), w(width) {}
  friend bool operator==(const Size2&, const Size2&) = default;
  // "3" when both are equal, else "(3, 2)": as error messages and str() show
  // it. Out of line: inlined, g++ 12 reports a false -Wrestrict in the
  // string concatenation in every caller built with -Wall.
  std::string str() const;
};

}  // namespace tapegrad
