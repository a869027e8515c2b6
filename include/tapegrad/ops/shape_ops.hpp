#pragma once
// Ops that rearrange elements without arithmetic. reshape, flatten,
// squeeze and unsqueeze share the input's buffer (no copy).
#include <cstdint>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

/// x repeated along the axes where `shape` stretches it (NumPy broadcasting);
/// dx = sum_to(dy, x's shape).
Tensor broadcast_to(const Tensor& x, const Shape& shape);
/// x summed over the axes it was broadcast along, back to `shape` (which must
/// broadcast to x's shape); dx = broadcast_to(dy, x's shape).
Tensor sum_to(const Tensor& x, const Shape& shape);
/// New shape with the same number of elements; one extent may be -1 (inferred).
Tensor reshape(const Tensor& x, const std::vector<std::int64_t>& shape);
/// Merges axes start..end (inclusive) into one.
Tensor flatten(const Tensor& x, std::int64_t start_axis = 0, std::int64_t end_axis = -1);
/// Removes `axis`, which must have extent 1.
Tensor squeeze(const Tensor& x, std::int64_t axis);
/// Removes every axis of extent 1.
Tensor squeeze(const Tensor& x);
/// Inserts an axis of extent 1 at `axis` (-1 appends).
Tensor unsqueeze(const Tensor& x, std::int64_t axis);
/// Joins tensors along an existing axis; dx_i = the matching slice of dy.
Tensor concat(const std::vector<Tensor>& tensors, std::int64_t axis = 0);
/// Joins tensors of equal shape along a new axis.
Tensor stack(const std::vector<Tensor>& tensors, std::int64_t axis = 0);
/// Elements start, start+step, ... (< end) along `axis`; negative start/end
/// count from the end, and are clipped to the extent as in Python.
Tensor slice(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t end, std::int64_t step = 1);
/// Picks entries along `axis` by an int64 index vector; dx scatters dy back (adding repeats).
Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& indices);
/// y[i][j] = x[i][index[i][j]] (for axis 1; likewise for any axis), index int64
/// with x's rank; e.g. gather(logits, 1, labels [N,1]) picks each row's class.
Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& indices);

}  // namespace tapegrad
