// Private: the elementwise activation bodies (vector_kernels.hpp), compiled
// once per instruction set: ReLU, tanh's backward, GELU (exact and tanh
// forms), activation_inplace, the residual add. Every loop is a flat pass
// over n contiguous floats, split statically between threads.
#pragma once
#include <cmath>
#include <cstdint>

#include "cpuformer/ops/activations.hpp"
#include "cpuformer/ops/vec_math.hpp"

namespace cpuformer {
namespace detail {
namespace {  // internal linkage: one copy per instruction-set object (isa_dispatch.hpp)
namespace vk {

// Below this many elements a loop runs on the calling thread (forking costs more).
constexpr int64_t kMinParallel = 1 << 15;

constexpr float kInvSqrt2Pi = 0.39894228040143267794f;   // 1/√(2π)
constexpr float kSqrt2OverPi = 0.79788456080286535588f;  // √(2/π)
constexpr float kKappa = 0.044715f;

void relu_forward(float* out, const float* inp, int64_t n) {
  // x < 0 ? 0 : x keeps NaN (as torch does).
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i) out[i] = inp[i] < 0.0f ? 0.0f : inp[i];
}

void relu_backward(float* dinp, const float* dout, const float* inp, int64_t n, bool accumulate) {
  // A select, not dout * mask, so an inf/NaN upstream gradient where the
  // input was <= 0 contributes 0 (as torch's threshold_backward).
  if (accumulate) {
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
    for (int64_t i = 0; i < n; ++i) dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
  } else {
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
    for (int64_t i = 0; i < n; ++i) dinp[i] = inp[i] > 0.0f ? dout[i] : 0.0f;
  }
}

void tanh_backward(float* dinp, const float* dout, const float* out, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i) dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
}

// Both forms are evaluated without the cancellation in 1 + erf / 1 + tanh,
// which in float flushes gelu(x) to 0 for x below about -5.5 although the
// true value (e.g. gelu(-6) = -5.9e-9) is a normal float:
//   exact: Φ(x) from vmath::normal_cdf (erfc-based in the tail)
//   tanh:  0.5 (1 + tanh u) = σ(2u), with the logistic σ evaluated from
//          a = exp(-2|u|) <= 1 so it never overflows.
// All loops vectorise (vec_math.hpp); the *_reference versions (activations.cpp)
// use libm in double and exist for the tests.

// σ(2u) and 1 - σ(2u), both to full relative precision.
inline void sigmoid2(float u, float* s, float* one_minus_s) {
  const float a = vmath::exp_f(-2.0f * std::fabs(u));
  const float r = 1.0f / (1.0f + a);
  *s = u >= 0.0f ? r : a * r;
  *one_minus_s = u >= 0.0f ? a * r : r;
}

void activation_inplace(float* x, int64_t n, Activation act) {
  switch (act) {
    case Activation::None:
      return;
    case Activation::Relu:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] < 0.0f ? 0.0f : x[i];
      return;
    case Activation::Gelu:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        float e;
        x[i] = x[i] * vmath::normal_cdf(x[i], &e);
      }
      return;
    case Activation::GeluTanh:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        float s, sc;
        sigmoid2(kSqrt2OverPi * (x[i] + kKappa * x[i] * x[i] * x[i]), &s, &sc);
        x[i] = x[i] * s;
      }
      return;
  }
}

void gelu_forward(float* out, const float* inp, int64_t n, GeluApproximate approximate) {
  if (approximate == GeluApproximate::None) {
    // out = x Φ(x)
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
    for (int64_t i = 0; i < n; ++i) {
      const float x = inp[i];
      float e;
      out[i] = x * vmath::normal_cdf(x, &e);
    }
  } else {
    // out = 0.5 x (1 + tanh(u)) = x σ(2u), u = √(2/π) (x + κ x³)
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
    for (int64_t i = 0; i < n; ++i) {
      const float x = inp[i];
      float s, sc;
      sigmoid2(kSqrt2OverPi * (x + kKappa * x * x * x), &s, &sc);
      out[i] = x * s;
    }
  }
}

template <bool kAccumulate>
void gelu_backward_impl(float* dinp, const float* dout, const float* inp, int64_t n, GeluApproximate approximate) {
  if (approximate == GeluApproximate::None) {
    // gelu'(x) = Φ(x) + x φ(x), φ(x) = exp(-x²/2) / √(2π)
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
    for (int64_t i = 0; i < n; ++i) {
      const float x = inp[i];
      float e;
      const float cdf = vmath::normal_cdf(x, &e);
      const float xpdf = e == 0.0f ? 0.0f : x * (kInvSqrt2Pi * e);  // 0, not inf·0, for |x| -> inf
      if constexpr (kAccumulate)
        dinp[i] += dout[i] * (cdf + xpdf);
      else
        dinp[i] = dout[i] * (cdf + xpdf);
    }
  } else {
    // gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t²) u'(x), t = tanh(u), u' = √(2/π) (1 + 3κ x²)
    //          = s + 2 x s (1 - s) u'(x),           s = σ(2u)
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
    for (int64_t i = 0; i < n; ++i) {
      const float x = inp[i];
      const float x2 = x * x;
      float s, sc;
      sigmoid2(kSqrt2OverPi * (x + kKappa * x2 * x), &s, &sc);
      const float du = kSqrt2OverPi * (1.0f + 3.0f * kKappa * x2);
      const float ss = s * sc;
      const float tail = ss == 0.0f ? 0.0f : 2.0f * x * ss * du;  // 0, not 0·inf, once x² overflows
      if constexpr (kAccumulate)
        dinp[i] += dout[i] * (s + tail);
      else
        dinp[i] = dout[i] * (s + tail);
    }
  }
}

void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, GeluApproximate approximate,
                   bool accumulate) {
  if (accumulate)
    gelu_backward_impl<true>(dinp, dout, inp, n, approximate);
  else
    gelu_backward_impl<false>(dinp, dout, inp, n, approximate);
}

void residual_forward(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void accumulate(float* dst, const float* src, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace vk
}  // namespace
}  // namespace detail
}  // namespace cpuformer
