// The CPU seen at run time, and which GEMM kernel this process uses.
#pragma once

namespace cpuformer {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;  // and the OS saves the zmm registers
};
// Detected once (x86 with GCC or Clang; all false elsewhere).
const CpuFeatures& cpu_features();

enum class GemmKernel { Eigen = 0, Avx2 = 1, Avx512 = 2 };
// "eigen", "packed-avx2" or "packed-avx512".
const char* gemm_kernel_name(GemmKernel k);

// The kernel gemm() uses: the widest packed kernel that this build compiled
// (for its own target, or for every target in a runtime-dispatch build,
// CPUFORMER_NATIVE=OFF on x86-64) and that this CPU runs, else Eigen. The
// environment variable CPUFORMER_GEMM_KERNEL=avx512|avx2|eigen, read once,
// caps the choice (to compare kernels, or test a narrower one on a wider
// CPU); any other value is ignored with a warning on stderr.
GemmKernel gemm_kernel();

// True when the library was built with runtime kernel dispatch.
bool gemm_runtime_dispatch();

}  // namespace cpuformer
