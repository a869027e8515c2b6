#include "ops/blas.hpp"

#include <cblas.h>

#include <cstdlib>
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

int g_max_threads = 0;     // 0: not read yet
int g_blas_threads = -1;   // what OpenBLAS was last told

// Tells OpenBLAS how many threads the next product may use, only when that
// changes (the call is cheap but not free).
void use_threads_for(std::int64_t m, std::int64_t n, std::int64_t k) {
  // num_threads() first: it reads OpenBLAS's default, which the first
  // openblas_set_num_threads call would overwrite.
  const int most = num_threads();
  const int wanted = m * n * k >= kParallelGemmWork ? most : 1;
  if (wanted != g_blas_threads) {
    openblas_set_num_threads(wanted);
    g_blas_threads = wanted;
  }
}

}  // namespace

int num_threads() {
  if (g_max_threads == 0) g_max_threads = initial_threads();
  return g_max_threads;
}

void set_num_threads(int threads) {
  if (threads < 1) throw_invalid("set_num_threads", "needs at least 1 thread, got ", threads);
  g_max_threads = threads;
  g_blas_threads = -1;
}

}  // namespace tapegrad

namespace tapegrad::detail {

namespace {
CBLAS_TRANSPOSE flag(bool transpose) { return transpose ? CblasTrans : CblasNoTrans; }
}  // namespace

void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc) {
  use_threads_for(m, n, k);
  cblas_sgemm(CblasRowMajor, flag(transpose_a), flag(transpose_b), static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
          std::int64_t ldc) {
  use_threads_for(m, n, k);
  cblas_dgemm(CblasRowMajor, flag(transpose_a), flag(transpose_b), static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

const char* blas_config() { return openblas_get_config(); }

}  // namespace tapegrad::detail
