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

// A weight matrix W [N, K] (row-major, ldw) packed once in the layout the
// chosen kernel reads as B of C = A · Wᵀ (gemm_driver.hpp: Prepacked), so
// calls with the same weight skip packing it. prepack_floats: the size of
// that layout for the current kernel; prepack_weight writes it. Both need
// packed_gemm_available().
int64_t prepack_floats(int64_t N, int64_t K);
// The column alignment a call's first column n0 needs (the kernel's kNR).
int64_t prepack_align();
void prepack_weight(const float* W, int64_t ldw, int64_t N, int64_t K, float* out);
// C[M, n1 - n0] (ldc) = act(A[M, K] · W[n0:n1]ᵀ + bias[n0:n1]) from the
// prepacked W of npad = N rounded up to prepack_align() columns; n0 a
// multiple of prepack_align(); bias indexed from column 0 (or null).
void packed_gemm_prepacked(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda,
                           const float* packed, int64_t npad, float* C, int64_t ldc, int nthreads,
                           const float* bias, Activation act);

#if defined(CPUFORMER_GEMM_DISPATCH)
void prepack_weight_avx2(const float* W, int64_t ldw, int64_t N, int64_t K, float* out);
void prepack_weight_avx512(const float* W, int64_t ldw, int64_t N, int64_t K, float* out);
void packed_gemm_prepacked_avx2(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda,
                                const float* packed, int64_t npad, float* C, int64_t ldc, int nthreads,
                                const float* bias, Activation act);
void packed_gemm_prepacked_avx512(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda,
                                  const float* packed, int64_t npad, float* C, int64_t ldc, int nthreads,
                                  const float* bias, Activation act);
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
