#pragma once
// Threads. tapegrad's own loops are single-threaded; OpenBLAS runs matrix
// products on up to num_threads() threads, but only for products big enough
// to gain from it (at least kParallelGemmWork = 2^22 multiply-adds; on this
// project's 2-core machine 2^22 beat 2^20 and 2^24 for the MNIST MLP step).
// Smaller products run on one thread: OpenBLAS's threads spin-wait between
// calls, and on a busy machine a two-thread product of a few thousand
// multiply-adds per thread costs far more than it saves.
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
