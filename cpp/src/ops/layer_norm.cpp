// LayerNorm over the last dimension: forward, backward and the row statistics
// they share. Dimension letters: N rows, C channels.
#include "cpuformer/ops/layer_norm.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace cpuformer {
namespace {

// Below this many elements a loop runs on the calling thread (forking costs more).
constexpr int64_t kMinParallelElems = 1 << 14;

// mean and rstd of one row x[C]: two passes in float (the second on x - mean,
// so a large common offset does not cancel), the vector lanes' partial sums
// keeping rounding error at O(C/lanes) ulp.
inline void row_stats(const float* x, int64_t C, float eps, float* mean, float* rstd) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t c = 0; c < C; ++c) sum += x[c];
  const float m = sum / static_cast<float>(C);
  float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
  for (int64_t c = 0; c < C; ++c) {
    const float d = x[c] - m;
    ss += d * d;
  }
  *mean = m;
  *rstd = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
}

// Forward on one row; kWeight/kBias select the affine terms at compile time
// so the inner loop stays branch-free.
template <bool kWeight, bool kBias>
inline void row_forward(float* y, const float* x, const float* weight, const float* bias, float m, float r,
                        int64_t C) {
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) {
    float v = (x[c] - m) * r;
    if (kWeight) v *= weight[c];
    if (kBias) v += bias[c];
    y[c] = v;
  }
}

template <bool kWeight, bool kBias>
void forward_rows(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                  int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelElems && N > 1)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = inp + n * C;  // [C]
    float m, r;
    row_stats(x, C, eps, &m, &r);
    if (mean) mean[n] = m;
    if (rstd) rstd[n] = r;
    row_forward<kWeight, kBias>(out + n * C, x, weight, bias, m, r, C);
  }
}

// Backward over rows [n0, n1). dw/db, when not null, are this block's private
// partial sums [C]; dinp may be null.
template <bool kWeight>
void backward_rows(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* weight,
                   const float* mean, const float* rstd, int64_t n0, int64_t n1, int64_t C) {
  const float invC = 1.0f / static_cast<float>(C);
  for (int64_t n = n0; n < n1; ++n) {
    const float* x = inp + n * C;    // [C]
    const float* dy = dout + n * C;  // [C]
    const float m = mean[n], r = rstd[n];
    // g = dy * weight; sums of g and g * xhat over the row.
    float sg = 0.0f, sgx = 0.0f;
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t c = 0; c < C; ++c) {
      const float xhat = (x[c] - m) * r;
      const float g = kWeight ? dy[c] * weight[c] : dy[c];
      sg += g;
      sgx += g * xhat;
    }
    if (dw) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) dw[c] += dy[c] * ((x[c] - m) * r);
    }
    if (db) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) db[c] += dy[c];
    }
    if (dinp) {
      const float mg = sg * invC, mgx = sgx * invC;
      float* dx = dinp + n * C;  // [C]
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const float xhat = (x[c] - m) * r;
        const float g = kWeight ? dy[c] * weight[c] : dy[c];
        dx[c] += r * (g - mg - xhat * mgx);
      }
    }
  }
}

template <bool kWeight>
void backward_impl(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                   const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C) {
  if (!dweight && !dbias) {
    // Rows are independent: one row per iteration.
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelElems && N > 1)
    for (int64_t n = 0; n < N; ++n)
      backward_rows<kWeight>(dinp, nullptr, nullptr, dout, inp, weight, mean, rstd, n, n + 1, C);
    return;
  }
  // dweight/dbias sum over rows. Rows are cut into blocks whose count depends
  // on N only (never on the thread count); each block sums into its own slice
  // of a scratch buffer, and the slices are then added in block order. So the
  // result is bitwise reproducible across thread counts.
  constexpr int64_t kMaxBlocks = 256, kMinRowsPerBlock = 8;
  const int64_t nblocks = std::max<int64_t>(1, std::min(kMaxBlocks, (N + kMinRowsPerBlock - 1) / kMinRowsPerBlock));
  const int64_t rows = (N + nblocks - 1) / nblocks;
  const int64_t nw = dweight ? C : 0, nb = dbias ? C : 0;
  std::vector<float> part(static_cast<size_t>(nblocks * (nw + nb)), 0.0f);  // [nblocks, nw + nb], once per call
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelElems && nblocks > 1)
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t n0 = b * rows, n1 = std::min(N, n0 + rows);
    if (n0 >= n1) continue;
    float* pw = dweight ? part.data() + b * (nw + nb) : nullptr;
    float* pb = dbias ? part.data() + b * (nw + nb) + nw : nullptr;
    backward_rows<kWeight>(dinp, pw, pb, dout, inp, weight, mean, rstd, n0, n1, C);
  }
  // Ordered reduction over blocks, parallel over channels.
  const int64_t stride = nw + nb;
#pragma omp parallel for schedule(static) if (nblocks * C >= kMinParallelElems)
  for (int64_t c = 0; c < C; ++c) {
    float sw = 0.0f, sb = 0.0f;
    for (int64_t b = 0; b < nblocks; ++b) {
      const float* p = part.data() + b * stride;
      if (dweight) sw += p[c];
      if (dbias) sb += p[nw + c];
    }
    if (dweight) dweight[c] += sw;
    if (dbias) dbias[c] += sb;
  }
}

}  // namespace

void layer_norm_stats(float* mean, float* rstd, const float* inp, int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelElems && N > 1)
  for (int64_t n = 0; n < N; ++n) row_stats(inp + n * C, C, eps, &mean[n], &rstd[n]);
}

void layer_norm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                        const float* bias, int64_t N, int64_t C, float eps) {
  if (N <= 0 || C <= 0) return;
  if (weight && bias)
    forward_rows<true, true>(out, mean, rstd, inp, weight, bias, N, C, eps);
  else if (weight)
    forward_rows<true, false>(out, mean, rstd, inp, weight, bias, N, C, eps);
  else if (bias)
    forward_rows<false, true>(out, mean, rstd, inp, weight, bias, N, C, eps);
  else
    forward_rows<false, false>(out, mean, rstd, inp, weight, bias, N, C, eps);
}

void layer_norm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                         const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C) {
  if (N <= 0 || C <= 0) return;
  if (weight)
    backward_impl<true>(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
  else
    backward_impl<false>(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

}  // namespace cpuformer
