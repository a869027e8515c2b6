#pragma once
// Memory the library keeps for reuse. Tensors, nodes and buffers come from
// a per-thread cache of freed blocks, because allocation otherwise
// dominates the per-op cost of the tape, and large buffers handed back to
// the C library are faulted in again at the next step. Blocks up to 1 MiB
// are cached by size class in the thread that freed them, up to what that
// thread's own graphs needed; larger ones, and the surplus of a thread that
// frees what others made (a prefetching loader's batches), go to one cache
// shared by all threads, where the making thread finds them again. Each
// cache holds at most 256 MiB, the oldest large blocks given back first.
// After a very large graph is freed, release_cached_memory() hands the
// caches, and what the C library keeps of freed memory, back to the system.
#include <cstddef>
#include <cstdint>

namespace tapegrad {

// Bytes of tensor data allocated by the calling thread and not yet freed
// (a buffer freed by another thread counts there): what a recorded graph
// keeps alive is this number after a recorded forward minus after the same
// forward under no_grad.
std::int64_t allocated_memory_bytes();
// Bytes held by the calling thread's cache of freed blocks and the shared
// cache.
std::size_t cached_memory_bytes();
// Frees the calling thread's cache and the shared cache, and trims the C
// library's heap.
void release_cached_memory();

}  // namespace tapegrad
