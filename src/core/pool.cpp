#include "tapegrad/detail/pool.hpp"

#include <malloc.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#include "tapegrad/memory.hpp"

namespace tapegrad::detail {

namespace {

constexpr std::size_t kAlignment = 64;  // a cache line; enough for AVX-512 loads
// g++ defines __SANITIZE_ADDRESS__ under -fsanitize=address; clang does not,
// and answers __has_feature(address_sanitizer) instead.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TAPEGRAD_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TAPEGRAD_ASAN 1
#endif

#if defined(TAPEGRAD_ASAN)
// Under AddressSanitizer every block goes back to the system at once, so
// that a use after free is reported instead of hidden by reuse.
constexpr std::size_t kLargestCached = 0;
constexpr bool kCacheLargeBlocks = false;
#else
constexpr std::size_t kLargestCached = 1u << 20;  // the largest size class
// Bigger blocks are cached by exact size (rounded to 64 KiB): a training
// loop asks for the same few large buffers every step, and handing them to
// glibc makes it trim its heap top and fault the pages in again at the next
// step (a 1024² matmul forward + backward ran at 45% of OpenBLAS's speed).
constexpr bool kCacheLargeBlocks = true;
#endif
constexpr std::size_t kLargeGranule = 64u << 10;
constexpr std::size_t kMaxCachedBytes = 256u << 20;  // per thread, and for the shared cache
constexpr int kClasses = 28;

// Classes: 64, 128, 192, 256, then two per power of two (3/4·2^k and 2^k)
// up to 1 MiB, so at most a third of a block is slack.
int size_class(std::size_t bytes, std::size_t& rounded) {
  if (bytes <= 256) {
    rounded = bytes <= 64 ? 64 : (bytes + 63) / 64 * 64;
    return static_cast<int>(rounded / 64) - 1;
  }
  const std::size_t power = std::bit_ceil(bytes);
  const std::size_t three_quarters = power / 4 * 3;
  rounded = bytes <= three_quarters ? three_quarters : power;
  const int k = std::countr_zero(power);
  return 4 + 2 * (k - 9) + (rounded == power ? 1 : 0);
}

// The block size of class `cls`, the inverse of size_class.
std::size_t class_bytes(int cls) {
  if (cls < 4) return static_cast<std::size_t>(cls + 1) * 64;
  const std::size_t power = std::size_t{1} << (9 + (cls - 4) / 2);
  return (cls - 4) % 2 == 1 ? power : power / 4 * 3;
}

// Blocks up to this size (tensor handles, nodes, storage records, tiny
// buffers) take malloc's 16-byte alignment: aligned_alloc adds ~60 bytes of
// slack and fragments per block, which was a third of a recorded op's memory
// (a tanh node: 1855 bytes with it, measured by bench graph_memory). A
// cache line matters only for buffers long enough to stream through SIMD.
constexpr std::size_t kLargestSmallBlock = 256;

void* system_allocate(std::size_t rounded) {
  void* block = rounded <= kLargestSmallBlock ? std::malloc(rounded) : std::aligned_alloc(kAlignment, rounded);
  if (block == nullptr) throw std::bad_alloc();
  return block;
}

struct LargeBlock {
  std::size_t bytes;
  void* block;
};

// The cache every thread shares. Blocks move through it when one thread
// frees what another allocated: a loader's worker thread makes batches that
// the training thread frees. With thread caches alone the freeing thread's
// cache filled up to its cap with blocks it never asked for, while the
// making thread went to the system for every batch (~200 MB pinned).
// A thread cache that holds more blocks of a class than its own demand
// ever needed passes half of them here, and a thread whose cache is empty
// looks here before asking the system. Large blocks live only here: one
// lock per megabyte-sized allocation costs nothing next to touching it.
// Never destroyed, because thread caches spill into it while threads, and
// the process, exit.
struct SharedCache {
  std::mutex mutex;
  std::vector<void*> free_blocks[kClasses];
  std::vector<LargeBlock> large_blocks;  // oldest first
  std::size_t cached_bytes = 0;

