#pragma once
// Ops that rearrange elements without arithmetic (and index_add and
// scatter_add, the backwards of index_select and gather, which add what
// they place). reshape, flatten, squeeze and unsqueeze share the input's
// buffer (no copy).
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
/// Picks entries along `axis` by an int64 index vector;
/// dx = index_add(zeros, axis, indices, dy) (repeats add up).
Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& indices);
/// y = x with source's entries added at the indices along `axis`:
/// y[.., idx[j], ..] += source[.., j, ..] (repeats add up); source has x's shape
/// except `indices.numel()` along the axis; dx = dy, dsource = index_select(dy, axis, indices).
Tensor index_add(const Tensor& x, std::int64_t axis, const Tensor& indices, const Tensor& source);
/// y[i][j] = x[i][index[i][j]] (for axis 1; likewise for any axis), index int64
/// with x's rank; e.g. gather(logits, 1, labels [N,1]) picks each row's class;
/// dx = scatter_add(zeros, axis, index, dy).
Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& indices);
/// y = x; y[i][index[i][j]] += source[i][j] (for axis 1; likewise for any axis),
/// index as gather's and source of index's shape; dx = dy, dsource = gather(dy, axis, index).
Tensor scatter_add(const Tensor& x, std::int64_t axis, const Tensor& indices, const Tensor& source);

// The ops below return several tensors from one node: backward gathers the
// pieces' gradients once (zeros for pieces that got none), so taking all T
// steps out of a [T, ...] tensor costs O(numel) in backward, where a slice
// per step costs O(T x numel).

/// The entries of x along `axis`, that axis removed: y_k = x[.., k, ..];
/// dx = stack(dy_k, axis). An axis of extent 0 gives no tensors.
std::vector<Tensor> unbind(const Tensor& x, std::int64_t axis = 0);
/// Consecutive pieces of sizes[k] entries along `axis` (the sizes must add up
/// to its extent); dx = concat(dy_k, axis).
std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes, std::int64_t axis = 0);
/// Consecutive pieces of `size` entries along `axis`, the last shorter when
/// size does not divide the extent (one empty piece for an empty axis); as
/// PyTorch. A braced one-element list, split(x, {n}), picks this overload.
std::vector<Tensor> split(const Tensor& x, std::int64_t size, std::int64_t axis = 0);
/// split(x, ⌈n / chunks⌉, axis): at most `chunks` pieces, fewer when the
/// extent n is not large enough to fill them (chunk of 5 into 4 gives 2, 2, 1), as PyTorch.
std::vector<Tensor> chunk(const Tensor& x, std::int64_t chunks, std::int64_t axis = 0);

}  // namespace tapegrad
