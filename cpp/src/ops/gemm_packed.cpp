// Packed GEMM: the blocked driver of gemm_driver.hpp with the widest register
// tile the CPU allows (gemm_kernel.hpp: 14 x 32 on 32 zmm registers with
// AVX-512, 6 x 16 on 16 ymm registers with AVX2).
//
// Which kernels exist: the one this file's own target allows (a native build
// on an AVX-512 machine compiles the AVX-512 kernel here), plus, in a
// runtime-dispatch build (CPUFORMER_GEMM_DISPATCH, CPUFORMER_NATIVE=OFF on
// x86-64), both, from kernels_avx2.cpp and kernels_avx512.cpp, which
// are compiled with their instruction set enabled. Everything those files
// define has internal linkage except their entry points, so the linker never
// mixes code compiled for different instruction sets. runtime/cpu.cpp picks
// the kernel once (gemm_kernel()); Eigen serves builds and CPUs with neither.
#include "gemm_packed.hpp"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include "gemm_kernel.hpp"
#endif

#include <stdexcept>

#include "cpuformer/runtime/cpu.hpp"

namespace cpuformer {
namespace detail {

bool packed_gemm_available() { return gemm_kernel() != GemmKernel::Eigen; }

void packed_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int nthreads, const float* bias,
                 Activation act) {
  switch (gemm_kernel()) {
#if defined(__AVX512F__)
    case GemmKernel::Avx512:
      gemm_driver::packed_gemm<Avx512Kernel>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, bias,
                                             act);
      return;
#elif defined(CPUFORMER_GEMM_DISPATCH)
    case GemmKernel::Avx512:
      packed_gemm_avx512(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, bias, act);
      return;
#endif
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
    case GemmKernel::Avx2:
      gemm_driver::packed_gemm<Avx2Kernel>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, bias, act);
      return;
#elif defined(CPUFORMER_GEMM_DISPATCH)
    case GemmKernel::Avx2:
      packed_gemm_avx2(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads, bias, act);
      return;
#endif
    default:
      // gemm() asks packed_gemm_available() first.
      throw std::logic_error("cpuformer: packed_gemm called without a packed kernel for this CPU");
  }
}

namespace {
// The kernel's panel width, and which prepacked layout it reads.
int64_t kernel_nr() {
  switch (gemm_kernel()) {
    case GemmKernel::Avx512:
      return 32;  // Avx512Kernel::kNR (gemm_kernel.hpp)
    case GemmKernel::Avx2:
      return 16;  // Avx2Kernel::kNR
    default:
      throw std::logic_error("cpuformer: prepacked weights without a packed kernel for this CPU");
  }
}
}  // namespace

int64_t prepack_align() { return kernel_nr(); }

int64_t prepack_floats(int64_t N, int64_t K) { return (N + kernel_nr() - 1) / kernel_nr() * kernel_nr() * K; }

void prepack_weight(const float* W, int64_t ldw, int64_t N, int64_t K, float* out) {
  switch (gemm_kernel()) {
#if defined(__AVX512F__)
    case GemmKernel::Avx512:
      static_assert(Avx512Kernel::kNR == 32, "kernel_nr() is out of date");
      gemm_driver::prepack_b<Avx512Kernel>(W, ldw, N, K, out);
      return;
#elif defined(CPUFORMER_GEMM_DISPATCH)
    case GemmKernel::Avx512:
      prepack_weight_avx512(W, ldw, N, K, out);
      return;
#endif
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
    case GemmKernel::Avx2:
      static_assert(Avx2Kernel::kNR == 16, "kernel_nr() is out of date");
      gemm_driver::prepack_b<Avx2Kernel>(W, ldw, N, K, out);
      return;
#elif defined(CPUFORMER_GEMM_DISPATCH)
    case GemmKernel::Avx2:
      prepack_weight_avx2(W, ldw, N, K, out);
      return;
#endif
    default:
      throw std::logic_error("cpuformer: prepack_weight called without a packed kernel for this CPU");
  }
}

void packed_gemm_prepacked(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda,
                           const float* packed, int64_t npad, float* C, int64_t ldc, int nthreads,
                           const float* bias, Activation act) {
  switch (gemm_kernel()) {
#if defined(__AVX512F__)
    case GemmKernel::Avx512:
      gemm_driver::packed_gemm<Avx512Kernel>(false, true, M, n1 - n0, K, 1.0f, A, lda, nullptr, K, 0.0f, C, ldc,
                                             nthreads, bias ? bias + n0 : nullptr, act,
                                             gemm_driver::Prepacked{packed, npad, n0});
      return;
#elif defined(CPUFORMER_GEMM_DISPATCH)
    case GemmKernel::Avx512:
      packed_gemm_prepacked_avx512(M, n0, n1, K, A, lda, packed, npad, C, ldc, nthreads, bias, act);
      return;
#endif
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
    case GemmKernel::Avx2:
      gemm_driver::packed_gemm<Avx2Kernel>(false, true, M, n1 - n0, K, 1.0f, A, lda, nullptr, K, 0.0f, C, ldc,
                                           nthreads, bias ? bias + n0 : nullptr, act,
                                           gemm_driver::Prepacked{packed, npad, n0});
      return;
#elif defined(CPUFORMER_GEMM_DISPATCH)
    case GemmKernel::Avx2:
      packed_gemm_prepacked_avx2(M, n0, n1, K, A, lda, packed, npad, C, ldc, nthreads, bias, act);
      return;
#endif
    default:
      throw std::logic_error("cpuformer: packed_gemm_prepacked called without a packed kernel for this CPU");
  }
}

}  // namespace detail
}  // namespace cpuformer
