// Inverted dropout with a counter-based mask (see rng.hpp): element i is kept
// when rng_uniform(key, i) >= p. Forward and backward regenerate the same mask.
// The body is dropout_impl.hpp, compiled per instruction set (vector_kernels.hpp).
#include "cpuformer/ops/dropout.hpp"

#include "vector_kernels.hpp"

namespace cpuformer {

void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t key) {
  detail::vector_kernels().dropout_forward(out, inp, n, p, key);
}

void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t key) {
  detail::vector_kernels().dropout_backward(dinp, dout, n, p, key);
}

}  // namespace cpuformer
