// The avx2 kernels of a runtime-dispatch build (see gemm_packed.cpp and
// gemv.cpp), compiled with -mavx2 -mfma (cpp/CMakeLists.txt). Only called once
// runtime/cpu.cpp has seen the CPU support them. Empty in other builds.
#if defined(CPUFORMER_GEMM_DISPATCH)
#include "gemm_packed.hpp"
#include "gemv.hpp"
#include "gemm_kernel.hpp"
#include "gemv_kernel.hpp"

namespace cpuformer {
namespace detail {

void packed_gemm_avx2(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                      const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int nthreads, const float* bias,
                      Activation act) {
  gemm_driver::packed_gemm<Avx2Kernel>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, bias, act);
}

void prepack_weight_avx2(const float* W, int64_t ldw, int64_t N, int64_t K, float* out) {
  gemm_driver::prepack_b<Avx2Kernel>(W, ldw, N, K, out);
}

void packed_gemm_prepacked_avx2(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda,
                                    const float* packed, int64_t npad, float* C, int64_t ldc, int nthreads,
                                    const float* bias, Activation act) {
  gemm_driver::packed_gemm<Avx2Kernel>(false, true, M, n1 - n0, K, 1.0f, A, lda, nullptr, K, 0.0f, C, ldc, nthreads,
                                   bias ? bias + n0 : nullptr, act, gemm_driver::Prepacked{packed, npad, n0});
}

void gemv_nt_avx2(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                  int64_t ldb, float beta, float* C, int64_t ldc, int nthreads, const float* bias, Activation act) {
  gemv_run(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, bias, act);
}

}  // namespace detail
}  // namespace cpuformer
#endif
