// The AVX-512 low-precision kernels (see lowp_kernel.hpp): int8 with
// AVX512-VNNI (vpdpbusd) and bf16 with AVX512-BF16 (vdpbf16ps), compiled
// with those instruction sets enabled on x86-64 (cpp/CMakeLists.txt) in every
// build. Only called once runtime/cpu.cpp has seen the CPU support them.
#if defined(CPUFORMER_LOWP_X86)
#include "lowp_kernel.hpp"

namespace cpuformer {
namespace detail {

void lowp_int8_avx512(const LowpGemm& g, int nthreads) { lowp::run<lowp::Avx512Int8>(g, nthreads); }
void lowp_bf16_avx512(const LowpGemm& g, int nthreads) { lowp::run<lowp::Avx512Bf16>(g, nthreads); }
void lowp_bf16_pack_avx512(uint8_t* dst, bool trans_b, const float* B, int64_t ldb, int64_t N, int64_t K,
                           int64_t pgroups, int64_t p0, int64_t p1) {
  lowp::pack_bf16_panels(dst, trans_b, B, ldb, N, K, pgroups, p0, p1);
}
float lowp_int8_peak_avx512(int64_t iters, float seed, double* ops) { return lowp::peak_int8_avx512(iters, seed, ops); }
float lowp_bf16_peak_avx512(int64_t iters, float seed, double* ops) { return lowp::peak_bf16_avx512(iters, seed, ops); }

}  // namespace detail
}  // namespace cpuformer
#endif
