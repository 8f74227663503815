// Linformer's projection along the sequence; contract in linear_attention.hpp.
//
// Both directions run as one parallel loop of independent single-threaded
// GEMM tiles (batch x column block, or row block x position block for de):
// a few large GEMMs with a long inner dimension would otherwise synchronise
// the threads once per panel. de sums the batches inside each tile, in order.
#include "cpuformer/ops/linear_attention.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpuformer/ops/gemm.hpp"

namespace cpuformer {

namespace {
constexpr int64_t kLinCols = 64, kLinRows = 32, kLinPos = 512;

// x with padded rows zeroed ([B, T, C] contiguous), or x itself.
const float* masked_rows(const float* x, int64_t ldx, int64_t B, int64_t T, int64_t C, const uint8_t* padding,
                         std::vector<float>& buf, int64_t* ld) {
  *ld = ldx;
  if (!padding) return x;
  buf.resize(static_cast<size_t>(B * T * C));
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < B * T; ++bt)
    for (int64_t c = 0; c < C; ++c) buf[bt * C + c] = padding[bt] ? 0.0f : x[bt * ldx + c];
  *ld = C;
  return buf.data();
}
}  // namespace

void linformer_project_forward(float* y, const float* x, int64_t ldx, const float* e, int64_t ld_e, int64_t B,
                               int64_t T, int64_t K, int64_t C, const uint8_t* padding) {
  std::vector<float> buf;
  int64_t ld;
  const float* xm = masked_rows(x, ldx, B, T, C, padding, buf, &ld);
  const int64_t ncb = (C + kLinCols - 1) / kLinCols;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < B * ncb; ++t) {
    const int64_t b = t / ncb, c0 = t % ncb * kLinCols, nc = std::min(kLinCols, C - c0);
    gemm(false, false, K, nc, T, 1.0f, e, ld_e, xm + b * T * ld + c0, ld, 0.0f, y + b * K * C + c0, C);
  }
}

void linformer_project_backward(float* dx, int64_t lddx, float* de, const float* dy, const float* x, int64_t ldx,
                                const float* e, int64_t ld_e, int64_t B, int64_t T, int64_t K, int64_t C,
                                const uint8_t* padding) {
  if (de) {  // de[r, t] += Σ_b dy_b[r, :] · x_b[t, :]
    std::vector<float> buf;
    int64_t ld;
    const float* xm = masked_rows(x, ldx, B, T, C, padding, buf, &ld);
    const int64_t nrb = (K + kLinRows - 1) / kLinRows, npb = (T + kLinPos - 1) / kLinPos;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < nrb * npb; ++t) {
      const int64_t r0 = t / npb * kLinRows, nr = std::min(kLinRows, K - r0);
      const int64_t p0 = t % npb * kLinPos, np = std::min(kLinPos, T - p0);
      for (int64_t b = 0; b < B; ++b)
        gemm(false, true, nr, np, C, 1.0f, dy + (b * K + r0) * C, C, xm + (b * T + p0) * ld, ld, 1.0f,
             de + r0 * ld_e + p0, ld_e);
    }
  }
  if (!dx) return;
  // dx_b[t, :] += Σ_r e[r, t] dy_b[r, :], padded rows excepted
  const int64_t ncb = (C + kLinCols - 1) / kLinCols;
#pragma omp parallel
  {
    std::vector<float> tmp(padding ? static_cast<size_t>(T * kLinCols) : 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < B * ncb; ++t) {
      const int64_t b = t / ncb, c0 = t % ncb * kLinCols, nc = std::min(kLinCols, C - c0);
      float* dxb = dx + b * T * lddx + c0;
      if (!padding) {
        gemm(true, false, T, nc, K, 1.0f, e, ld_e, dy + b * K * C + c0, C, 1.0f, dxb, lddx);
        continue;
      }
      gemm(true, false, T, nc, K, 1.0f, e, ld_e, dy + b * K * C + c0, C, 0.0f, tmp.data(), kLinCols);
      for (int64_t i = 0; i < T; ++i)
        if (!padding[b * T + i])
          for (int64_t c = 0; c < nc; ++c) dxb[i * lddx + c] += tmp[i * kLinCols + c];
    }
  }
}

}  // namespace cpuformer
