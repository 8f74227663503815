// Private: the softmax body (vector_kernels.hpp), compiled once per instruction set.
//
// Softmax along the middle axis of [outer, dim, inner]. exp is vmath::exp_f
// (vectorised, <= 2 ulp).
//   inner == 1: one contiguous row of `dim` per task;
//   inner  > 1: a task owns a strip of up to kStrip contiguous inner positions
//               of one outer index and walks dim, so every inner loop runs
//               over contiguous memory (no transposes).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cpuformer/ops/vec_math.hpp"

namespace cpuformer {
namespace detail {
namespace {  // internal linkage: one copy per instruction-set object (isa_dispatch.hpp)
namespace vk {

constexpr int64_t kSoftmaxMinParallel = 1 << 14;
constexpr int64_t kStrip = 64;

// Row reductions use kLanes explicit partial accumulators: the summation
// order (and so the result, to the bit) does not depend on which ISA the
// compiler vectorises for, the error grows with n/kLanes rather than n, and
// `omp simd reduction(max)` compiled to a loop several times slower.
constexpr int kLanes = 16;

// max over x[n] (NaN entries are skipped: they make the row NaN later anyway).
inline float row_max(const float* x, int64_t n) {
  float acc[kLanes];
  for (int l = 0; l < kLanes; ++l) acc[l] = -std::numeric_limits<float>::infinity();
  int64_t d = 0;
  for (; d + kLanes <= n; d += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] = acc[l] < x[d + l] ? x[d + l] : acc[l];
  float mx = -std::numeric_limits<float>::infinity();
  for (; d < n; ++d) mx = mx < x[d] ? x[d] : mx;
  for (int l = 0; l < kLanes; ++l) mx = mx < acc[l] ? acc[l] : mx;
  return mx;
}

// y[d] = exp(x[d] - mx); returns Σ_d y[d].
inline float exp_shift_sum(float* y, const float* x, int64_t n, float mx) {
  float acc[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= n; d += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float e = vmath::exp_f(x[d + l] - mx);
      y[d + l] = e;
      acc[l] += e;
    }
  float sum = 0.0f;
  for (; d < n; ++d) {
    const float e = vmath::exp_f(x[d] - mx);
    y[d] = e;
    sum += e;
  }
  for (int l = 0; l < kLanes; ++l) sum += acc[l];
  return sum;
}

// Σ_d a[d]·b[d]
inline float row_dot(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= n; d += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += a[d + l] * b[d + l];
  float sum = 0.0f;
  for (; d < n; ++d) sum += a[d] * b[d];
  for (int l = 0; l < kLanes; ++l) sum += acc[l];
  return sum;
}

void softmax_forward(float* out, const float* inp, int64_t outer, int64_t dim, int64_t inner) {
  if (outer <= 0 || dim <= 0 || inner <= 0) return;
  const bool par = outer * dim * inner >= kSoftmaxMinParallel;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (par && outer > 1)
    for (int64_t o = 0; o < outer; ++o) {
      const float* x = inp + o * dim;  // [dim]
      float* y = out + o * dim;        // [dim]
      const float mx = row_max(x, dim);
      const float inv = 1.0f / exp_shift_sum(y, x, dim, mx);
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) y[d] *= inv;
    }
    return;
  }
  const int64_t strips = (inner + kStrip - 1) / kStrip;
#pragma omp parallel for schedule(static) if (par && outer * strips > 1)
  for (int64_t task = 0; task < outer * strips; ++task) {
    const int64_t o = task / strips, j0 = task % strips * kStrip;
    const int64_t w = std::min(kStrip, inner - j0);
    const float* x = inp + o * dim * inner + j0;  // x[d * inner + j], j < w
    float* y = out + o * dim * inner + j0;
    float mx[kStrip], sum[kStrip];
    for (int64_t j = 0; j < w; ++j) {
      mx[j] = -std::numeric_limits<float>::infinity();
      sum[j] = 0.0f;
    }
    for (int64_t d = 0; d < dim; ++d) {
      const float* xr = x + d * inner;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) mx[j] = std::max(mx[j], xr[j]);
    }
    for (int64_t d = 0; d < dim; ++d) {
      const float* xr = x + d * inner;
      float* yr = y + d * inner;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) {
        const float e = vmath::exp_f(xr[j] - mx[j]);
        yr[j] = e;
        sum[j] += e;
      }
    }
    for (int64_t j = 0; j < w; ++j) sum[j] = 1.0f / sum[j];
    for (int64_t d = 0; d < dim; ++d) {
      float* yr = y + d * inner;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) yr[j] *= sum[j];
    }
  }
}

void softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int64_t dim, int64_t inner) {
  if (outer <= 0 || dim <= 0 || inner <= 0) return;
  const bool par = outer * dim * inner >= kSoftmaxMinParallel;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (par && outer > 1)
    for (int64_t o = 0; o < outer; ++o) {
      const float* dy = dout + o * dim;  // [dim]
      const float* y = out + o * dim;    // [dim]
      float* dx = dinp + o * dim;        // [dim]
      const float s = row_dot(dy, y, dim);
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) dx[d] += y[d] * (dy[d] - s);
    }
    return;
  }
  const int64_t strips = (inner + kStrip - 1) / kStrip;
#pragma omp parallel for schedule(static) if (par && outer * strips > 1)
  for (int64_t task = 0; task < outer * strips; ++task) {
    const int64_t o = task / strips, j0 = task % strips * kStrip;
    const int64_t w = std::min(kStrip, inner - j0);
    const int64_t base = o * dim * inner + j0;  // element (o, d, j0 + j) at base + d * inner + j
    float s[kStrip];
    for (int64_t j = 0; j < w; ++j) s[j] = 0.0f;
    for (int64_t d = 0; d < dim; ++d) {
      const float* dy = dout + base + d * inner;
      const float* y = out + base + d * inner;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) s[j] += dy[j] * y[j];
    }
    for (int64_t d = 0; d < dim; ++d) {
      const float* dy = dout + base + d * inner;
      const float* y = out + base + d * inner;
      float* dx = dinp + base + d * inner;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) dx[j] += y[j] * (dy[j] - s[j]);
    }
  }
}

}  // namespace vk
}  // namespace
}  // namespace detail
}  // namespace cpuformer
