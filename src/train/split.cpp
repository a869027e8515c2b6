#include "tapegrad/train/split.hpp"

#include <algorithm>
#include <cmath>

#include "tapegrad/error.hpp"

namespace tapegrad::train {

IndexSplit train_validation_indices(std::int64_t n, double validation_fraction, std::uint64_t seed) {
  if (!(validation_fraction > 0.0 && validation_fraction < 1.0)) {
    throw_invalid("train_validation_split", "validation_fraction must lie in (0, 1), got ", validation_fraction);
  }
  const auto n_validation = static_cast<std::int64_t>(std::llround(static_cast<double>(n) * validation_fraction));
  if (n_validation < 1 || n_validation > n - 1) {
    throw_invalid("train_validation_split", "a fraction of ", validation_fraction, " of ", n,
                  " samples leaves an empty part (", n_validation, " for validation, ", n - n_validation,
                  " for training)");
  }
  const std::vector<std::int64_t> order = data::random_permutation(n, seed);
  IndexSplit split;
  split.validation.assign(order.begin(), order.begin() + n_validation);
  split.train.assign(order.begin() + n_validation, order.end());
  std::sort(split.validation.begin(), split.validation.end());
  std::sort(split.train.begin(), split.train.end());
  return split;
}

DatasetSplit train_validation_split(const data::Dataset& dataset, double validation_fraction, std::uint64_t seed) {
  const IndexSplit split = train_validation_indices(dataset.size(), validation_fraction, seed);
  return {dataset.subset(split.train), dataset.subset(split.validation)};
}

std::vector<IndexSplit> k_fold(std::int64_t n, std::int64_t k, std::uint64_t seed, bool shuffle) {
  if (k < 2 || k > n) throw_invalid("k_fold", "k must lie in [2, n] = [2, ", n, "], got ", k);
  std::vector<std::int64_t> order;
  if (shuffle) {
    order = data::random_permutation(n, seed);
  } else {
    order.resize(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  }
  std::vector<IndexSplit> folds(static_cast<std::size_t>(k));
  std::int64_t start = 0;
  for (std::int64_t fold = 0; fold < k; ++fold) {
    // The first n % k parts get one sample more.
    const std::int64_t size = n / k + (fold < n % k ? 1 : 0);
    IndexSplit& split = folds[static_cast<std::size_t>(fold)];
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t index = order[static_cast<std::size_t>(i)];
      (i >= start && i < start + size ? split.validation : split.train).push_back(index);
    }
    std::sort(split.validation.begin(), split.validation.end());
    std::sort(split.train.begin(), split.train.end());
    start += size;
  }
  return folds;
}

}  // namespace tapegrad::train
