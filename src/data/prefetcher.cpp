#include "prefetcher.hpp"

#include <utility>

#include "tapegrad/autograd.hpp"

namespace tapegrad::data::detail {

Prefetcher::Prefetcher(DataLoader epoch, std::int64_t depth)
    : epoch_(std::move(epoch)), depth_(depth), count_(epoch_.num_batches()) {
  worker_ = std::thread([this, grad_mode = grad_enabled()] { run(grad_mode); });
}

Prefetcher::~Prefetcher() {
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

void Prefetcher::run(bool grad_mode) {
  set_grad_enabled(grad_mode);
  for (std::int64_t index = 0; index < count_; ++index) {
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || static_cast<std::int64_t>(ready_.size()) < depth_; });
      if (stop_) return;
    }
    Batch batch;
    std::exception_ptr error;
    try {
      batch = epoch_.batch(index);
    } catch (...) {
      error = std::current_exception();
    }
    {
      const std::lock_guard lock(mutex_);
      if (error) {
        error_ = error;
        failed_ = index;
      } else {
        ready_.push_back(std::move(batch));
        ++produced_;
      }
    }
    changed_.notify_all();
    if (error) return;
  }
}

std::optional<Batch> Prefetcher::take(std::int64_t index) {
  std::unique_lock lock(mutex_);
  const auto first_ready = [&] { return produced_ - static_cast<std::int64_t>(ready_.size()); };
  if (index < first_ready() || index >= count_) return std::nullopt;
  for (;;) {
    // Batches the caller skipped are dropped, making room for the worker.
    bool dropped = false;
    while (!ready_.empty() && first_ready() < index) {
      ready_.pop_front();
      dropped = true;
    }
    if (dropped) changed_.notify_all();
    if (error_ && failed_ < index) return std::nullopt;
    if (error_ && failed_ == index && ready_.empty()) std::rethrow_exception(error_);
    if (!ready_.empty() && first_ready() == index) {
      Batch batch = std::move(ready_.front());
      ready_.pop_front();
      lock.unlock();
      changed_.notify_all();
      return batch;
    }
    changed_.wait(lock);
  }
}

}  // namespace tapegrad::data::detail
