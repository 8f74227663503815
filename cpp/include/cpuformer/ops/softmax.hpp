// Softmax along the middle axis of a [outer, dim, inner] array (inner = 1 for
// the last axis). Numerically stable (max subtracted).
#pragma once
#include <cstdint>

namespace cpuformer {

// out = exp(x - max) / Σ exp(x - max) along dim; out and inp may alias.
void softmax_forward(float* out, const float* inp, int64_t outer, int64_t dim, int64_t inner);
// dinp += y * (dout - Σ_dim dout*y), y the forward output.
void softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int64_t dim, int64_t inner);

}  // namespace cpuformer
