#include "ops/blas.hpp"

#include <cblas.h>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <string>

#include "tapegrad/error.hpp"
#include "tapegrad/threads.hpp"

namespace tapegrad {

namespace {

int initial_threads() {
  if (const char* text = std::getenv("TAPEGRAD_NUM_THREADS")) {
    const int threads = std::atoi(text);
    if (threads >= 1) return threads;
  }
  return openblas_get_num_threads();
}

// Process-wide, and read and written from any thread that runs a product:
// atomics, and a mutex so that two threads never call into OpenBLAS's
// setter at once.
std::atomic<int> g_max_threads{0};   // 0: OpenBLAS's default, read once
std::atomic<int> g_blas_threads{-1};  // what OpenBLAS was last told
std::mutex g_blas_threads_mutex;

int default_threads() {
  // A function-local static is initialised exactly once, even under races,
  // and before the first openblas_set_num_threads call could overwrite the
  // default it reads (use_threads_for asks num_threads() first).
  static const int threads = initial_threads();
  return threads;
}

// Tells OpenBLAS how many threads the next product may use, only when that
// changes (the call is cheap but not free).
void use_threads_for(std::int64_t m, std::int64_t n, std::int64_t k) {
  const int most = num_threads();
  // In double: m·n·k of three valid extents can pass 2^63.
  const bool big = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) >=
                   static_cast<double>(kParallelGemmWork);
  const int wanted = big ? most : 1;
  if (wanted == g_blas_threads.load(std::memory_order_relaxed)) return;
  std::lock_guard lock(g_blas_threads_mutex);
  if (wanted != g_blas_threads.load(std::memory_order_relaxed)) {
    openblas_set_num_threads(wanted);
    g_blas_threads.store(wanted, std::memory_order_relaxed);
  }
}

// OpenBLAS's blasint is 32 bits here: larger extents would be truncated
// into a product of the wrong shape.
void check_blas_extents(std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t lda, std::int64_t ldb,
                        std::int64_t ldc) {
  constexpr std::int64_t kMax = std::numeric_limits<blasint>::max();
  if (m > kMax || n > kMax || k > kMax || lda > kMax || ldb > kMax || ldc > kMax) {
    throw_invalid("matmul", "a product of [", m, "x", k, "] by [", k, "x", n, "] exceeds BLAS's limit of ", kMax,
                  " per extent");
  }
}

}  // namespace

int num_threads() {
  const int set = g_max_threads.load(std::memory_order_relaxed);
  return set != 0 ? set : default_threads();
}

void set_num_threads(int threads) {
  if (threads < 1) throw_invalid("set_num_threads", "needs at least 1 thread, got ", threads);
  default_threads();  // read OpenBLAS's default before anything overwrites it
  g_max_threads.store(threads, std::memory_order_relaxed);
  g_blas_threads.store(-1, std::memory_order_relaxed);
}

}  // namespace tapegrad

namespace tapegrad::detail {

namespace {
CBLAS_TRANSPOSE flag(bool transpose) { return transpose ? CblasTrans : CblasNoTrans; }
}  // namespace

void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc) {
  check_blas_extents(m, n, k, lda, ldb, ldc);
  use_threads_for(m, n, k);
  cblas_sgemm(CblasRowMajor, flag(transpose_a), flag(transpose_b), static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
          std::int64_t ldc) {
  check_blas_extents(m, n, k, lda, ldb, ldc);
  use_threads_for(m, n, k);
  cblas_dgemm(CblasRowMajor, flag(transpose_a), flag(transpose_b), static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

const char* blas_config() { return openblas_get_config(); }

}  // namespace tapegrad::detail
