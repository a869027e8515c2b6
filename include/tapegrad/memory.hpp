#pragma once
// Memory the library keeps for reuse. Tensors, nodes and buffers up to
// 1 MiB come from a per-thread cache of freed blocks (at most 256 MiB per
// thread), because allocation otherwise dominates the per-op cost of the
// tape. After a very large graph is freed, release_cached_memory() hands
// that cache, and what the C library keeps of freed memory, back to the
// system.
#include <cstddef>
#include <cstdint>

namespace tapegrad {

// Bytes of tensor data allocated by the calling thread and not yet freed
// (a buffer freed by another thread counts there): what a recorded graph
// keeps alive is this number after a recorded forward minus after the same
// forward under no_grad.
std::int64_t allocated_memory_bytes();
// Bytes held by the calling thread's cache of freed blocks.
std::size_t cached_memory_bytes();
// Frees the calling thread's cache and trims the C library's heap.
void release_cached_memory();

}  // namespace tapegrad
