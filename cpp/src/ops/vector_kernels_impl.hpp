// Private: the vector-math family's table (vector_kernels.hpp) over the
// bodies compiled into the including object.
#pragma once
#include "activations_impl.hpp"
#include "cross_entropy_impl.hpp"
#include "dropout_impl.hpp"
#include "layer_norm_impl.hpp"
#include "softmax_impl.hpp"
#include "vector_kernels.hpp"

namespace cpuformer {
namespace detail {
namespace {  // internal linkage: one copy per instruction-set object (isa_dispatch.hpp)
namespace vk {

constexpr VectorKernels table() {
  VectorKernels t{};
  t.softmax_forward = &softmax_forward;
  t.softmax_backward = &softmax_backward;
  t.layer_norm_stats = &layer_norm_stats;
  t.layer_norm_forward = &layer_norm_forward;
  t.add_layer_norm_forward = &add_layer_norm_forward;
  t.layer_norm_backward = &layer_norm_backward;
  t.activation_inplace = &activation_inplace;
  t.relu_forward = &relu_forward;
  t.relu_backward = &relu_backward;
  t.tanh_backward = &tanh_backward;
  t.gelu_forward = &gelu_forward;
  t.gelu_backward = &gelu_backward;
  t.residual_forward = &residual_forward;
  t.accumulate = &accumulate;
  t.dropout_forward = &dropout_forward;
  t.dropout_backward = &dropout_backward;
  t.cross_entropy_sum = &cross_entropy_sum;
  t.cross_entropy_grad = &cross_entropy_grad;
  return t;
}

}  // namespace vk
}  // namespace
}  // namespace detail
}  // namespace cpuformer
