// General matrix multiply on row-major float32 matrices with leading
// dimensions: C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C.
// op(X) = X or Xᵀ. beta == 0 overwrites C (NaNs in C are not propagated).
// Runs multithreaded when called outside a parallel region, single-threaded
// inside one (so it can serve per-head blocks of a parallel loop).
#pragma once
#include <cstdint>

namespace cpuformer {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace cpuformer
