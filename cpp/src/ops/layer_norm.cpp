// LayerNorm over the last dimension (contract in layer_norm.hpp); the body,
// with the row statistics forward and backward share, is layer_norm_impl.hpp,
// compiled per instruction set (vector_kernels.hpp).
#include "cpuformer/ops/layer_norm.hpp"

#include "vector_kernels.hpp"

namespace cpuformer {

void layer_norm_stats(float* mean, float* rstd, const float* inp, int64_t N, int64_t C, float eps) {
  detail::vector_kernels().layer_norm_stats(mean, rstd, inp, N, C, eps);
}

void layer_norm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                        const float* bias, int64_t N, int64_t C, float eps) {
  detail::vector_kernels().layer_norm_forward(out, mean, rstd, inp, weight, bias, N, C, eps);
}

void add_layer_norm_forward(float* out, float* sum, const float* a, const float* b, const float* weight,
                            const float* bias, int64_t N, int64_t C, float eps) {
  detail::vector_kernels().add_layer_norm_forward(out, sum, a, b, weight, bias, N, C, eps);
}

void layer_norm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                         const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C) {
  detail::vector_kernels().layer_norm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

}  // namespace cpuformer
