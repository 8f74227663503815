#include "cpuformer/runtime/build_info.hpp"

#include <Eigen/Core>

#include "cpuformer/runtime/cpu.hpp"
#include "cpuformer/runtime/threads.hpp"

#ifndef CPUFORMER_VERSION
#define CPUFORMER_VERSION "0.0.0"
#endif
#ifndef CPUFORMER_BUILD_TYPE
#define CPUFORMER_BUILD_TYPE "unknown"
#endif
#ifndef CPUFORMER_COMPILER
#define CPUFORMER_COMPILER "unknown"
#endif

namespace cpuformer {

const char* version() { return CPUFORMER_VERSION; }

BuildInfo build_info() {
  BuildInfo b;
  b.version = CPUFORMER_VERSION;
  b.compiler = CPUFORMER_COMPILER;
  b.build_type = CPUFORMER_BUILD_TYPE;
  b.openmp = openmp_enabled();
#ifdef CPUFORMER_NATIVE_BUILD
  b.native = true;
#endif
#if defined(__AVX512F__)
  b.simd = "avx512f";
#elif defined(__AVX2__)
  b.simd = "avx2";
#elif defined(__AVX__)
  b.simd = "avx";
#elif defined(__SSE2__)
  b.simd = "sse2";
#elif defined(__ARM_NEON)
  b.simd = "neon";
#else
  b.simd = "scalar";
#endif
#ifdef CPUFORMER_SANITIZED
  b.sanitized = true;
#endif
  b.gemm = gemm_kernel_name(gemm_kernel());
  b.gemm_dispatch = gemm_runtime_dispatch();
  b.int8_kernel = int8_kernel_name(int8_kernel());
  b.bf16_kernel = bf16_kernel_name(bf16_kernel());
  b.vector_kernel = vector_kernel_name(vector_kernel());
  b.eigen = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
            std::to_string(EIGEN_MINOR_VERSION);
  return b;
}

}  // namespace cpuformer
