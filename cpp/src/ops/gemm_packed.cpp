// Packed GEMM: the blocked driver of gemm_driver.hpp with the widest register
// tile this build's instruction set allows (gemm_kernel_avx512.hpp: 14 x 32
// on 32 zmm registers; gemm_kernel_avx2.hpp: 6 x 16 on 16 ymm registers).
// Builds with neither report packed_gemm_available() == false and gemm()
// uses Eigen.
#include "gemm_packed.hpp"

#if defined(__AVX512F__)
#include "gemm_kernel_avx512.hpp"
#elif defined(__AVX2__) && defined(__FMA__)
#include "gemm_kernel_avx2.hpp"
#endif

#include <exception>

namespace cpuformer {
namespace detail {

#if defined(__AVX512F__)
using PackedKernel = Avx512Kernel;
#elif defined(__AVX2__) && defined(__FMA__)
using PackedKernel = Avx2Kernel;
#endif

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))

bool packed_gemm_available() { return true; }

void packed_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int nthreads, const float* bias,
                 Activation act) {
  gemm_driver::packed_gemm<PackedKernel>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, bias, act);
}

#else

bool packed_gemm_available() { return false; }
void packed_gemm(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
                 float*, int64_t, int, const float*, Activation) {
  std::terminate();  // unreachable: gemm() asks packed_gemm_available() first
}

#endif

}  // namespace detail
}  // namespace cpuformer