  // Frees the oldest large blocks until `bytes` more fit under the cap.
  void make_room(std::size_t bytes) {
    std::size_t evicted = 0;
    while (evicted < large_blocks.size() && cached_bytes + bytes > kMaxCachedBytes) {
      std::free(large_blocks[evicted].block);
      cached_bytes -= large_blocks[evicted].bytes;
      ++evicted;
    }
    large_blocks.erase(large_blocks.begin(), large_blocks.begin() + static_cast<std::ptrdiff_t>(evicted));
  }
};

SharedCache& shared_cache() {
  static SharedCache* cache = new SharedCache;
  return *cache;
}

// A thread starts by keeping a few blocks of each class (32, fewer of the
// classes above 32 KiB: about 1 MiB of each), and keeps one more for every
// block of the class it had to fetch: its cache then holds what its largest
// graph so far freed (so a training loop reuses its own blocks without
// locking) but not a stream of blocks other threads made.
std::size_t initial_keep(std::size_t rounded) { return std::clamp<std::size_t>((1u << 20) / rounded, 2, 32); }

void free_all(std::vector<void*>& list) {
  for (void* block : list) std::free(block);
  list.clear();
  list.shrink_to_fit();
}

struct Cache {
  std::vector<void*> free_blocks[kClasses];
  std::size_t keep[kClasses];
  std::size_t cached_bytes = 0;

