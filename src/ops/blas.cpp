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

// C = alpha·op(A)·op(B) + beta·C through `gemm_call` (cblas_sgemm or
// cblas_dgemm), or through `gemv_call` when C is one row or one column. A
// matrix-vector product is what such a product is, and BLAS's gemm would
// first pack the whole matrix operand into panels: at batch 1 (a recurrent
// cell's step) the packing cost more than the arithmetic.
template <class T, class Gemm, class Gemv>
void product(const Gemm& gemm_call, const Gemv& gemv_call, bool ta, bool tb, std::int64_t m, std::int64_t n,
             std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
             std::int64_t ldc) {
  check_blas_extents(m, n, k, lda, ldb, ldc);
  use_threads_for(m, n, k);
  auto i = [](std::int64_t v) { return static_cast<blasint>(v); };
  if ((m == 1 || n == 1) && k > 0) {
    // beta = 0 must not read C (it may hold anything): start from zeros.
    const std::int64_t count = m == 1 ? n : m, stride = m == 1 ? 1 : ldc;
    if (beta == T(0))
      for (std::int64_t j = 0; j < count; ++j) c[j * stride] = T(0);
    if (m == 1) {  // c[0, :] = alpha · op(B)ᵀ · op(A)[0, :]
      const std::int64_t inc_a = ta ? lda : 1;
      if (tb) {  // B stored [n x k]
        gemv_call(CblasRowMajor, CblasNoTrans, i(n), i(k), alpha, b, i(ldb), a, i(inc_a), beta, c, 1);
      } else {  // B stored [k x n]
        gemv_call(CblasRowMajor, CblasTrans, i(k), i(n), alpha, b, i(ldb), a, i(inc_a), beta, c, 1);
      }
    } else {  // c[:, 0] = alpha · op(A) · op(B)[:, 0]
      const std::int64_t inc_b = tb ? 1 : ldb;
      if (ta) {  // A stored [k x m]
        gemv_call(CblasRowMajor, CblasTrans, i(k), i(m), alpha, a, i(lda), b, i(inc_b), beta, c, i(ldc));
      } else {  // A stored [m x k]
        gemv_call(CblasRowMajor, CblasNoTrans, i(m), i(k), alpha, a, i(lda), b, i(inc_b), beta, c, i(ldc));
      }
    }
    return;
  }
  gemm_call(CblasRowMajor, flag(ta), flag(tb), i(m), i(n), i(k), alpha, a, i(lda), b, i(ldb), beta, c, i(ldc));
}

}  // namespace

void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc) {
  product(cblas_sgemm, cblas_sgemv, transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
          std::int64_t ldc) {
  product(cblas_dgemm, cblas_dgemv, transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

const char* blas_config() { return openblas_get_config(); }

}  // namespace tapegrad::detail
