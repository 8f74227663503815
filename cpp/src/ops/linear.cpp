#include "cpuformer/ops/linear.hpp"
#include "cpuformer/runtime/threads.hpp"

#include "cpuformer/ops/gemm.hpp"

namespace cpuformer {
namespace {
// C = alpha · op(A) · op(B) + beta · C in the given precision.
void product(DType dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
             int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (dtype == DType::BFloat16)
    gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
}  // namespace

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t I,
                    int64_t O, Activation act, DType dtype) {
  // out[N,O] = act(inp[N,I] · weight[O,I]ᵀ + bias)
  if (dtype == DType::BFloat16) {
    gemm_bf16(false, true, N, O, I, 1.0f, inp, I, weight, I, 0.0f, out, O, bias, act);
    return;
  }
  gemm_bias_act(false, true, N, O, I, inp, I, weight, I, bias, act, out, O);
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t I, int64_t O, DType dtype, bool accumulate_dinp) {
  // dinp[N,I] += dout[N,O] · weight[O,I]
  if (dinp) product(dtype, false, false, N, I, O, 1.0f, dout, O, weight, I, accumulate_dinp ? 1.0f : 0.0f, dinp, I);
  // dweight[O,I] += dout[N,O]ᵀ · inp[N,I]
  if (dweight) product(dtype, true, false, O, I, N, 1.0f, dout, O, inp, I, 1.0f, dweight, I);
  if (dbias) {
    // Each thread owns a slice of columns and walks the rows in order, so the
    // inner loop is contiguous and the sum order is fixed.
    constexpr int64_t kCols = 64;
#pragma omp parallel for schedule(static) if (N * O >= kParallelMinWork)
    for (int64_t o0 = 0; o0 < O; o0 += kCols) {
      const int64_t o1 = o0 + kCols < O ? o0 + kCols : O;
      float acc[kCols] = {};
      for (int64_t n = 0; n < N; ++n) {
        const float* row = dout + n * O;
        for (int64_t o = o0; o < o1; ++o) acc[o - o0] += row[o];
      }
      for (int64_t o = o0; o < o1; ++o) dbias[o] += acc[o - o0];
    }
  }
}

}  // namespace cpuformer
