#include "cpuformer/ops/linear.hpp"
#include "cpuformer/runtime/threads.hpp"

#include "cpuformer/ops/gemm.hpp"

namespace cpuformer {

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t I,
                    int64_t O, Activation act) {
  // out[N,O] = act(inp[N,I] · weight[O,I]ᵀ + bias)
  gemm_bias_act(false, true, N, O, I, inp, I, weight, I, bias, act, out, O);
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t I, int64_t O) {
  // dinp[N,I] += dout[N,O] · weight[O,I]
  if (dinp) gemm(false, false, N, I, O, 1.0f, dout, O, weight, I, 1.0f, dinp, I);
  // dweight[O,I] += dout[N,O]ᵀ · inp[N,I]
  if (dweight) gemm(true, false, O, I, N, 1.0f, dout, O, inp, I, 1.0f, dweight, I);
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
