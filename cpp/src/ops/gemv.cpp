// The skinny product behind gemm() (see gemv_kernel.hpp for the kernel):
// built for the library's own target when that has AVX-512F or AVX2 + FMA,
// and in a runtime-dispatch build also for both from kernels_avx2.cpp and
// kernels_avx512.cpp; gemm_kernel() (runtime/cpu.hpp) picks the instruction set.
#include "gemv.hpp"

#include <stdexcept>

#include "cpuformer/runtime/cpu.hpp"
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include "gemv_kernel.hpp"
#endif

namespace cpuformer {
namespace detail {

bool gemv_available() { return gemm_kernel() != GemmKernel::Eigen; }

void gemv_nt(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
             float beta, float* C, int64_t ldc, int nthreads, const float* bias, Activation act) {
  switch (gemm_kernel()) {
#if defined(__AVX512F__)
    case GemmKernel::Avx512:
      gemv_run(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, bias, act);
      return;
#elif defined(CPUFORMER_GEMM_DISPATCH)
    case GemmKernel::Avx512:
      gemv_nt_avx512(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, bias, act);
      return;
#endif
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
    case GemmKernel::Avx2:
      gemv_run(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, bias, act);
      return;
#elif defined(CPUFORMER_GEMM_DISPATCH)
    case GemmKernel::Avx2:
      gemv_nt_avx2(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, bias, act);
      return;
#endif
    default:
      // gemm() asks gemv_available() first.
      throw std::logic_error("cpuformer: gemv_nt called without a vector kernel for this CPU");
  }
}

}  // namespace detail
}  // namespace cpuformer