  Cache() {
    for (int cls = 0; cls < kClasses; ++cls) keep[cls] = initial_keep(class_bytes(cls));
  }
  void release() {
    for (auto& list : free_blocks) free_all(list);
    cached_bytes = 0;
  }
  // Moves the older half of class `cls`'s blocks to the shared cache (to
  // the system past its cap).
  void spill(int cls, std::size_t rounded) {
    auto& list = free_blocks[cls];
    const std::size_t moved = list.size() / 2;
    SharedCache& shared = shared_cache();
    {
      const std::lock_guard lock(shared.mutex);
      auto& target = shared.free_blocks[cls];
      std::size_t i = 0;
      try {
        for (; i < moved && shared.cached_bytes + rounded <= kMaxCachedBytes; ++i) {
          target.push_back(list[i]);
          shared.cached_bytes += rounded;
        }
      } catch (...) {
      }
      for (std::size_t j = i; j < moved; ++j) std::free(list[j]);
    }
    list.erase(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(moved));
    cached_bytes -= moved * rounded;
  }
  // Takes up to half this thread's keep of class `cls` from the shared
  // cache; returns one of them, or null when it had none.
  void* refill(int cls, std::size_t rounded) {
    SharedCache& shared = shared_cache();
    const std::lock_guard lock(shared.mutex);
    auto& source = shared.free_blocks[cls];
    if (source.empty()) return nullptr;
    void* block = source.back();
    source.pop_back();
    shared.cached_bytes -= rounded;
    auto& list = free_blocks[cls];
    const std::size_t wanted = std::min(source.size(), keep[cls] / 2);
    try {
      list.reserve(list.size() + wanted);
    } catch (...) {
      return block;
    }
    for (std::size_t i = 0; i < wanted; ++i) {
      list.push_back(source.back());
      source.pop_back();
    }
    shared.cached_bytes -= wanted * rounded;
    cached_bytes += wanted * rounded;
    return block;
  }
  ~Cache() {
    alive = false;
    release();
  }
  static thread_local bool alive;
};
thread_local bool Cache::alive = true;
thread_local Cache t_cache;

std::size_t large_rounded(std::size_t bytes) { return (bytes + kLargeGranule - 1) / kLargeGranule * kLargeGranule; }

void* allocate_large(std::size_t bytes) {
  if (!kCacheLargeBlocks) return system_allocate((bytes + kAlignment - 1) / kAlignment * kAlignment);
  const std::size_t rounded = large_rounded(bytes);
  SharedCache& shared = shared_cache();
  {
    const std::lock_guard lock(shared.mutex);
    auto& large = shared.large_blocks;
    for (std::size_t i = large.size(); i-- > 0;) {  // the most recently freed first
      if (large[i].bytes == rounded) {
        void* block = large[i].block;
        large.erase(large.begin() + static_cast<std::ptrdiff_t>(i));
        shared.cached_bytes -= rounded;
        return block;
      }
    }
  }
  return system_allocate(rounded);
}

void free_large(void* block, std::size_t bytes) noexcept {
  const std::size_t rounded = large_rounded(bytes);
  if (!kCacheLargeBlocks || rounded > kMaxCachedBytes) {
    std::free(block);
    return;
  }
  SharedCache& shared = shared_cache();
  const std::lock_guard lock(shared.mutex);
  shared.make_room(rounded);
  if (shared.cached_bytes + rounded > kMaxCachedBytes) {
    std::free(block);  // the small-block lists fill the cap
    return;
  }
  try {
    shared.large_blocks.push_back({rounded, block});
    shared.cached_bytes += rounded;
  } catch (...) {
    std::free(block);
  }
}

}  // namespace

void* pool_allocate(std::size_t bytes) {
  if (bytes > kLargestCached) return allocate_large(bytes);
  std::size_t rounded = 0;
  const int cls = size_class(bytes, rounded);
  if (Cache::alive) {
    auto& list = t_cache.free_blocks[cls];
    if (!list.empty()) {
      void* block = list.back();
      list.pop_back();
      t_cache.cached_bytes -= rounded;
      return block;
    }
    std::size_t& keep = t_cache.keep[cls];
    if (keep * rounded < kMaxCachedBytes) ++keep;
    if (void* block = t_cache.refill(cls, rounded)) return block;
  }
  return system_allocate(rounded);
}

void pool_free(void* block, std::size_t bytes) noexcept {
  if (block == nullptr) return;
  if (bytes > kLargestCached) {
    free_large(block, bytes);
    return;
  }
  if (!Cache::alive) {
    std::free(block);
    return;
  }
  std::size_t rounded = 0;
  const int cls = size_class(bytes, rounded);
  if (t_cache.free_blocks[cls].size() >= t_cache.keep[cls]) t_cache.spill(cls, rounded);
  if (t_cache.cached_bytes + rounded > kMaxCachedBytes) {
    std::free(block);
    return;
  }
  try {
    t_cache.free_blocks[cls].push_back(block);
    t_cache.cached_bytes += rounded;
  } catch (...) {
    std::free(block);  // the cache could not grow: just give the block back
  }
}

std::size_t pool_cached_bytes() noexcept {
  SharedCache& shared = shared_cache();
  const std::lock_guard lock(shared.mutex);
  return (Cache::alive ? t_cache.cached_bytes : 0) + shared.cached_bytes;
}

void pool_release() noexcept {
  if (Cache::alive) t_cache.release();
  {
    SharedCache& shared = shared_cache();
    const std::lock_guard lock(shared.mutex);
    for (auto& list : shared.free_blocks) free_all(list);
    for (const LargeBlock& large : shared.large_blocks) std::free(large.block);
    shared.large_blocks.clear();
    shared.large_blocks.shrink_to_fit();
    shared.cached_bytes = 0;
  }
  // glibc keeps freed memory in its arenas; ask it to return what it can.
  ::malloc_trim(0);
}

bool pool_enabled() noexcept { return kLargestCached > 0; }

}  // namespace tapegrad::detail

namespace tapegrad {

std::size_t cached_memory_bytes() { return detail::pool_cached_bytes(); }
void release_cached_memory() { detail::pool_release(); }

}  // namespace tapegrad
