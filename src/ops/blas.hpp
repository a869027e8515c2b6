#pragma once
// Internal: the one door to CBLAS. OpenBLAS's <cblas.h> clashes with
// xtensor-blas headers in one translation unit, so only blas.cpp sees it.
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

// "OpenBLAS ..." when the library linked is OpenBLAS.
const char* blas_config();

}  // namespace tapegrad::detail
