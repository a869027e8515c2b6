#pragma once
// Internal: parallel loops for the library's own memory-bound kernels
// (im2col, col2im) and the split of large matrix products (ops/blas.cpp),
// on up to num_threads() threads.
//
// Between loops the workers poll for 0.1 ms, then sleep on a condition
// variable: on a shared machine a thread that keeps spinning steals the
// core that another process, or OpenBLAS, needs. Loops are run one at a time; a loop started while
// another runs (from a second user thread, or from inside a loop body)
// runs serially on its caller, so nothing waits on a busy pool.
#include <cstdint>
#include <functional>

namespace tapegrad::detail {

// Calls body(begin, end) on disjoint ranges covering [0, count), splitting
// only when each part gets at least `min_per_part` items, and returns when
// all are done. The calling thread takes a part itself. body must not
// throw.
void parallel_for(std::int64_t count, std::int64_t min_per_part,
                  const std::function<void(std::int64_t, std::int64_t)>& body);

// Calls body(part) once for every part in [0, parts) on up to
// num_threads() threads (the caller one of them) and returns when all are
// done. Each thread takes the next unclaimed part when it finishes one, so
// with more parts than threads a worker that is late (asleep, or preempted
// on a busy machine) leaves its share to the others. body must not throw.
void parallel_parts(int parts, const std::function<void(int)>& body);

}  // namespace tapegrad::detail
