#pragma once
// Dataset: samples held in memory as two tensors, features [N, ...] and
// targets [N, ...] (int64 class indices [N], or floating values / one-hot
// rows). Batches are contiguous copies of the chosen rows.
#include <cstdint>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad::data {

// One batch: inputs [B, ...] and targets [B, ...]. Works with structured
// bindings: `for (const auto& [x, y] : loader)`.
struct Batch {
  Tensor inputs;
  Tensor targets;
};

class Dataset {
 public:
  Dataset() = default;
  // Both tensors are kept detached (a dataset is never on the tape). Their
  // first extents must agree: that is the number of samples.
  Dataset(Tensor features, Tensor targets);

  std::int64_t size() const { return features_.defined() ? features_.shape(0) : 0; }
  const Tensor& features() const { return features_; }
  const Tensor& targets() const { return targets_; }

  // The rows at `indices`, copied into fresh contiguous tensors (one memcpy
  // per row, or per run of consecutive rows).
  Batch gather(const std::vector<std::int64_t>& indices) const;
  Batch gather(const std::int64_t* indices, std::int64_t count) const;
  // A new dataset holding copies of the rows at `indices`.
  Dataset subset(const std::vector<std::int64_t>& indices) const;

 private:
  Tensor features_;
  Tensor targets_;
};

// Copies rows of `source` (axis 0) into a new contiguous tensor; `op` names
// the caller in the out-of-range message.
Tensor gather_rows(const Tensor& source, const std::int64_t* indices, std::int64_t count, const char* op);

// A permutation of 0..n-1 that depends only on `seed`: the same on every
// platform and standard library (Fisher-Yates over mt19937_64 with an
// unbiased bounded draw; std::shuffle's algorithm is implementation-defined).
std::vector<std::int64_t> random_permutation(std::int64_t n, std::uint64_t seed);

}  // namespace tapegrad::data
