// Private: the vector-math kernel family (isa_dispatch.hpp): softmax,
// LayerNorm, the elementwise activations, cross-entropy's row math and
// dropout. The bodies (softmax_impl.hpp, layer_norm_impl.hpp,
// activations_impl.hpp, cross_entropy_impl.hpp, dropout_impl.hpp) are compiled
// by vector_kernels_base.cpp, vector_kernels_avx2.cpp and
// vector_kernels_avx512.cpp; the public functions in softmax.cpp,
// layer_norm.cpp, activations.cpp, cross_entropy.cpp and dropout.cpp call
// through vector_kernels().
#pragma once
#include <cstdint>

#include "cpuformer/ops/activations.hpp"
#include "cpuformer/ops/dropout.hpp"
#include "cpuformer/ops/layer_norm.hpp"
#include "cpuformer/ops/softmax.hpp"

namespace cpuformer {
namespace detail {

// Each entry has the contract of the public function of the same name.
struct VectorKernels {
  decltype(&cpuformer::softmax_forward) softmax_forward;
  decltype(&cpuformer::softmax_backward) softmax_backward;
  decltype(&cpuformer::layer_norm_stats) layer_norm_stats;
  decltype(&cpuformer::layer_norm_forward) layer_norm_forward;
  decltype(&cpuformer::add_layer_norm_forward) add_layer_norm_forward;
  decltype(&cpuformer::layer_norm_backward) layer_norm_backward;
  decltype(&cpuformer::activation_inplace) activation_inplace;
  decltype(&cpuformer::relu_forward) relu_forward;
  decltype(&cpuformer::relu_backward) relu_backward;
  decltype(&cpuformer::tanh_backward) tanh_backward;
  decltype(&cpuformer::gelu_forward) gelu_forward;
  decltype(&cpuformer::gelu_backward) gelu_backward;
  decltype(&cpuformer::residual_forward) residual_forward;
  decltype(&cpuformer::accumulate) accumulate;
  decltype(&cpuformer::dropout_forward) dropout_forward;
  decltype(&cpuformer::dropout_backward) dropout_backward;
  // Cross-entropy after cross_entropy.cpp's checks: the sum of the rows'
  // losses, and the gradient with scale = dloss / (rows not ignored).
  double (*cross_entropy_sum)(const float* logits, const int64_t* target, int64_t N, int64_t C,
                              int64_t ignore_index, float label_smoothing);
  void (*cross_entropy_grad)(float* dlogits, const float* logits, const int64_t* target, int64_t N, int64_t C,
                             int64_t ignore_index, float label_smoothing, float scale, bool accumulate);
};

// The entry point of each compiled level, and the one in use.
const VectorKernels& vector_kernels_base();
#if defined(CPUFORMER_ISA_DISPATCH)
const VectorKernels& vector_kernels_avx2();
const VectorKernels& vector_kernels_avx512();
#endif
const VectorKernels& vector_kernels();

}  // namespace detail
}  // namespace cpuformer
