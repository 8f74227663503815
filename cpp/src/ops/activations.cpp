// Elementwise activations and the residual add (contract in activations.hpp).
// The vectorised bodies are activations_impl.hpp, compiled per instruction set
// (vector_kernels.hpp); tanh (libm per element) and the float64 references
// for the tests are here.
#include "cpuformer/ops/activations.hpp"

#include <cmath>

#include "vector_kernels.hpp"

namespace cpuformer {
namespace {

// Below this many elements a loop runs on the calling thread (forking costs more).
constexpr int64_t kMinParallel = 1 << 15;

}  // namespace

void activation_inplace(float* x, int64_t n, Activation act) { detail::vector_kernels().activation_inplace(x, n, act); }

void relu_forward(float* out, const float* inp, int64_t n) { detail::vector_kernels().relu_forward(out, inp, n); }

void relu_backward(float* dinp, const float* dout, const float* inp, int64_t n, bool accumulate) {
  detail::vector_kernels().relu_backward(dinp, dout, inp, n, accumulate);
}

void tanh_forward(float* out, const float* inp, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kMinParallel)
  for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(inp[i]);
}

void tanh_backward(float* dinp, const float* dout, const float* out, int64_t n) {
  detail::vector_kernels().tanh_backward(dinp, dout, out, n);
}

void gelu_forward(float* out, const float* inp, int64_t n, GeluApproximate approximate) {
  detail::vector_kernels().gelu_forward(out, inp, n, approximate);
}

void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, GeluApproximate approximate,
                   bool accumulate) {
  detail::vector_kernels().gelu_backward(dinp, dout, inp, n, approximate, accumulate);
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
  detail::vector_kernels().residual_forward(out, a, b, n);
}

void accumulate(float* dst, const float* src, int64_t n) { detail::vector_kernels().accumulate(dst, src, n); }

}  // namespace cpuformer
