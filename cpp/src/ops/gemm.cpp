#include "cpuformer/ops/gemm.hpp"

#include <Eigen/Core>

#include "gemm_packed.hpp"
#include "gemv.hpp"
#include "cpuformer/runtime/threads.hpp"

namespace cpuformer {
namespace {
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;
using CMap = Eigen::Map<const RowMat, Eigen::Unaligned, Stride>;
using MMap = Eigen::Map<RowMat, Eigen::Unaligned, Stride>;

template <class AX, class BX>
void run(MMap& c, const AX& a, const BX& b, float alpha, float beta) {
  if (beta == 0.0f) {
    if (alpha == 1.0f)
      c.noalias() = a * b;
    else
      c.noalias() = alpha * (a * b);
  } else {
    if (beta != 1.0f) c *= beta;
    if (alpha == 1.0f)
      c.noalias() += a * b;
    else
      c.noalias() += alpha * (a * b);
  }
}

// C = act(alpha · op(A) · op(B) + beta · C + bias): the one dispatcher behind
// gemm and gemm_bias_act.
void gemm_impl(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias, Activation act) {
  if (M == 0 || N == 0) return;
  // The packed kernel wins once a tile's worth of rows and columns exists.
  if (detail::packed_gemm_available() && M >= 4 && N >= 16 && K >= 8) {
    detail::packed_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, call_threads(), bias, act);
    return;
  }
  // A few rows times a weight matrix stored [N, K] (a Linear while decoding):
  // streaming the weights is the cost, and the skinny kernel shares it
  // between threads.
  if (detail::gemv_available() && !trans_a && trans_b && N >= 16 && K >= 16) {
    detail::gemv_nt(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, call_threads(), bias, act);
    return;
  }
  // Other shapes: Eigen, then the epilogue as a separate pass.
  MMap c(C, M, N, Stride(ldc));
  if (K == 0) {
    if (beta == 0.0f)
      c.setZero();
    else
      c *= beta;
  } else {
    // A is stored [M,K] (or [K,M] when transposed), B [K,N] (or [N,K]).
    CMap a(A, trans_a ? K : M, trans_a ? M : K, Stride(lda));
    CMap b(B, trans_b ? N : K, trans_b ? K : N, Stride(ldb));
    if (!trans_a && !trans_b) run(c, a, b, alpha, beta);
    else if (!trans_a && trans_b) run(c, a, b.transpose(), alpha, beta);
    else if (trans_a && !trans_b) run(c, a.transpose(), b, alpha, beta);
    else run(c, a.transpose(), b.transpose(), alpha, beta);
  }
  if (bias || act != Activation::None) {
#pragma omp parallel for schedule(static) if (M * N >= kParallelMinWork)
    for (int64_t m = 0; m < M; ++m) {
      float* row = C + m * ldc;
      if (bias)
        for (int64_t n = 0; n < N; ++n) row[n] += bias[n];
      activation_inplace(row, N, act);
    }
  }
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr, Activation::None);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias, Activation act) {
  gemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, act);
}

void gemm_bias_act(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                   const float* B, int64_t ldb, const float* bias, Activation act, float* C, int64_t ldc) {
  gemm_impl(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc, bias, act);
}

}  // namespace cpuformer
