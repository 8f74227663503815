// Cross-entropy fused with log-softmax (PyTorch semantics, reduction "mean").
//   N rows, C classes.
// Per row, with m = max_c x_c and s = Σ_c exp(x_c - m):
//   -log p_t          = log s + (m - x_t)
//   mean_c(-log p_c)  = log s - mean_c(x_c - m)
//   loss_n            = (1-ε)·(-log p_t) + ε·mean_c(-log p_c)
// Written relative to m so logits of any magnitude stay exact to float
// rounding; row sums are accumulated in double over float blocks.
#include "cpuformer/ops/cross_entropy.hpp"

#include <Eigen/Core>
#include <cmath>
#include <vector>

#include "cpuformer/error.hpp"

namespace cpuformer {

namespace {

using RowMap = Eigen::Map<const Eigen::ArrayXf>;
using RowMapMut = Eigen::Map<Eigen::ArrayXf>;

// Vectorised float blocks, each block summed into a double.
constexpr int64_t kBlock = 512;
// Rows per reduction chunk: fixed, so the loss is bitwise identical for any thread count.
constexpr int64_t kRowsPerChunk = 16;
// Below this many logits a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 14;

// Validates every target; returns how many rows are not ignored.
int64_t check_targets(const int64_t* target, int64_t N, int64_t C, int64_t ignore_index, const char* what) {
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = target[n];
    if (t == ignore_index) continue;
    if (t < 0 || t >= C)
      throw IndexError(str_cat(what, ": target ", t, " at row ", n, " is out of range [0, ", C,
                               ") (and is not ignore_index = ", ignore_index, ")"));
    ++count;
  }
  return count;
}

void check_smoothing(float label_smoothing, const char* what) {
  CF_CHECK_VALUE(label_smoothing >= 0.0f && label_smoothing <= 1.0f, what,
                 ": label_smoothing must be in [0, 1], got ", label_smoothing);
}

// m = max_c x_c, returns log Σ_c exp(x_c - m) (NaN/Inf propagate).
double log_sum_exp_shifted(const float* x, int64_t C, float* m_out) {
  const float m = RowMap(x, C).maxCoeff();
  double s = 0.0;
  for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
    const int64_t len = c0 + kBlock < C ? kBlock : C - c0;
    s += static_cast<double>((RowMap(x + c0, len) - m).exp().sum());
  }
  *m_out = m;
  return std::log(s);
}

// Σ_c (x_c - m) in double over float blocks.
double sum_shifted(const float* x, int64_t C, float m) {
  double s = 0.0;
  for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
    const int64_t len = c0 + kBlock < C ? kBlock : C - c0;
    s += static_cast<double>((RowMap(x + c0, len) - m).sum());
  }
  return s;
}

}  // namespace

float cross_entropy_forward(const float* logits, const int64_t* target, int64_t N, int64_t C, int64_t ignore_index,
                            float label_smoothing) {
  // logits [N,C], target [N]
  check_smoothing(label_smoothing, "cross_entropy");
  const int64_t count = check_targets(target, N, C, ignore_index, "cross_entropy");
  if (count == 0) return std::nanf("");  // mean over zero rows, like torch
  const double eps = label_smoothing;
  const int64_t chunks = (N + kRowsPerChunk - 1) / kRowsPerChunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);  // [chunks]
#pragma omp parallel for schedule(static) if (N * C >= kParallelMin)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t n1 = (k + 1) * kRowsPerChunk < N ? (k + 1) * kRowsPerChunk : N;
    double acc = 0.0;
    for (int64_t n = k * kRowsPerChunk; n < n1; ++n) {
      const int64_t t = target[n];
      if (t == ignore_index) continue;
      const float* x = logits + n * C;
      float m;
      const double lse = log_sum_exp_shifted(x, C, &m);
      double loss = lse + (static_cast<double>(m) - x[t]);  // -log p_t
      if (eps > 0.0) loss = (1.0 - eps) * loss + eps * (lse - sum_shifted(x, C, m) / static_cast<double>(C));
      acc += loss;
    }
    partial[k] = acc;
  }
  double total = 0.0;
  for (int64_t k = 0; k < chunks; ++k) total += partial[k];
  return static_cast<float>(total / static_cast<double>(count));
}

void cross_entropy_backward(float* dlogits, const float* logits, const int64_t* target, int64_t N, int64_t C,
                            int64_t ignore_index, float label_smoothing, float dloss, bool accumulate) {
  // dlogits [N,C] (accumulated, or written), logits [N,C], target [N]
  check_smoothing(label_smoothing, "cross_entropy_backward");
  const int64_t count = check_targets(target, N, C, ignore_index, "cross_entropy_backward");
  if (!dlogits) return;
  if (count == 0) {
    if (!accumulate) std::fill(dlogits, dlogits + N * C, 0.0f);
    return;
  }
  const float scale = static_cast<float>(static_cast<double>(dloss) / static_cast<double>(count));
  const float smooth = static_cast<float>(static_cast<double>(label_smoothing) / static_cast<double>(C));
  const float hit = scale * (1.0f - label_smoothing);
#pragma omp parallel for schedule(static) if (N * C >= kParallelMin)
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

}  // namespace cpuformer
