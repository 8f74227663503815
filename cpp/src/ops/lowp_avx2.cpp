// The AVX2 low-precision kernels (see lowp_kernel.hpp), compiled with
// -mavx2 -mfma on x86-64 (cpp/CMakeLists.txt) in every build, so one library
// carries them whatever its own target. Only called once runtime/cpu.cpp has
// seen the CPU support AVX2 and FMA.
#if defined(CPUFORMER_LOWP_X86)
#include "lowp_kernel.hpp"

namespace cpuformer {
namespace detail {

void lowp_int8_avx2(const LowpGemm& g, int nthreads) { lowp::run<lowp::Avx2Int8>(g, nthreads); }
// Few rows (decoding): the direct kernel streams W once. More: the panels
// are widened to float32 once per call and the FMA kernel reuses them.
void lowp_bf16_avx2(const LowpGemm& g, int nthreads) {
  if (g.M >= 8 && g.stage)
    lowp::run<lowp::Avx2Bf16Staged>(g, nthreads);
  else
    lowp::run<lowp::Avx2Bf16>(g, nthreads);
}
float lowp_int8_peak_avx2(int64_t iters, float seed, double* ops) { return lowp::peak_int8_avx2(iters, seed, ops); }
float lowp_bf16_peak_avx2(int64_t iters, float seed, double* ops) { return lowp::peak_bf16_avx2(iters, seed, ops); }

}  // namespace detail
}  // namespace cpuformer
#endif
