// Private: the dropout bodies (vector_kernels.hpp), compiled once per
// instruction set (the counter-based mask's 64-bit multiplies vectorise with
// AVX-512DQ). dropout.cpp holds the contract.
#pragma once
#include <cstdint>

#include "cpuformer/runtime/rng.hpp"

namespace cpuformer {
namespace detail {
namespace {  // internal linkage: one copy per instruction-set object (isa_dispatch.hpp)
namespace vk {

constexpr int64_t kDropoutMinParallel = 1 << 14;

void dropout_forward(float* out, const float* inp, int64_t n, float p, uint64_t key) {
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for simd schedule(static) if (n >= kDropoutMinParallel)
  for (int64_t i = 0; i < n; ++i)
    out[i] = rng_uniform(key, static_cast<uint64_t>(i)) >= p ? inp[i] * scale : 0.0f;
}

void dropout_backward(float* dinp, const float* dout, int64_t n, float p, uint64_t key) {
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for simd schedule(static) if (n >= kDropoutMinParallel)
  for (int64_t i = 0; i < n; ++i)
    dinp[i] += rng_uniform(key, static_cast<uint64_t>(i)) >= p ? dout[i] * scale : 0.0f;
}

}  // namespace vk
}  // namespace
}  // namespace detail
}  // namespace cpuformer
