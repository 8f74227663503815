// The avx512 skinny-product kernel of a runtime-dispatch build (see gemv.cpp),
// compiled with -mavx512f -mavx2 -mfma (cpp/CMakeLists.txt). Empty in other builds.
#if defined(CPUFORMER_GEMM_DISPATCH)
#include "gemv.hpp"
#include "gemv_kernel.hpp"

namespace cpuformer {
namespace detail {

void gemv_nt_avx512(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                    int64_t ldb, float beta, float* C, int64_t ldc, int nthreads, const float* bias, Activation act) {
  gemv_run(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, bias, act);
}

}  // namespace detail
}  // namespace cpuformer
#endif
