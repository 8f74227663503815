// The vector-math kernels (vector_kernels.hpp) for avx2 in a runtime-dispatch
// build, compiled with -mavx2 -mfma and Eigen renamed to
// cpuformer_eigen_avx2 (cpp/CMakeLists.txt; see isa_dispatch.hpp). Only
// called once runtime/cpu.cpp has seen the CPU run them. Empty in other builds.
#if defined(CPUFORMER_ISA_DISPATCH)
#include "vector_kernels_impl.hpp"

namespace cpuformer {
namespace detail {

const VectorKernels& vector_kernels_avx2() {
  static constexpr VectorKernels k = vk::table();
  return k;
}

}  // namespace detail
}  // namespace cpuformer
#endif
