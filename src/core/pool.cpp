#include "tapegrad/detail/pool.hpp"
#include "tapegrad/memory.hpp"

#include <bit>
#include <cstdlib>
#include <new>
#include <vector>

#include <malloc.h>

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
constexpr std::size_t kMaxCachedBytes = 256u << 20;  // per thread
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

struct Cache {
  std::vector<void*> free_blocks[kClasses];
  std::vector<LargeBlock> large_blocks;  // oldest first
  std::size_t cached_bytes = 0;
  void release() {
    for (auto& list : free_blocks) {
      for (void* block : list) std::free(block);
      list.clear();
      list.shrink_to_fit();
    }
    for (const LargeBlock& large : large_blocks) std::free(large.block);
    large_blocks.clear();
    large_blocks.shrink_to_fit();
    cached_bytes = 0;
  }
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
  ~Cache() {
    alive = false;
    release();
  }
  static thread_local bool alive;
};
thread_local bool Cache::alive = true;
thread_local Cache t_cache;

}  // namespace

namespace {
std::size_t large_rounded(std::size_t bytes) { return (bytes + kLargeGranule - 1) / kLargeGranule * kLargeGranule; }
}  // namespace

void* pool_allocate(std::size_t bytes) {
  if (bytes > kLargestCached) {
    if (!kCacheLargeBlocks || !Cache::alive) return system_allocate((bytes + kAlignment - 1) / kAlignment * kAlignment);
    const std::size_t rounded = large_rounded(bytes);
    auto& large = t_cache.large_blocks;
    for (std::size_t i = large.size(); i-- > 0;) {  // the most recently freed first
      if (large[i].bytes == rounded) {
        void* block = large[i].block;
        large.erase(large.begin() + static_cast<std::ptrdiff_t>(i));
        t_cache.cached_bytes -= rounded;
        return block;
      }
    }
    return system_allocate(rounded);
  }
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
  }
  return system_allocate(rounded);
}

void pool_free(void* block, std::size_t bytes) noexcept {
  if (block == nullptr) return;
  if (bytes > kLargestCached && kCacheLargeBlocks && Cache::alive) {
    const std::size_t rounded = large_rounded(bytes);
    if (rounded > kMaxCachedBytes) {
      std::free(block);
      return;
    }
    t_cache.make_room(rounded);
    if (t_cache.cached_bytes + rounded > kMaxCachedBytes) {
      std::free(block);  // the small-block lists fill the cap
      return;
    }
    try {
      t_cache.large_blocks.push_back({rounded, block});
      t_cache.cached_bytes += rounded;
    } catch (...) {
      std::free(block);
    }
    return;
  }
  if (bytes > kLargestCached || !Cache::alive) {
    std::free(block);
    return;
  }
  std::size_t rounded = 0;
  const int cls = size_class(bytes, rounded);
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

std::size_t pool_cached_bytes() noexcept { return Cache::alive ? t_cache.cached_bytes : 0; }

void pool_release() noexcept {
  if (Cache::alive) t_cache.release();
  // glibc keeps freed memory in its arenas; ask it to return what it can.
  ::malloc_trim(0);
}

bool pool_enabled() noexcept { return kLargestCached > 0; }

}  // namespace tapegrad::detail

namespace tapegrad {

std::size_t cached_memory_bytes() { return detail::pool_cached_bytes(); }
void release_cached_memory() { detail::pool_release(); }

}  // namespace tapegrad
