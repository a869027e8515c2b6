#pragma once
// Threads. OpenBLAS runs matrix products on up to num_threads() threads,
// but only for products big enough to gain from it (at least
// kParallelGemmWork = 2^22 multiply-adds; on this project's 2-core machine
// 2^22 beat 2^20 and 2^24 for the MNIST MLP step). Smaller products run on
// one thread: OpenBLAS's threads spin-wait between calls, and on a busy
// machine a two-thread product of a few thousand multiply-adds per thread
// costs far more than it saves.
//
// Of tapegrad's own loops, the convolutions' memory-bound ones (im2col,
// col2im and the layout copies around the products) split their images
// over up to num_threads() threads of a pool whose workers poll for 0.1 ms
// after a loop and then sleep, so an idle pool takes no core. Every other
// loop runs on the calling thread.
//
// The default is the TAPEGRAD_NUM_THREADS environment variable if set, else
// OpenBLAS's own default (OPENBLAS_NUM_THREADS, else one per core), so the
// machine is never oversubscribed.
//
// The setting is process-wide and safe to read and change from any thread.
// OpenBLAS has one thread count for the whole process: when several threads
// run products at once (say, two models training side by side), call
// set_num_threads(1) so that they do not fight over it and the cores.
#include <cstdint>

namespace tapegrad {

inline constexpr std::int64_t kParallelGemmWork = std::int64_t{1} << 22;

// The most threads a matrix product may use (>= 1).
int num_threads();
void set_num_threads(int threads);

}  // namespace tapegrad
