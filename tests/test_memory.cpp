// The memory pool (core/pool.cpp, memory.hpp): blocks reused within a
// thread, the caps, release_cached_memory, and blocks that one thread makes
// and another frees (a prefetching loader's batches) flowing back to the
// thread that makes them instead of piling up where they are freed.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;

TEST_CASE("release_cached_memory hands the pool's blocks back after a large graph", "[memory]") {
  Tensor x = leaf({0.5});
  {
    Tensor y = x;
    for (int i = 0; i < 20000; ++i) y = tanh(y);
    y.backward();
  }
  // Sanitizer builds cache nothing, so that use-after-free is caught.
  if (detail::pool_enabled()) CHECK(cached_memory_bytes() > 20000 * 64);
  release_cached_memory();
  CHECK(cached_memory_bytes() == 0);
  CHECK(tanh(x).defined());  // and allocation carries on
}

TEST_CASE("large buffers are reused by size, and the oldest go first past the cap", "[memory]") {
  if (!detail::pool_enabled()) return;  // sanitizer builds cache nothing
  release_cached_memory();
  const void* first = nullptr;
  {
    Tensor big = empty({1000, 1000});  // 4 MB, above the size classes
    first = big.raw_data();
  }
  CHECK(cached_memory_bytes() >= 4000000);
  {
    Tensor again = empty({1000, 1000});  // the same size: the same block
    CHECK(again.raw_data() == first);
    CHECK(cached_memory_bytes() < 4000000);
  }
  // 300 blocks of 1.5 MB each would pass the 256 MiB cap: the cache stays under it.
  {
    std::vector<Tensor> many;
    for (int i = 0; i < 300; ++i) many.push_back(empty({375000 + 16384 * i}));
  }
  CHECK(cached_memory_bytes() <= std::size_t{256} << 20);
  CHECK(cached_memory_bytes() > std::size_t{200} << 20);
  release_cached_memory();
  CHECK(cached_memory_bytes() == 0);
}

TEST_CASE("blocks one thread makes and another frees go back to the maker, not into the freer's cache",
          "[memory][threads]") {
  if (!detail::pool_enabled()) return;  // sanitizer builds cache nothing
  release_cached_memory();
  // A producer makes 2,000 batches (a 64x784 float32 image block, 200 KB,
  // and a label vector) two ahead of the consumer, which frees them: a
  // prefetching loader and its training loop. Without the shared cache the
  // consumer kept all of them, up to its 256 MiB cap, and the producer
  // asked the system for every one.
  constexpr int kBatches = 2000;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::vector<Tensor>> queue;
  std::set<const void*> producer_blocks;
  std::thread producer([&] {
    for (int i = 0; i < kBatches; ++i) {
      std::vector<Tensor> batch{full({64, 784}, static_cast<double>(i)), zeros({64}, DType::Int64)};
      producer_blocks.insert(batch[0].raw_data());
      std::unique_lock lock(mutex);
      changed.wait(lock, [&] { return queue.size() < 2; });
      queue.push_back(std::move(batch));
      changed.notify_all();
    }
  });
  std::size_t most_cached = 0;
  for (int i = 0; i < kBatches; ++i) {
    std::vector<Tensor> batch;
    {
      std::unique_lock lock(mutex);
      changed.wait(lock, [&] { return !queue.empty(); });
      batch = std::move(queue.front());
      queue.pop_front();
      changed.notify_all();
    }
    CHECK(batch[0].data<float>()[64 * 784 - 1] == static_cast<float>(i));
    batch.clear();  // freed here, on the consumer
    most_cached = std::max(most_cached, cached_memory_bytes());
  }
  producer.join();
  // The consumer's cache and the shared one together hold a few batches.
  CHECK(most_cached < std::size_t{16} << 20);
  // And the producer cycled through a few blocks instead of 2,000 new ones.
  CHECK(producer_blocks.size() < 100);
  release_cached_memory();
  CHECK(cached_memory_bytes() == 0);
}

TEST_CASE("a thread keeps the blocks its own largest graph freed, past the first few", "[memory][threads]") {
  if (!detail::pool_enabled()) return;
  release_cached_memory();
  // 5,000 live blocks of one class, freed together: the next round reuses
  // them all from this thread's cache (none went to the shared cache, which
  // a second thread would otherwise take them from).
  std::set<const void*> first;
  {
    std::vector<Tensor> live;
    for (int i = 0; i < 5000; ++i) live.push_back(empty({100}));
    for (const Tensor& t : live) first.insert(t.raw_data());
  }
  std::thread([] {
    std::vector<Tensor> other;
    for (int i = 0; i < 5000; ++i) other.push_back(empty({100}));
  }).join();
  std::vector<Tensor> again;
  std::size_t reused = 0;
  for (int i = 0; i < 5000; ++i) {
    again.push_back(empty({100}));
    reused += first.count(again.back().raw_data());
  }
  CHECK(reused == 5000);
}
