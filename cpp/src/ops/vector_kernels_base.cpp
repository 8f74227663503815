// The vector-math kernels (vector_kernels.hpp) compiled for the library's own
// target: the machine's in a native build, the baseline x86-64 (SSE2) of a
// portable one.
#include "vector_kernels_impl.hpp"

namespace cpuformer {
namespace detail {

const VectorKernels& vector_kernels_base() {
  static constexpr VectorKernels k = vk::table();
  return k;
}

}  // namespace detail
}  // namespace cpuformer
