// The flash-attention kernels (attention_kernels.hpp) for avx512 in a
// runtime-dispatch build, compiled with -mavx512f/bw/dq/vl -mavx2 -mfma and Eigen
// renamed to cpuformer_eigen_avx512 (cpp/CMakeLists.txt; see isa_dispatch.hpp).
// Only called once runtime/cpu.cpp has seen the CPU run them. Empty in other
// builds.
#if defined(CPUFORMER_ISA_DISPATCH)
#include "attention_impl_backward.hpp"
#include "attention_impl_forward.hpp"
#include "attention_kernels.hpp"

namespace cpuformer {
namespace detail {

const AttentionKernels& attention_kernels_avx512() {
  static constexpr AttentionKernels k{&attn::forward, &attn::backward};
  return k;
}

}  // namespace detail
}  // namespace cpuformer
#endif
