// Inverted dropout with a counter-based mask: element i is kept when
// rng_uniform(key, i) >= p, so the mask depends on (key, i) only, never on the
// thread count, and backward regenerates it instead of storing it.
#pragma once
#include <cstdint>

namespace cpuformer {

// out = keep ? inp / (1 - p) : 0; p in [0, 1); out and inp may alias.
void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t key);
// dinp += keep ? dout / (1 - p) : 0
void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t key);

}  // namespace cpuformer
