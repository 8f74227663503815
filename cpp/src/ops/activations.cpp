// Elementwise activations and the residual add. Every loop is a flat pass
// over n contiguous floats, split statically between threads.
#include "cpuformer/ops/activations.hpp"

#include <cmath>

#include "cpuformer/ops/vec_math.hpp"

namespace cpuformer {
namespace {

// Below this many elements a loop runs on the calling thread (forking costs more).
constexpr int64_t kMinParallel = 1 << 15;

constexpr float kInvSqrt2Pi = 0.39894228040143267794f;   // 1/√(2π)
constexpr float kSqrt2OverPi = 0.79788456080286535588f;  // √(2/π)
constexpr float kKappa = 0.044715f;

}  // namespace

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

void tanh_forward(float* out, const float* inp, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(inp[i]);
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
// All loops vectorise (vec_math.hpp); the *_reference versions below use
// libm in double and exist for the tests.
namespace {

// σ(2u) and 1 - σ(2u), both to full relative precision.
inline void sigmoid2(float u, float* s, float* one_minus_s) {
  const float a = vmath::exp_f(-2.0f * std::fabs(u));
  const float r = 1.0f / (1.0f + a);
  *s = u >= 0.0f ? r : a * r;
  *one_minus_s = u >= 0.0f ? a * r : r;
}

}  // namespace

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

namespace {
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
}  // namespace

void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, GeluApproximate approximate,
                   bool accumulate) {
  if (accumulate)
    gelu_backward_impl<true>(dinp, dout, inp, n, approximate);
  else
    gelu_backward_impl<false>(dinp, dout, inp, n, approximate);
}

void gelu_forward_reference(float* out, const float* inp, int64_t n, GeluApproximate approximate) {
  for (int64_t i = 0; i < n; ++i) {
    const double x = inp[i];
    // 1 + tanh(u) = 2 / (1 + exp(-2u)): the same value without the double
    // cancellation of 1 + tanh(u) for u << 0.
    const double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
    out[i] = approximate == GeluApproximate::None ? static_cast<float>(0.5 * x * std::erfc(-x / std::sqrt(2.0)))
                                                  : static_cast<float>(x / (1.0 + std::exp(-2.0 * u)));
  }
}

void gelu_backward_reference(float* dinp, const float* dout, const float* inp, int64_t n,
                             GeluApproximate approximate) {
  for (int64_t i = 0; i < n; ++i) {
    const double x = inp[i];
    double d;
    if (approximate == GeluApproximate::None) {
      d = 0.5 * std::erfc(-x / std::sqrt(2.0)) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
    } else {
      const double k = std::sqrt(2.0 / M_PI), t = std::tanh(k * (x + 0.044715 * x * x * x));
      d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
    }
    dinp[i] += static_cast<float>(dout[i] * d);
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
