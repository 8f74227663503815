// Inverted dropout with a counter-based mask (see rng.hpp): element i is kept
// when rng_uniform(key, i) >= p. Forward and backward regenerate the same mask.
#include "cpuformer/ops/dropout.hpp"

#include "cpuformer/runtime/rng.hpp"

namespace cpuformer {
namespace {
constexpr int64_t kMinParallel = 1 << 14;
}  // namespace

void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t key) {
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i)
    out[i] = rng_uniform(key, static_cast<uint64_t>(i)) >= p ? inp[i] * scale : 0.0f;
}

void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t key) {
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i)
    dinp[i] += rng_uniform(key, static_cast<uint64_t>(i)) >= p ? dout[i] * scale : 0.0f;
}

}  // namespace cpuformer
