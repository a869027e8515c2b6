#include "ops/blas.hpp"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <string>

#include "core/parallel.hpp"
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

bool big_product(std::int64_t m, std::int64_t n, std::int64_t k) {
  // In double: m·n·k of three valid extents can pass 2^63.
  return static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) >=
         static_cast<double>(kParallelGemmWork);
}

// Who runs a big product on several threads: tapegrad's own pool (the
// default; OpenBLAS then always runs one thread) or OpenBLAS's threads
// (TAPEGRAD_BLAS_THREADS=openblas, kept to measure one against the other).
bool openblas_splits() {
  static const bool openblas = [] {
    const char* text = std::getenv("TAPEGRAD_BLAS_THREADS");
    return text != nullptr && std::string(text) == "openblas";
  }();
  return openblas;
}

// Tells OpenBLAS how many threads the next product may use, only when that
// changes (the call is cheap but not free).
void use_threads_for(std::int64_t m, std::int64_t n, std::int64_t k) {
  const int wanted = openblas_splits() && big_product(m, n, k) ? num_threads() : 1;
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

// A big product is split into this many blocks per thread, each at least
// kGemmMinBlock rows (or columns) of C. Two per thread: on the MNIST MLP
// step (2 cores, AVX2 kernels) one, two and four per thread were within 3%
// of each other quiet; beside two busy processes four did best at batch 512
// (5.9 against 7.6 ms) and two sat between.
constexpr int kGemmPartsPerThread = 2;
constexpr std::int64_t kGemmMinBlock = 32;

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
  // Blocks of C's longer side, each a one-thread BLAS call, claimed by the
  // pool's threads one by one (core/parallel.hpp): OpenBLAS's own threads
  // spin between products and split each one evenly in advance, so on a
  // shared machine one preempted thread held up every product (the MLP
  // step took 24 times as long beside two busy processes). Rows of C are
  // rows of op(A) (a row block starts at row r of A, or column r when A is
  // transposed); columns of C are columns of op(B).
  const bool by_rows = m >= n;
  const std::int64_t extent = by_rows ? m : n;
  const int threads = num_threads();
  const bool split = threads >= 2 && !openblas_splits() && big_product(m, n, k);
  const int parts =
      split ? static_cast<int>(std::min<std::int64_t>(threads * kGemmPartsPerThread, extent / kGemmMinBlock)) : 1;
  if (parts < 2) {
    gemm_call(CblasRowMajor, flag(ta), flag(tb), i(m), i(n), i(k), alpha, a, i(lda), b, i(ldb), beta, c, i(ldc));
    return;
  }
  // Block edges on multiples of 16 elements: whole cache lines and SIMD registers.
  const std::int64_t step = (extent + parts - 1) / parts;
  const std::int64_t block = (step + 15) / 16 * 16;
  parallel_parts(parts, [&](int part) {
    const std::int64_t first = part * block;
    const std::int64_t count = std::min(block, extent - first);
    if (count <= 0) return;
    if (by_rows) {
      const T* a_part = ta ? a + first : a + first * lda;
      gemm_call(CblasRowMajor, flag(ta), flag(tb), i(count), i(n), i(k), alpha, a_part, i(lda), b, i(ldb), beta,
                c + first * ldc, i(ldc));
    } else {
      const T* b_part = tb ? b + first * ldb : b + first;
      gemm_call(CblasRowMajor, flag(ta), flag(tb), i(m), i(count), i(k), alpha, a, i(lda), b_part, i(ldb), beta,
                c + first, i(ldc));
    }
  });
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
