// Linear layer in PyTorch's weight layout.
#pragma once
#include <cstdint>

#include "cpuformer/ops/activations.hpp"
#include "cpuformer/runtime/dtype.hpp"

namespace cpuformer {

// out[N,O] = act(inp[N,I] · weight[O,I]ᵀ + bias[O]); bias may be null. The
// activation is fused into the product's epilogue (use it when the
// pre-activation values are not needed, i.e. without a backward).
// dtype BFloat16: the product in bfloat16 (ops/gemm.hpp: gemm_bf16), the
// bias and activation in float32.
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t I,
                    int64_t O, Activation act = Activation::None, DType dtype = DType::Float32);

// dinp[N,I] += dout[N,O] · weight[O,I]; dweight[O,I] += doutᵀ · inp; dbias[O] += Σ_n dout[n,:].
// Any gradient pointer may be null. dtype BFloat16: both products in
// bfloat16 (dbias stays a float32 sum). accumulate_dinp = false: dinp is
// written instead of added to (its old contents are never read).
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t I, int64_t O, DType dtype = DType::Float32,
                     bool accumulate_dinp = true);

}  // namespace cpuformer
