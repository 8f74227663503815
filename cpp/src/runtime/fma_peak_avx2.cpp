// The FMA peak probe's chains at avx2 for a runtime-dispatch build (see
// fma_chains.hpp), compiled with -mavx2 -mfma (cpp/CMakeLists.txt). Empty in
// other builds.
#if defined(CPUFORMER_GEMM_DISPATCH)
#include "fma_chains.hpp"

namespace cpuformer {
namespace detail {

float fma_chains_avx2(int64_t iters, float seed, double* flops_per_iteration) {
  *flops_per_iteration = fma_chains::kFlopsPerIteration;
  return fma_chains::run(iters, seed);
}

}  // namespace detail
}  // namespace cpuformer
#endif
