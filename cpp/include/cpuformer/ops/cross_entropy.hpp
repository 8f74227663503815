// Cross-entropy fused with log-softmax, PyTorch semantics (reduction="mean").
#pragma once
#include <cstdint>

namespace cpuformer {

// logits[N,C], target[N]. Rows whose target == ignore_index are skipped; the
// rest must be in [0, C) (IndexError otherwise). With ε = label_smoothing:
//   loss_n = (1-ε)·(-log p[n,t_n]) + ε·mean_c(-log p[n,c])
// returns Σ loss_n / count (NaN when every row is ignored, like torch).
// Never materialises the probabilities.
float cross_entropy_forward(const float* logits, const int64_t* target, int64_t N, int64_t C, int64_t ignore_index,
                            float label_smoothing);

// dlogits[n,:] += dloss/count · (softmax(logits[n]) - (1-ε)·onehot(t_n) - ε/C); ignored rows get nothing.
// accumulate = false: dlogits is written instead (ignored rows with zeros), its old contents never read.
void cross_entropy_backward(float* dlogits, const float* logits, const int64_t* target, int64_t N, int64_t C,
                            int64_t ignore_index, float label_smoothing, float dloss = 1.0f, bool accumulate = true);

}  // namespace cpuformer
