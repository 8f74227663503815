// General matrix multiply on row-major float32 matrices with leading
// dimensions: C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C.
// op(X) = X or Xᵀ. beta == 0 overwrites C (NaNs in C are not propagated).
// Runs multithreaded when called outside a parallel region, single-threaded
// inside one (so it can serve per-head blocks of a parallel loop).
#pragma once
#include <cstdint>

#include "cpuformer/ops/activations.hpp"

namespace cpuformer {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// C[M,N] = act(op(A)[M,K] · op(B)[K,N] + bias[N]), bias broadcast over the
// rows (null: none); C is overwritten. The packed kernel adds the bias and
// applies the activation to each tile as it completes, so the output is
// written once instead of three times.
void gemm_bias_act(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                   const float* B, int64_t ldb, const float* bias, Activation act, float* C, int64_t ldc);

// Both: C = act(alpha · op(A) · op(B) + beta · C + bias[N]).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias, Activation act);

// The same product in bfloat16 (autocast, runtime/autocast.hpp): every
// element of op(A) and op(B) is rounded to bfloat16 (nearest even), the
// products are accumulated in float32, then C = act(alpha · Σ + beta · C +
// bias[N]) in float32 (beta == 0 overwrites C). Runs on the bf16 kernel
// runtime/cpu.hpp chose (AMX-BF16, AVX512-BF16); without one
// (bf16_products_native() false) the operands are rounded into float32
// copies for the float32 GEMM, faster than the AVX2 / plain bf16 kernels,
// which widen bf16 to float32 anyway. Summation order
// differs from gemm(), so results agree with a float64 product of the
// rounded operands to float32 accumulation error.
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias = nullptr,
               Activation act = Activation::None);

}  // namespace cpuformer
