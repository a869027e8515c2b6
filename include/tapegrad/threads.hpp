#pragma once
// Threads. A matrix product of at least kParallelGemmWork = 2^22
// multiply-adds is split into blocks of rows (or columns) of its result,
// each a one-thread OpenBLAS call, and the blocks are claimed one by one
// by up to num_threads() threads: the caller and the workers of
// tapegrad's pool. Smaller products run on the calling thread (on this
// project's 2-core machine 2^22 beat 2^20 and 2^24 for the MNIST MLP step).
// OpenBLAS itself always runs one thread.
//
// Why not OpenBLAS's own threads: they spin between products and split
// each product evenly in advance, so on a shared machine one preempted
// thread holds up every product. Beside two busy processes on 2 cores the
// MLP step at batch 64 took 40 ms with OpenBLAS's threads against 0.7 ms
// quiet; with the pool, whose threads take the next block when free (a
// late one leaves its blocks to the caller) and sleep when idle, 0.85 ms.
// Quiet, the two are equally fast (BENCHMARKS.md). TAPEGRAD_BLAS_THREADS=
// openblas brings OpenBLAS's threading back, to measure one against the
// other.
//
// The pool's workers poll for 0.1 ms after a loop and then sleep on a
// condition variable, so an idle pool takes no core. The convolutions'
// memory-bound loops (im2col, col2im and the layout copies around the
// products) split their images over the same pool. Every other loop runs
// on the calling thread.
//
// The default is the TAPEGRAD_NUM_THREADS environment variable if set, else
// OpenBLAS's own default (OPENBLAS_NUM_THREADS, else one per core), so the
// machine is never oversubscribed.
//
// The setting is process-wide and safe to read and change from any thread.
// When several threads run products at once (say, two models training side
// by side), call set_num_threads(1): the pool runs one loop at a time, and
// a product started while it is busy runs on its caller's thread alone.
#include <cstdint>

namespace tapegrad {

inline constexpr std::int64_t kParallelGemmWork = std::int64_t{1} << 22;

// The most threads a matrix product may use (>= 1).
int num_threads();
void set_num_threads(int threads);

}  // namespace tapegrad
