#pragma once
// Internal: the one door to CBLAS. OpenBLAS's <cblas.h> clashes with
// xtensor-blas headers in one translation unit, so only blas.cpp sees it.
#include <algorithm>
#include <cstdint>

namespace tapegrad::detail {

// C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C, row-major, where op
// transposes when the flag is set. lda/ldb are the row strides of A and B
// as stored.
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc);
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
          std::int64_t ldc);

// C = op(A)·op(B) + beta·C for any extents: an empty C is left alone, and
// k = 0 (which BLAS rejects) leaves beta·C, 0 for beta = 0.
template <class T>
void gemm_checked(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t lda,
                  const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0 ? T(0) : beta * c[i * ldc + j];
    return;
  }
  gemm(ta, tb, m, n, k, T(1), a, std::max<std::int64_t>(lda, 1), b, std::max<std::int64_t>(ldb, 1), beta, c,
       std::max<std::int64_t>(ldc, 1));
}

// "OpenBLAS ..." when the library linked is OpenBLAS.
const char* blas_config();

}  // namespace tapegrad::detail
