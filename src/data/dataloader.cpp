#include "tapegrad/data/dataloader.hpp"

#include <algorithm>
#include <charconv>
#include <utility>

#include "prefetcher.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::data {

namespace {

// splitmix64: decorrelates the seeds of consecutive epochs.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Keeps the transforms' generator keys apart from the shuffling seeds
// derived from the same user seed.
constexpr std::uint64_t kTransformSalt = 0x7472616e73666f72ULL;  // "transfor"

}  // namespace

std::int64_t parse_batch_size(const std::string& text) {
  if (text == "all" || text == "full") return kFullBatch;
  std::int64_t value = -1;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || value < 0 || text.empty()) {
    throw_invalid("parse_batch_size", "'", text, "' is not a batch size (a non-negative integer, or 'all')");
  }
  return value;
}

DataLoader::DataLoader(Dataset dataset, DataLoaderOptions options) : dataset_(std::move(dataset)), options_(options) {
  if (options_.batch_size < 0) {
    throw_invalid("DataLoader", "batch_size must be positive, or kFullBatch (0) for the whole data set; got ",
                  options_.batch_size);
  }
  if (options_.num_replicas < 1) {
    throw_invalid("DataLoader", "num_replicas must be at least 1, got ", options_.num_replicas);
  }
  if (options_.rank < 0 || options_.rank >= options_.num_replicas) {
    throw_invalid("DataLoader", "rank ", options_.rank, " is not in [0, ", options_.num_replicas, ")");
  }
  if (options_.prefetch < 0) {
    throw_invalid("DataLoader", "prefetch must be non-negative (0: no worker thread), got ", options_.prefetch);
  }
  std::vector<std::int64_t> identity(static_cast<std::size_t>(dataset_.size()));
  for (std::size_t i = 0; i < identity.size(); ++i) identity[i] = static_cast<std::int64_t>(i);
  shard(identity);
}

DataLoader::DataLoader(const DataLoader& other)
    : dataset_(other.dataset_), options_(other.options_), order_(other.order_), epoch_(other.epoch_) {}

DataLoader& DataLoader::operator=(const DataLoader& other) {
  if (this != &other) {
    prefetcher_.reset();
    dataset_ = other.dataset_;
    options_ = other.options_;
    order_ = other.order_;
    epoch_ = other.epoch_;
  }
  return *this;
}

// The worker shares nothing with the loader object (it holds its own copy),
// so a running one moves with it.
DataLoader::DataLoader(DataLoader&& other) noexcept = default;
DataLoader& DataLoader::operator=(DataLoader&& other) noexcept = default;
DataLoader::~DataLoader() = default;

std::int64_t DataLoader::shard_size() const {
  const std::int64_t n = dataset_.size();
  const std::int64_t p = options_.num_replicas;
  if (p == 1) return n;
  return options_.drop_last ? n / p : (n + p - 1) / p;
}

void DataLoader::shard(const std::vector<std::int64_t>& permutation) {
  const std::int64_t p = options_.num_replicas;
  if (p == 1) {
    order_ = permutation;
    return;
  }
  const std::int64_t n = dataset_.size();
  order_.resize(static_cast<std::size_t>(shard_size()));
  for (std::size_t i = 0; i < order_.size(); ++i) {
    const std::int64_t position = options_.rank + static_cast<std::int64_t>(i) * p;
    order_[i] = permutation[static_cast<std::size_t>(position % n)];  // past the end: padding from the start
  }
}

std::int64_t DataLoader::batch_size() const {
  return options_.batch_size == kFullBatch ? shard_size() : options_.batch_size;
}

std::int64_t DataLoader::num_batches() const {
  const std::int64_t n = shard_size();
  const std::int64_t b = batch_size();
  if (n == 0 || b == 0) return 0;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::int64_t DataLoader::num_samples() const { return std::min(shard_size(), num_batches() * batch_size()); }

DataLoader::Iterator DataLoader::begin() {
  if (options_.shuffle) {
    shard(random_permutation(dataset_.size(), mix(options_.seed ^ mix(static_cast<std::uint64_t>(epoch_)))));
  }
  ++epoch_;
  prefetcher_.reset();  // the last epoch's worker, if the caller left it early
  if (options_.prefetch > 0 && num_batches() > 0) {
    DataLoader epoch = *this;
    epoch.options_.prefetch = 0;
    prefetcher_ = std::make_unique<detail::Prefetcher>(std::move(epoch), options_.prefetch);
  }
  return Iterator(this, 0);
}

Batch DataLoader::next_batch(std::int64_t index) const {
  if (prefetcher_) {
    if (std::optional<Batch> made = prefetcher_->take(index)) return std::move(*made);
  }
  return batch(index);
}

Batch DataLoader::batch(std::int64_t index) const {
  if (index < 0 || index >= num_batches()) {
    throw_out_of_range("DataLoader::batch", "batch ", index, " is out of range for ", num_batches(), " batches");
  }
  const std::int64_t start = index * batch_size();
  const std::int64_t count = std::min(batch_size(), shard_size() - start);
  Batch gathered = dataset_.gather(order_.data() + start, count);
  if (!options_.transform) return gathered;
  // One Philox stream per batch, keyed by (seed, epoch, rank): random
  // access to batches stays reproducible, and ranks augment differently.
  const std::uint64_t key = mix(mix(mix(options_.seed ^ kTransformSalt) ^ static_cast<std::uint64_t>(epoch_)) ^
                                static_cast<std::uint64_t>(options_.rank));
  Generator generator(key, static_cast<std::uint64_t>(index));
  Batch out;
  {
    const GeneratorScope scope(generator);
    out = options_.transform(std::move(gathered), generator);
  }
  if (!out.inputs.defined() || !out.targets.defined()) {
    throw_invalid("DataLoader", "the transform returned a batch with undefined ",
                  out.inputs.defined() ? "targets" : "inputs", " (batch ", index, ")");
  }
  if (out.inputs.dim() == 0 || out.targets.dim() == 0 || out.inputs.shape(0) != out.targets.shape(0)) {
    throw_invalid("DataLoader", "the transform returned inputs ", out.inputs.shape().str(), " and targets ",
                  out.targets.shape().str(), ", which need one first extent (the batch's samples)");
  }
  return out;
}

const Batch& DataLoader::Iterator::operator*() const {
  if (!loaded_) {
    batch_ = loader_->next_batch(index_);
    loaded_ = true;
  }
  return batch_;
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  ++index_;
  loaded_ = false;
  batch_ = Batch{};
  return *this;
}

}  // namespace tapegrad::data
