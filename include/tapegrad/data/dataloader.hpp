#pragma once
// DataLoader: iterates a Dataset in batches, one epoch per begin().
//
//   DataLoader loader(train, {.batch_size = 64, .shuffle = true, .seed = 1});
//   for (int epoch = 0; epoch < 10; ++epoch)
//     for (const auto& [x, y] : loader) { ... }
//
// batch_size 1 is pattern mode (online SGD), N > 1 mini-batches, and
// kFullBatch (0) the whole data set as one batch (full-batch gradient descent).
//
// A transform (data/transforms.hpp has ready-made ones) is applied to every
// batch as it is yielded, e.g. random shifts of training images, and
// .prefetch makes the next batches on a worker thread meanwhile:
//
//   DataLoader loader(train, {.batch_size = 64, .shuffle = true, .seed = 1,
//                             .transform = random_shift(28, 28, 2), .prefetch = 2});
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "tapegrad/data/dataset.hpp"
#include "tapegrad/random.hpp"

namespace tapegrad::data {

inline constexpr std::int64_t kFullBatch = 0;

// A function of one batch (its rows already gathered, so it may change them
// in place) returning the batch to yield: augmentation, noise, any per-batch
// preprocessing. It may change the batch's shapes, even its sample count,
// as long as inputs and targets keep one first extent. `generator` is the
// batch's own: seeded from the loader's seed, the epoch, the batch's index
// and the rank alone, so a batch's random draws do not depend on which
// batches were read before it or how often (batch(k) twice gives the same
// batch), and a run is reproduced by its seed. It is also the thread's
// current generator while the transform runs, so rand(), randn() and
// dropout inside it draw from it too.
using BatchTransform = std::function<Batch(Batch batch, Generator& generator)>;

struct DataLoaderOptions {
  std::int64_t batch_size = 32;  // 1: pattern mode; kFullBatch (0): everything at once
  bool shuffle = false;          // a new permutation every epoch
  std::uint64_t seed = 0;        // epoch e uses a permutation derived from (seed, e)
  bool drop_last = false;        // skip a last batch smaller than batch_size
  // Data-parallel sharding (dist/): this loader yields rank `rank`'s share
  // of every epoch out of `num_replicas`. Each epoch's permutation is the
  // same on every rank (it depends on seed and epoch only); it is evened to
  // a multiple of num_replicas, padded by repeating its first samples (or,
  // with drop_last, cut), and rank r takes samples r, r + num_replicas,
  // r + 2 num_replicas, ... So the shards are disjoint (but for the padding),
  // every rank takes the same number of steps, and batch k of all ranks
  // together is batch k of one loader with num_replicas times the batch
  // size.
  std::int64_t rank = 0;
  std::int64_t num_replicas = 1;
  // Applied to every batch the loader yields; empty: batches as gathered.
  BatchTransform transform{};
  // Batches made ahead on a worker thread while the caller trains on the
  // current one (gathering rows and the transform): 0 makes each batch on
  // the caller's thread when the iterator reaches it; N > 0 keeps up to N
  // finished batches waiting. The batches are the same either way (each is
  // a function of seed, epoch, rank and index). The worker starts with each
  // epoch (begin()), sleeps when it is N ahead, and is stopped and joined
  // by the next begin() or the loader's end; an exception from a batch is
  // rethrown when the iterator reaches that batch. The transform then runs
  // on the worker: it must not touch what the training thread changes.
  std::int64_t prefetch = 0;
};

namespace detail {
class Prefetcher;
}

// "all" or "full" -> kFullBatch, otherwise a non-negative integer; for
// command-line flags. Throws std::invalid_argument naming the text.
std::int64_t parse_batch_size(const std::string& text);

class DataLoader {
 public:
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using pointer = const Batch*;
    using reference = const Batch&;

    Iterator() = default;
    Iterator(const DataLoader* loader, std::int64_t index) : loader_(loader), index_(index) {}
    // The batch is built on first access and kept until the iterator moves.
    const Batch& operator*() const;
    const Batch* operator->() const { return &**this; }
    Iterator& operator++();
    void operator++(int) { ++*this; }
    bool operator==(const Iterator& other) const { return index_ == other.index_; }
    std::int64_t index() const { return index_; }

   private:
    const DataLoader* loader_ = nullptr;
    std::int64_t index_ = 0;
    mutable Batch batch_;
    mutable bool loaded_ = false;
  };

  // Throws std::invalid_argument for a negative batch size or prefetch, or
  // a rank not in [0, num_replicas).
  explicit DataLoader(Dataset dataset, DataLoaderOptions options = {});
  // A copy has the original's data set, options, epoch and order, and no
  // worker until its own begin().
  DataLoader(const DataLoader& other);
  DataLoader& operator=(const DataLoader& other);
  DataLoader(DataLoader&& other) noexcept;
  DataLoader& operator=(DataLoader&& other) noexcept;
  ~DataLoader();

  // Starts a new epoch (a fresh order when shuffling) and returns its first batch.
  Iterator begin();
  Iterator end() const { return Iterator(this, num_batches()); }

  // Batches per epoch.
  std::int64_t num_batches() const;
  std::int64_t size() const { return num_batches(); }
  // The effective batch size: the data set's size in full-batch mode.
  std::int64_t batch_size() const;
  // Samples per epoch on this rank (fewer than the data set's size with
  // drop_last or sharding).
  std::int64_t num_samples() const;
  // Epochs started so far (calls to begin()).
  std::int64_t epoch() const { return epoch_; }
  // Batch `index` of the current epoch (a copy of its rows), transformed
  // when the options hold a transform.
  Batch batch(std::int64_t index) const;
  // The sample order of the current epoch (this rank's share of it).
  const std::vector<std::int64_t>& order() const { return order_; }

  const Dataset& dataset() const { return dataset_; }
  const DataLoaderOptions& options() const { return options_; }

 private:
  Dataset dataset_;
  DataLoaderOptions options_;
  // This rank's samples of the epoch, in order.
  void shard(const std::vector<std::int64_t>& permutation);
  std::int64_t shard_size() const;

  // Batch `index` from the worker when one runs and has it, else made here.
  Batch next_batch(std::int64_t index) const;

  std::vector<std::int64_t> order_;
  std::int64_t epoch_ = 0;
  // The current epoch's worker (options_.prefetch > 0); mutable because
  // iterators, which see a const loader, take their batches from it.
  mutable std::unique_ptr<detail::Prefetcher> prefetcher_;
};

}  // namespace tapegrad::data
