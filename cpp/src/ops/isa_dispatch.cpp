// The run-time choice of each vector kernel family's level (isa_dispatch.hpp),
// made once per process from runtime/cpu.cpp's vector_kernel().
#include "isa_dispatch.hpp"

#include "attention_kernels.hpp"
#include "vector_kernels.hpp"

namespace cpuformer {
namespace detail {

#if defined(CPUFORMER_ISA_DISPATCH)
#define CPUFORMER_ISA_LEVELS(family) &family##_base, &family##_avx2, &family##_avx512
#else
#define CPUFORMER_ISA_LEVELS(family) &family##_base, nullptr, nullptr
#endif

const AttentionKernels& attention_kernels() {
  static const AttentionKernels& k = pick_isa_table<AttentionKernels>(CPUFORMER_ISA_LEVELS(attention_kernels));
  return k;
}

const VectorKernels& vector_kernels() {
  static const VectorKernels& k = pick_isa_table<VectorKernels>(CPUFORMER_ISA_LEVELS(vector_kernels));
  return k;
}

#undef CPUFORMER_ISA_LEVELS

}  // namespace detail
}  // namespace cpuformer
