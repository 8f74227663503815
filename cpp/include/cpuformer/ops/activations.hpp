// Elementwise activations and the residual add.
#pragma once
#include <cstdint>

namespace cpuformer {

enum class GeluApproximate { None, Tanh };

// An activation fused into another kernel's output (ops/gemm.hpp).
enum class Activation { None, Relu, Gelu, GeluTanh };

// x = act(x) in place on the calling thread (no OpenMP): for epilogues that
// run on a small block while it is still in cache. Same values as
// relu_forward / gelu_forward.
void activation_inplace(float* x, int64_t n, Activation act);

// out = max(x, 0); out and inp may alias.
void relu_forward(float* out, const float* inp, int64_t n);
// dinp += dout * (inp > 0); accumulate = false: dinp = (its old contents are never read).
void relu_backward(float* dinp, const float* dout, const float* inp, int64_t n, bool accumulate = true);

// out = tanh(x); out and inp may alias.
void tanh_forward(float* out, const float* inp, int64_t n);
// dinp += dout * (1 - out²), from the forward's output.
void tanh_backward(float* dinp, const float* dout, const float* out, int64_t n);

// None: out = x * Φ(x) = 0.5 x (1 + erf(x/√2));
// Tanh: out = 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))). out and inp may alias.
// Evaluated as x Φ(x) with an erfc-based tail and as x σ(2u) (exact
// identities) so the small negative tail is not lost to cancellation in
// 1 + erf / 1 + tanh; vectorised (ops/vec_math.hpp), relative error ~1e-7.
void gelu_forward(float* out, const float* inp, int64_t n, GeluApproximate approximate);
// dinp += dout * gelu'(inp); accumulate = false: dinp = (its old contents are never read).
void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, GeluApproximate approximate,
                   bool accumulate = true);
// Plain scalar references (libm erfc / exp / tanh in double), kept beside
// the fast kernels so tests can compare them. Same contracts.
void gelu_forward_reference(float* out, const float* inp, int64_t n, GeluApproximate approximate);
void gelu_backward_reference(float* dinp, const float* dout, const float* inp, int64_t n,
                             GeluApproximate approximate);

// out = a + b (residual connection); out may alias a or b. Backward is the
// identity into both inputs, so callers just accumulate dout.
void residual_forward(float* out, const float* a, const float* b, int64_t n);
// dst += src
void accumulate(float* dst, const float* src, int64_t n);

}  // namespace cpuformer
