#include "tapegrad/data/dataset.hpp"

#include <cstring>
#include <random>
#include <utility>

#include "tapegrad/error.hpp"

namespace tapegrad::data {

namespace {

// Bytes of one row (everything after axis 0).
std::size_t row_bytes(const Tensor& t) {
  std::int64_t elements = 1;
  for (std::size_t axis = 1; axis < t.dim(); ++axis) elements *= t.shape(axis);
  return static_cast<std::size_t>(elements) * dtype_size(t.dtype());
}

// Uniform in [0, bound) without modulo bias: reject the low values that
// would make some residues more likely.
std::uint64_t bounded(std::mt19937_64& rng, std::uint64_t bound) {
  const std::uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    const std::uint64_t r = rng();
    if (r >= threshold) return r % bound;
  }
}

}  // namespace

Dataset::Dataset(Tensor features, Tensor targets) {
  if (!features.defined() || !targets.defined()) throw_invalid("Dataset", "features and targets must be defined");
  if (features.dim() == 0 || targets.dim() == 0) {
    throw_invalid("Dataset", "features ", features.shape().str(), " and targets ", targets.shape().str(),
                  " need a first axis: the samples");
  }
  if (features.shape(0) != targets.shape(0)) {
    throw_invalid("Dataset", "features ", features.shape().str(), " and targets ", targets.shape().str(),
                  " disagree on the number of samples (", features.shape(0), " vs ", targets.shape(0), ")");
  }
  features_ = features.detach();
  targets_ = targets.detach();
}

Tensor gather_rows(const Tensor& source, const std::int64_t* indices, std::int64_t count, const char* op) {
  const std::int64_t rows = source.shape(0);
  Shape shape = source.shape();
  shape[0] = count;
  Tensor out = empty(shape, source.dtype());
  const std::size_t bytes = row_bytes(source);
  const auto* from = static_cast<const unsigned char*>(source.raw_data());
  auto* to = static_cast<unsigned char*>(out.raw_data());
  // Consecutive indices (an unshuffled loader) become one memcpy per run.
  std::int64_t i = 0;
  while (i < count) {
    const std::int64_t first = indices[i];
    if (first < 0 || first >= rows) throw_out_of_range(op, "index ", first, " is out of range for ", rows, " samples");
    std::int64_t run = 1;
    while (i + run < count && indices[i + run] == first + run && first + run < rows) ++run;
    std::memcpy(to + static_cast<std::size_t>(i) * bytes, from + static_cast<std::size_t>(first) * bytes,
                static_cast<std::size_t>(run) * bytes);
    i += run;
  }
  return out;
}

Batch Dataset::gather(const std::int64_t* indices, std::int64_t count) const {
  if (!features_.defined()) throw_invalid("Dataset::gather", "the dataset is empty (default-constructed)");
  return {gather_rows(features_, indices, count, "Dataset::gather"),
          gather_rows(targets_, indices, count, "Dataset::gather")};
}

Batch Dataset::gather(const std::vector<std::int64_t>& indices) const {
  return gather(indices.data(), static_cast<std::int64_t>(indices.size()));
}

Dataset Dataset::subset(const std::vector<std::int64_t>& indices) const {
  Batch rows = gather(indices);
  return Dataset(std::move(rows.inputs), std::move(rows.targets));
}

std::vector<std::int64_t> random_permutation(std::int64_t n, std::uint64_t seed) {
  if (n < 0) throw_invalid("random_permutation", "n must be non-negative, got ", n);
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  std::mt19937_64 rng(seed);
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(bounded(rng, static_cast<std::uint64_t>(i) + 1));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  return order;
}

}  // namespace tapegrad::data
