#pragma once
// Threads. tapegrad's own loops are single-threaded; OpenBLAS runs matrix
// products on up to num_threads() threads, but only for products big enough
// to gain from it (at least kParallelGemmWork multiply-adds). Small products
// run on one thread: OpenBLAS's threads spin-wait between calls, and on a
// busy machine a two-thread 64x784x256 product was measured 100x slower
// than a one-thread one.
//
// The default is the TAPEGRAD_NUM_THREADS environment variable if set, else
// OpenBLAS's own default (OPENBLAS_NUM_THREADS, else one per core), so the
// machine is never oversubscribed.
#include <cstdint>

namespace tapegrad {

inline constexpr std::int64_t kParallelGemmWork = std::int64_t{1} << 24;

// The most threads a matrix product may use (>= 1).
int num_threads();
void set_num_threads(int threads);

}  // namespace tapegrad
