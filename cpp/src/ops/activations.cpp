// Elementwise activations and the residual add. Every loop is a flat pass
// over n contiguous floats, split statically between threads.
#include "cpuformer/ops/activations.hpp"

#include <cmath>

namespace cpuformer {
namespace {

// Below this many elements a loop runs on the calling thread (forking costs more).
constexpr int64_t kMinParallel = 1 << 15;

constexpr float kSqrt1_2 = 0.70710678118654752440f;      // 1/√2
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;   // 1/√(2π)
constexpr float kSqrt2OverPi = 0.79788456080286535588f;  // √(2/π)
constexpr float kKappa = 0.044715f;

}  // namespace

void relu_forward(float* out, const float* inp, int64_t n) {
  // x < 0 ? 0 : x keeps NaN (as torch does).
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i) out[i] = inp[i] < 0.0f ? 0.0f : inp[i];
}

void relu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
  // A select, not dout * mask, so an inf/NaN upstream gradient where the
  // input was <= 0 contributes 0 (as torch's threshold_backward).
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i) dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
}

void gelu_forward(float* out, const float* inp, int64_t n, GeluApproximate approximate) {
  if (approximate == GeluApproximate::None) {
    // out = x Φ(x) = 0.5 x (1 + erf(x/√2))
#pragma omp parallel for schedule(static) if (n >= kMinParallel / 8)
    for (int64_t i = 0; i < n; ++i) {
      const float x = inp[i];
      out[i] = 0.5f * x * (1.0f + std::erf(x * kSqrt1_2));
    }
  } else {
    // out = 0.5 x (1 + tanh(u)), u = √(2/π) (x + κ x³)
#pragma omp parallel for schedule(static) if (n >= kMinParallel / 8)
    for (int64_t i = 0; i < n; ++i) {
      const float x = inp[i];
      const float u = kSqrt2OverPi * (x + kKappa * x * x * x);
      out[i] = 0.5f * x * (1.0f + std::tanh(u));
    }
  }
}

void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, GeluApproximate approximate) {
  if (approximate == GeluApproximate::None) {
    // gelu'(x) = Φ(x) + x φ(x), φ(x) = exp(-x²/2) / √(2π)
#pragma omp parallel for schedule(static) if (n >= kMinParallel / 8)
    for (int64_t i = 0; i < n; ++i) {
      const float x = inp[i];
      const float cdf = 0.5f * (1.0f + std::erf(x * kSqrt1_2));
      const float pdf = kInvSqrt2Pi * std::exp(-0.5f * x * x);
      dinp[i] += dout[i] * (cdf + x * pdf);
    }
  } else {
    // gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t²) √(2/π) (1 + 3κ x²), t = tanh(u)
#pragma omp parallel for schedule(static) if (n >= kMinParallel / 8)
    for (int64_t i = 0; i < n; ++i) {
      const float x = inp[i];
      const float x2 = x * x;
      const float t = std::tanh(kSqrt2OverPi * (x + kKappa * x2 * x));
      const float du = kSqrt2OverPi * (1.0f + 3.0f * kKappa * x2);
      dinp[i] += dout[i] * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
    }
  }
}

void residual_forward(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void accumulate(float* dst, const float* src, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace cpuformer
