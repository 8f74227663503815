// Private: the AVX-512 / AVX2+FMA kernel for skinny products behind
// ops/gemm.hpp (see gemv.cpp).
#pragma once
#include <cstdint>

#include "cpuformer/ops/activations.hpp"

namespace cpuformer {
namespace detail {

// True when gemm_kernel() (runtime/cpu.hpp) chose a packed kernel for this
// process, which comes with this one (AVX-512F, or AVX2 and FMA).
bool gemv_available();

// C[M,N] = alpha · A[M,K] · B[N,K]ᵀ + beta · C for a few rows of A (any M
// works; it is meant for M < 4, where B, usually a weight matrix, is streamed
// from memory once per group of 4 rows). `nthreads` >= 1 threads split the
// columns of C; every element is one thread's fixed-order sum, so the result
// does not depend on the thread count. beta == 0 overwrites C. Then bias[N]
// (or null) is added to every row and `act` applied, as in gemm_bias_act.
void gemv_nt(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
             float beta, float* C, int64_t ldc, int nthreads, const float* bias = nullptr,
             Activation act = Activation::None);

#if defined(CPUFORMER_GEMM_DISPATCH)
// The same for one instruction set (kernels_avx2.cpp, kernels_avx512.cpp); only
// for a CPU that supports it.
void gemv_nt_avx2(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                  int64_t ldb, float beta, float* C, int64_t ldc, int nthreads, const float* bias, Activation act);
void gemv_nt_avx512(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                    int64_t ldb, float beta, float* C, int64_t ldc, int nthreads, const float* bias, Activation act);
#endif

}  // namespace detail
}  // namespace cpuformer
