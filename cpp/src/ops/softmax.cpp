// Softmax along the middle axis of [outer, dim, inner]; the body is
// softmax_impl.hpp, compiled per instruction set (vector_kernels.hpp). exp is vmath::exp_f
// (vectorised, <= 2 ulp).
//   inner == 1: one contiguous row of `dim` per task;
//   inner  > 1: a task owns a strip of up to kStrip contiguous inner positions
//               of one outer index and walks dim, so every inner loop runs
//               over contiguous memory (no transposes).
#include "cpuformer/ops/softmax.hpp"

#include "vector_kernels.hpp"

namespace cpuformer {

void softmax_forward(float* out, const float* inp, int64_t outer, int64_t dim, int64_t inner) {
  detail::vector_kernels().softmax_forward(out, inp, outer, dim, inner);
}

void softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int64_t dim, int64_t inner) {
  detail::vector_kernels().softmax_backward(dinp, dout, out, outer, dim, inner);
}

}  // namespace cpuformer
