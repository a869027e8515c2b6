#include "core/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "tapegrad/threads.hpp"

namespace tapegrad::detail {

namespace {

// How long a thread waits by polling before it sleeps: a worker for the
// next loop, the caller for its workers to finish. A convolution runs its
// parallel loops a few microseconds apart (im2col, then the product, then
// the layout copy), and waking a sleeping thread costs tens of
// microseconds here (a futex call and an inter-processor interrupt through
// the hypervisor). Past this, idle threads sleep.
constexpr auto kPollFor = std::chrono::microseconds(100);

// Polls `ready` until it holds or kPollFor has passed; true if it holds.
template <class Ready>
bool poll(const Ready& ready) {
  const auto until = std::chrono::steady_clock::now() + kPollFor;
  for (int spins = 0;; ++spins) {
    if (ready()) return true;
    if ((spins & 63) == 63 && std::chrono::steady_clock::now() >= until) return false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

// Workers started on first use and kept for the life of the process.
//
// A loop's parts are claimed one at a time, by the caller as well as the
// workers, each thread taking the next part when it finishes one. So a
// worker that is slow to wake, or preempted on a shared machine before it
// claims anything, leaves its parts to the caller instead of making it
// wait: with more parts than threads the loop degrades to the caller's
// speed rather than to the scheduler's time slice.
class WorkerPool {
 public:
  static WorkerPool& instance() {
    static WorkerPool* pool = new WorkerPool();  // never destroyed: workers may outlive static destructors
    return *pool;
  }

  // False when another loop holds the pool.
  bool try_run(int parts, int threads, const std::function<void(int)>& body) {
    std::unique_lock busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    start_workers(threads - 1);
    body_ = &body;
    unfinished_.store(parts);
    // The part count and the next part in one word: a worker still
    // claiming from the last loop reads that loop's count beside its
    // index, so it can never take a part of this one by mistake.
    claim_.store(static_cast<std::uint64_t>(parts) << 32);
    {
      std::lock_guard lock(mutex_);  // a worker between its check and its wait must not miss this
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    run_parts();
    if (!poll([&] { return unfinished_.load() == 0; })) {
      std::unique_lock lock(mutex_);
      done_.wait(lock, [&] { return unfinished_.load() == 0; });
    }
    return true;
  }

 private:
  // Claims and runs parts until none are left. A claimed part keeps the
  // loop from finishing, so body_ stays valid while it runs.
  void run_parts() {
    for (;;) {
      const std::uint64_t claim = claim_.fetch_add(1);
      const auto part = static_cast<std::uint32_t>(claim);
      if (part >= static_cast<std::uint32_t>(claim >> 32)) return;
      (*body_)(static_cast<int>(part));
      if (unfinished_.fetch_sub(1) == 1) {
        std::lock_guard lock(mutex_);  // the caller between its check and its wait must not miss this
        done_.notify_one();
      }
    }
  }

  void start_workers(int wanted) {
    // Started before the loop's generation is published: a worker that
    // first looked at the generation after that would wait for the next.
    const std::uint64_t current = generation_.load();
    while (static_cast<int>(workers_.size()) < wanted) workers_.emplace_back([this, current] { work(current); });
  }

  void work(std::uint64_t seen) {
    while (true) {
      if (!poll([&] { return generation_.load() != seen; })) {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load() != seen; });
      }
      seen = generation_.load();
      run_parts();
    }
  }

  std::mutex busy_;  // held by the loop in progress
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  // Written by the caller before it stores claim_, read by a thread after
  // a claim that succeeded.
  const std::function<void(int)>* body_ = nullptr;
  std::atomic<std::uint64_t> claim_{0};  // parts << 32 | next part
  std::atomic<int> unfinished_{0};
  std::atomic<std::uint64_t> generation_{0};
};

thread_local bool t_inside_loop = false;

}  // namespace

void parallel_parts(int parts, const std::function<void(int)>& body) {
  const int threads = std::min(num_threads(), parts);
  if (threads >= 2 && !t_inside_loop) {
    t_inside_loop = true;
    const bool ran = WorkerPool::instance().try_run(parts, threads, [&](int part) {
      const bool outer = t_inside_loop;
      t_inside_loop = true;  // a worker's nested loops run serially
      body(part);
      t_inside_loop = outer;
    });
    t_inside_loop = false;
    if (ran) return;
  }
  for (int part = 0; part < parts; ++part) body(part);
}

void parallel_for(std::int64_t count, std::int64_t min_per_part,
                  const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (count <= 0) return;
  const std::int64_t by_size = count / std::max<std::int64_t>(min_per_part, 1);
  const int parts = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(num_threads(), by_size)));
  if (parts == 1) {
    body(0, count);
    return;
  }
  parallel_parts(parts, [&](int part) {
    const std::int64_t begin = count * part / parts;
    const std::int64_t end = count * (part + 1) / parts;
    if (begin < end) body(begin, end);
  });
}

}  // namespace tapegrad::detail
