#pragma once
// Internal: n-d iteration with per-operand strides. One loop serves
// broadcasting (stride 0 on broadcast axes), un-broadcasting and axis
// reductions (stride 0 on reduced axes of the output).
#include <array>

#include "tapegrad/shape.hpp"

namespace tapegrad::detail {

// Strides of `in` when broadcast to `out`: right-aligned, 0 on axes where
// `in` has extent 1 or is missing.
inline Shape broadcast_strides(const Shape& in, const Shape& out) {
  const Shape in_strides = in.strides();
  Shape result;
  const std::size_t offset = out.rank() - in.rank();
  for (std::size_t axis = 0; axis < out.rank(); ++axis) {
    const bool present = axis >= offset;
    const bool stretched = !present || in[axis - offset] == 1;
    result.push_back(stretched ? 0 : in_strides[axis - offset]);
  }
  return result;
}

// Calls f(offsets) for every index of `shape` in row-major order, where
// offsets[k] is the element offset into operand k under strides[k].
template <std::size_t N, class F>
void for_each_strided(const Shape& shape, const std::array<Shape, N>& strides, F&& f) {
  std::array<std::int64_t, N> offsets{};
  if (shape.numel() == 0) return;
  const std::size_t rank = shape.rank();
  if (rank == 0) {
    f(offsets);
    return;
  }
  const std::int64_t inner = shape[rank - 1];
  std::array<std::int64_t, N> inner_step{};
  for (std::size_t k = 0; k < N; ++k) inner_step[k] = strides[k][rank - 1];
  std::array<std::int64_t, Shape::kMaxRank> counter{};
  while (true) {
    std::array<std::int64_t, N> at = offsets;
    for (std::int64_t i = 0; i < inner; ++i) {
      f(at);
      for (std::size_t k = 0; k < N; ++k) at[k] += inner_step[k];
    }
    // Advance the outer axes like an odometer.
    std::size_t axis = rank - 1;
    while (true) {
      if (axis == 0) return;
      --axis;
      if (++counter[axis] < shape[axis]) {
        for (std::size_t k = 0; k < N; ++k) offsets[k] += strides[k][axis];
        break;
      }
      for (std::size_t k = 0; k < N; ++k) offsets[k] -= strides[k][axis] * (shape[axis] - 1);
      counter[axis] = 0;
    }
  }
}

}  // namespace tapegrad::detail
