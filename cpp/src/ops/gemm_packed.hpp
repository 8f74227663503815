// Private: the packed GEMM behind ops/gemm.hpp (see gemm_packed.cpp).
#pragma once
#include <cstdint>

#include "cpuformer/ops/activations.hpp"

namespace cpuformer {
namespace detail {

// True when gemm_kernel() (runtime/cpu.hpp) chose a packed kernel for this
// process: the build carries one and the CPU runs it.
bool packed_gemm_available();

// Same contract as cpuformer::gemm; `nthreads` >= 1 threads split C between
// them (the caller decides; 1 inside a parallel region). Then, as
// gemm_bias_act: bias[N] (or null) is added to every row, and `act` applied.
void packed_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int nthreads,
                 const float* bias = nullptr, Activation act = Activation::None);

#if defined(CPUFORMER_GEMM_DISPATCH)
// The same for one instruction set (kernels_avx2.cpp,
// kernels_avx512.cpp); only for a CPU that supports it.
void packed_gemm_avx2(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int nthreads,
                      const float* bias, Activation act);
void packed_gemm_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                        int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int nthreads,
                        const float* bias, Activation act);
#endif

}  // namespace detail
}  // namespace cpuformer
