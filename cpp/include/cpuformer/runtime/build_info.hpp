// What this build of the library is: version, compiler, OpenMP, SIMD level.
#pragma once
#include <string>

namespace cpuformer {

struct BuildInfo {
  std::string version;
  std::string compiler;
  std::string build_type;
  bool openmp = false;
  bool native = false;   // compiled with -march=native
  std::string simd;      // widest vector ISA compiled in: "avx512f", "avx2", "sse2", ...
  std::string eigen;     // Eigen version
  bool sanitized = false;  // built with AddressSanitizer + UndefinedBehaviorSanitizer (CPUFORMER_SANITIZE)
  std::string gemm;        // GEMM kernel in use: "packed-avx512" or "packed-avx2" (our own), or "eigen"
  bool gemm_dispatch = false;  // kernels for several instruction sets, chosen at run time (runtime/cpu.hpp)
  std::string int8_kernel;     // low-precision kernels in use: "avx512-vnni", "avx2" or "scalar"
  std::string bf16_kernel;     // "avx512-bf16", "avx2" or "scalar"
  std::string vector_kernel;   // attention and vector math in use: "avx512", "avx2" or "baseline"
};

BuildInfo build_info();
const char* version();

}  // namespace cpuformer
