#pragma once
// Counts every heap allocation of the test binary that includes it: include
// it from exactly one source file of that binary. A replayed step must
// allocate nothing (capture.hpp), and this is how its tests see that.
#include <atomic>
#include <cstddef>

// Every heap allocation of the process is counted (operator new, and malloc
// and its relatives through glibc's own entry points), except in sanitizer
// builds, whose runtimes own malloc.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TAPEGRAD_COUNTS_ALLOCATIONS 0
#else
#define TAPEGRAD_COUNTS_ALLOCATIONS 1
namespace {
std::atomic<long> g_allocations{0};
}  // namespace
// Heap allocations so far, by any thread.
inline long allocation_count() { return g_allocations.load(); }
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
void* malloc(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(std::size_t count, std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(count, n);
}
void* realloc(void* p, std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(alignment, n);
}
void* memalign(std::size_t alignment, std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  *out = __libc_memalign(alignment, n);
  return *out ? 0 : 12;  // ENOMEM
}
void free(void* p) { __libc_free(p); }
}
#endif

