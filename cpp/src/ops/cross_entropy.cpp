// Cross-entropy fused with log-softmax (PyTorch semantics, reduction "mean").
//   N rows, C classes.
// Per row, with m = max_c x_c and s = Σ_c exp(x_c - m):
//   -log p_t          = log s + (m - x_t)
//   mean_c(-log p_c)  = log s - mean_c(x_c - m)
//   loss_n            = (1-ε)·(-log p_t) + ε·mean_c(-log p_c)
// Written relative to m so logits of any magnitude stay exact to float
// rounding; row sums are accumulated in double over float blocks. The row
// math is cross_entropy_impl.hpp, compiled per instruction set
// (vector_kernels.hpp); the checks are here.
#include "cpuformer/ops/cross_entropy.hpp"

#include <algorithm>
#include <cmath>

#include "cpuformer/error.hpp"
#include "vector_kernels.hpp"

namespace cpuformer {

namespace {

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

}  // namespace

float cross_entropy_forward(const float* logits, const int64_t* target, int64_t N, int64_t C, int64_t ignore_index,
                            float label_smoothing) {
  // logits [N,C], target [N]
  check_smoothing(label_smoothing, "cross_entropy");
  const int64_t count = check_targets(target, N, C, ignore_index, "cross_entropy");
  if (count == 0) return std::nanf("");  // mean over zero rows, like torch
  const double total = detail::vector_kernels().cross_entropy_sum(logits, target, N, C, ignore_index, label_smoothing);
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
  detail::vector_kernels().cross_entropy_grad(dlogits, logits, target, N, C, ignore_index, label_smoothing, scale,
                                              accumulate);
}

}  // namespace cpuformer
