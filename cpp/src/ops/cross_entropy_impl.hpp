// Private: the cross-entropy row math (vector_kernels.hpp), compiled once per
// instruction set; cross_entropy.cpp validates the targets and the smoothing
// and holds the formulas' derivation. Row sums are accumulated in double over
// vectorised float blocks.
#pragma once
#include <Eigen/Core>
#include <cmath>
#include <cstdint>

#include "isa_dispatch.hpp"

namespace cpuformer {
namespace detail {
namespace {  // internal linkage: one copy per instruction-set object (isa_dispatch.hpp)
namespace vk {

using RowMap = Eigen::Map<const Eigen::ArrayXf>;
using RowMapMut = Eigen::Map<Eigen::ArrayXf>;

// Vectorised float blocks, each block summed into a double.
constexpr int64_t kCeBlock = 512;
// Rows per reduction chunk: fixed, so the loss is bitwise identical for any thread count.
constexpr int64_t kCeRowsPerChunk = 16;
// Below this many logits a parallel region costs more than it saves.
constexpr int64_t kCeParallelMin = 1 << 14;

// m = max_c x_c, returns log Σ_c exp(x_c - m) (NaN/Inf propagate).
double log_sum_exp_shifted(const float* x, int64_t C, float* m_out) {
  const float m = RowMap(x, C).maxCoeff();
  double s = 0.0;
  for (int64_t c0 = 0; c0 < C; c0 += kCeBlock) {
    const int64_t len = c0 + kCeBlock < C ? kCeBlock : C - c0;
    s += static_cast<double>((RowMap(x + c0, len) - m).exp().sum());
  }
  *m_out = m;
  return std::log(s);
}

// Σ_c (x_c - m) in double over float blocks.
double sum_shifted(const float* x, int64_t C, float m) {
  double s = 0.0;
  for (int64_t c0 = 0; c0 < C; c0 += kCeBlock) {
    const int64_t len = c0 + kCeBlock < C ? kCeBlock : C - c0;
    s += static_cast<double>((RowMap(x + c0, len) - m).sum());
  }
  return s;
}

// Σ over the rows whose target is not ignore_index of the smoothed loss
// (cross_entropy.cpp); targets already validated.
double cross_entropy_sum(const float* logits, const int64_t* target, int64_t N, int64_t C, int64_t ignore_index,
                         float label_smoothing) {
  // logits [N,C], target [N]
  const double eps = label_smoothing;
  const int64_t chunks = (N + kCeRowsPerChunk - 1) / kCeRowsPerChunk;
  LocalVector<double> partial(static_cast<size_t>(chunks), 0.0);  // [chunks]
#pragma omp parallel for schedule(static) if (N * C >= kCeParallelMin)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t n1 = (k + 1) * kCeRowsPerChunk < N ? (k + 1) * kCeRowsPerChunk : N;
    double acc = 0.0;
    for (int64_t n = k * kCeRowsPerChunk; n < n1; ++n) {
      const int64_t t = target[n];
      if (t == ignore_index) continue;
      const float* x = logits + n * C;
      float m;
      const double lse = log_sum_exp_shifted(x, C, &m);
      double loss = lse + (static_cast<double>(m) - x[t]);  // -log p_t
      if (eps > 0.0) loss = (1.0 - eps) * loss + eps * (lse - sum_shifted(x, C, m) / static_cast<double>(C));
      acc += loss;
    }
    partial[static_cast<size_t>(k)] = acc;
  }
  double total = 0.0;
  for (int64_t k = 0; k < chunks; ++k) total += partial[static_cast<size_t>(k)];
  return total;
}

// dlogits [N,C] (accumulated, or written) = scale · (p - ε/C - (1-ε)·onehot(t))
// per row, 0 for ignored rows; targets already validated, count >= 1 rows
// not ignored.
void cross_entropy_grad(float* dlogits, const float* logits, const int64_t* target, int64_t N, int64_t C,
                        int64_t ignore_index, float label_smoothing, float scale, bool accumulate) {
  const float smooth = static_cast<float>(static_cast<double>(label_smoothing) / static_cast<double>(C));
  const float hit = scale * (1.0f - label_smoothing);
#pragma omp parallel for schedule(static) if (N * C >= kCeParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = target[n];
    if (t == ignore_index) {
      if (!accumulate) RowMapMut(dlogits + n * C, C).setZero();
      continue;
    }
    const float* x = logits + n * C;
    float m;
    const float lse = static_cast<float>(log_sum_exp_shifted(x, C, &m));
    // d[c] += scale · (p_c - ε/C), p_c = exp((x_c - m) - log s)
    if (accumulate)
      RowMapMut(dlogits + n * C, C) += scale * (((RowMap(x, C) - m) - lse).exp() - smooth);
    else
      RowMapMut(dlogits + n * C, C) = scale * (((RowMap(x, C) - m) - lse).exp() - smooth);
    dlogits[n * C + t] -= hit;
  }
}

}  // namespace vk
}  // namespace
}  // namespace detail
}  // namespace cpuformer
