#pragma once
// Implementation detail (public only because record_op is a template that
// allocates nodes): a thread-local cache of freed blocks, by size class,
// over one cache shared by all threads (large blocks, and what a thread
// frees beyond its own demand: see SharedCache in pool.cpp).
//
// A recorded graph keeps thousands of small blocks alive (tensors, nodes,
// buffers) and frees them together after backward; glibc's malloc then
// leaves its fast path and allocation dominated the per-op cost (measured:
// 0.48 µs per tanh node, 0.28 µs with the same code on jemalloc). Reusing
// blocks of the same class makes allocation a vector pop.
#include <cstddef>
#include <memory>
#include <utility>

namespace tapegrad::detail {

// A block of at least `bytes` bytes, 64-byte aligned above 256 bytes and
// 16-byte aligned below (the alignment of malloc).
void* pool_allocate(std::size_t bytes);
// Returns a block from pool_allocate; `bytes` must be the size asked for.
void pool_free(void* block, std::size_t bytes) noexcept;

// Bytes held in freed blocks by the calling thread's cache and the shared
// cache (at most 256 MiB each).
std::size_t pool_cached_bytes() noexcept;
// Frees the calling thread's cached blocks and the shared cache's, and asks the C library to give
// freed memory back to the system (release_cached_memory() in memory.hpp).
void pool_release() noexcept;
// False in AddressSanitizer builds, where every block goes straight back
// to the system so that use-after-free is caught.
bool pool_enabled() noexcept;

// Allocator for std::allocate_shared, so that a shared object and its
// control block come from the pool too.
template <class T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(pool_allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { pool_free(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const PoolAllocator<U>&) const noexcept { return true; }
};

// make_shared from the pool: object and control block in one pooled block.
template <class T, class... Args>
std::shared_ptr<T> make_pooled(Args&&... args) {
  return std::allocate_shared<T>(PoolAllocator<T>{}, std::forward<Args>(args)...);
}

}  // namespace tapegrad::detail
