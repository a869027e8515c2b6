#pragma once
// The worker thread of a DataLoader with options.prefetch > 0: it makes
// the batches of one epoch in order, at most `depth` ahead of the caller,
// and sleeps on a condition variable (no spinning) when it is that far
// ahead or done. The caller's thread frees the batches; the pool's shared
// cache hands their blocks back to the worker (core/pool.cpp).
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "tapegrad/data/dataloader.hpp"

namespace tapegrad::data::detail {

class Prefetcher {
 public:
  // `epoch` is a copy of the loader taken when the epoch began (its order,
  // epoch count and options; no worker of its own), so the worker shares
  // nothing mutable with the caller's loader. The worker runs with the
  // caller's grad mode.
  Prefetcher(DataLoader epoch, std::int64_t depth);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Batch `index` as the worker made it (waiting for it if need be), or
  // nothing when the caller must make it itself: an index the worker has
  // passed, or one after a batch whose making threw. The exception of the
  // batch that threw is rethrown when that batch is taken.
  std::optional<Batch> take(std::int64_t index);

 private:
  void run(bool grad_mode);

  const DataLoader epoch_;
  const std::int64_t depth_;
  const std::int64_t count_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> ready_;    // batches produced_ - ready_.size() .. produced_ - 1
  std::int64_t produced_ = 0;  // batches made so far
  std::exception_ptr error_;   // of batch failed_ (= produced_), after which the worker stopped
  std::int64_t failed_ = -1;
  bool stop_ = false;
  std::thread worker_;  // last: it starts once everything above exists
};

}  // namespace tapegrad::data::detail
