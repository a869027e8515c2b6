#pragma once
// Memory the library keeps for reuse. Tensors, nodes and buffers come from
// a per-thread cache of freed blocks (at most 256 MiB per thread, the
// oldest large blocks given back first), because allocation otherwise
// dominates the per-op cost of the tape, and large buffers handed back to
// the C library are faulted in again at the next step. Blocks up to 1 MiB
// are cached by size class, larger ones by their size rounded to 64 KiB.
// After a very large graph is freed, release_cached_memory() hands that
// cache, and what the C library keeps of freed memory, back to the system.
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
