#pragma once
// Seeded splits of a data set: train / validation, and K-fold
// cross-validation. Indices within each part are sorted (the original
// order), so a split depends only on (n, fraction or k, seed).
#include <cstdint>
#include <utility>
#include <vector>

#include "tapegrad/data/dataset.hpp"

namespace tapegrad::train {

struct IndexSplit {
  std::vector<std::int64_t> train;
  std::vector<std::int64_t> validation;
};

// round(n * validation_fraction) samples, drawn at random, for validation;
// the rest for training. Both parts must be non-empty.
IndexSplit train_validation_indices(std::int64_t n, double validation_fraction, std::uint64_t seed);

struct DatasetSplit {
  data::Dataset train;
  data::Dataset validation;
};
DatasetSplit train_validation_split(const data::Dataset& dataset, double validation_fraction, std::uint64_t seed);

// K folds for cross-validation: fold i validates on the i-th of k disjoint
// parts (sizes differ by at most one, larger parts first) and trains on the
// others. Without `shuffle` the parts are consecutive runs of 0..n-1.
std::vector<IndexSplit> k_fold(std::int64_t n, std::int64_t k, std::uint64_t seed, bool shuffle = true);

}  // namespace tapegrad::train
