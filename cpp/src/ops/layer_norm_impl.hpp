// Private: the LayerNorm body (vector_kernels.hpp), compiled once per instruction set.
//
// LayerNorm over the last dimension: forward, backward and the row statistics
// they share. Dimension letters: N rows, C channels.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "isa_dispatch.hpp"

namespace cpuformer {
namespace detail {
namespace {  // internal linkage: one copy per instruction-set object (isa_dispatch.hpp)
namespace vk {

// Below this many elements a loop runs on the calling thread (forking costs more).
constexpr int64_t kMinParallelElems = 1 << 14;

// Statistics of one row x[C] by the corrected two-pass algorithm: m = Σx/C
// in float, then d = x - m (exact when x is near m) and the residual mean
// c = Σd/C, which recovers what rounding m to a float lost; var = Σd²/C - c².
// With a large common offset (x ~ 1000 ± 0.01) this keeps x̂ accurate to
// ~1e-7 where plain float two-pass (and torch) lose ~1e-3. The vector lanes'
// partial sums keep summation error at O(C/lanes) ulp.
struct RowStats {
  float m, c, rstd;  // mean = m + c
};

inline RowStats row_stats(const float* x, int64_t C, float eps) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < C; ++i) sum += x[i];
  const float m = sum / static_cast<float>(C);
  float sd = 0.0f, ss = 0.0f;
#pragma omp simd reduction(+ : sd, ss)
  for (int64_t i = 0; i < C; ++i) {
    const float d = x[i] - m;
    sd += d;
    ss += d * d;
  }
  const float c = sd / static_cast<float>(C);
  const float var = std::max(ss / static_cast<float>(C) - c * c, 0.0f);
  return {m, c, 1.0f / std::sqrt(var + eps)};
}

// Forward on one row; kWeight/kBias select the affine terms at compile time
// so the inner loop stays branch-free.
template <bool kWeight, bool kBias>
inline void row_forward(float* y, const float* x, const float* weight, const float* bias, RowStats st, int64_t C) {
#pragma omp simd
  for (int64_t i = 0; i < C; ++i) {
    float v = ((x[i] - st.m) - st.c) * st.rstd;
    if (kWeight) v *= weight[i];
    if (kBias) v += bias[i];
    y[i] = v;
  }
}

template <bool kWeight, bool kBias>
void forward_rows(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                  int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelElems && N > 1)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = inp + n * C;  // [C]
    const RowStats st = row_stats(x, C, eps);
    if (mean) mean[n] = st.m + st.c;
    if (rstd) rstd[n] = st.rstd;
    row_forward<kWeight, kBias>(out + n * C, x, weight, bias, st, C);
  }
}

// Backward over rows [n0, n1). dw/db, when not null, are this block's private
// partial sums [C]; dinp may be null. x̂ = (d - c)·rstd with d = x - mean and
// c = Σd/C, the same residual correction as in row_stats (mean is stored as a
// float, so its rounding is recovered here rather than stored).
template <bool kWeight>
void backward_rows(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* weight,
                   const float* mean, const float* rstd, int64_t n0, int64_t n1, int64_t C) {
  const float invC = 1.0f / static_cast<float>(C);
  for (int64_t n = n0; n < n1; ++n) {
    const float* x = inp + n * C;    // [C]
    const float* dy = dout + n * C;  // [C]
    const float m = mean[n], r = rstd[n];
    // g = dy·weight; Σg, Σg·d and Σd over the row.
    float sg = 0.0f, sgd = 0.0f, sd = 0.0f;
#pragma omp simd reduction(+ : sg, sgd, sd)
    for (int64_t i = 0; i < C; ++i) {
      const float d = x[i] - m;
      const float g = kWeight ? dy[i] * weight[i] : dy[i];
      sg += g;
      sgd += g * d;
      sd += d;
    }
    const float c = sd * invC;
    const float mg = sg * invC;                   // mean(g)
    const float mgx = (sgd - c * sg) * r * invC;  // mean(g·x̂)
    if (dw) {
#pragma omp simd
      for (int64_t i = 0; i < C; ++i) dw[i] += dy[i] * (((x[i] - m) - c) * r);
    }
    if (db) {
#pragma omp simd
      for (int64_t i = 0; i < C; ++i) db[i] += dy[i];
    }
    if (dinp) {
      float* dx = dinp + n * C;  // [C]
#pragma omp simd
      for (int64_t i = 0; i < C; ++i) {
        const float xhat = ((x[i] - m) - c) * r;
        const float g = kWeight ? dy[i] * weight[i] : dy[i];
        dx[i] += r * (g - mg - xhat * mgx);
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
  LocalVector<float> part(static_cast<size_t>(nblocks * (nw + nb)), 0.0f);  // [nblocks, nw + nb], once per call
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

void layer_norm_stats(float* mean, float* rstd, const float* inp, int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelElems && N > 1)
  for (int64_t n = 0; n < N; ++n) {
    const RowStats st = row_stats(inp + n * C, C, eps);
    mean[n] = st.m + st.c;
    rstd[n] = st.rstd;
  }
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

template <bool kWeight, bool kBias>
void add_forward_rows(float* out, float* sum, const float* a, const float* b, const float* weight, const float* bias,
                      int64_t N, int64_t C, float eps) {
  // Split from fewer elements than the other loops here: on the small-call
  // path the rows come from products whose threads split them the same way
  // (static schedule, rows in order), so each thread finds its rows in its
  // own cache.
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelElems / 4 && N > 1)
  for (int64_t n = 0; n < N; ++n) {
    float* s = (sum ? sum : out) + n * C;  // [C]
    const float* x = a + n * C;
    const float* y = b + n * C;
#pragma omp simd
    for (int64_t i = 0; i < C; ++i) s[i] = x[i] + y[i];
    row_forward<kWeight, kBias>(out + n * C, s, weight, bias, row_stats(s, C, eps), C);
  }
}

void add_layer_norm_forward(float* out, float* sum, const float* a, const float* b, const float* weight,
                            const float* bias, int64_t N, int64_t C, float eps) {
  if (N <= 0 || C <= 0) return;
  if (weight && bias)
    add_forward_rows<true, true>(out, sum, a, b, weight, bias, N, C, eps);
  else if (weight)
    add_forward_rows<true, false>(out, sum, a, b, weight, bias, N, C, eps);
  else if (bias)
    add_forward_rows<false, true>(out, sum, a, b, weight, bias, N, C, eps);
  else
    add_forward_rows<false, false>(out, sum, a, b, weight, bias, N, C, eps);
}

void layer_norm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                         const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C) {
  if (N <= 0 || C <= 0) return;
  if (weight)
    backward_impl<true>(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
  else
    backward_impl<false>(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

}  // namespace vk
}  // namespace
}  // namespace detail
}  // namespace cpuformer
