// The CPU seen at run time, and which GEMM kernel this process uses.
#pragma once

namespace cpuformer {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;  // and the OS saves the zmm registers
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
  bool avx512vnni = false;  // vpdpbusd: int8 dot products
  bool avx512bf16 = false;  // vdpbf16ps: bfloat16 dot products
  bool amx_int8 = false;    // AMX tiles with int8 (and the OS lets this process use them)
  bool amx_bf16 = false;    // AMX tiles with bfloat16 (same)
};
// Detected once (x86 with GCC or Clang; all false elsewhere).
const CpuFeatures& cpu_features();

enum class GemmKernel { Eigen = 0, Avx2 = 1, Avx512 = 2 };
// "eigen", "packed-avx2" or "packed-avx512".
const char* gemm_kernel_name(GemmKernel k);

// The kernel gemm() uses: the widest packed kernel that this build compiled
// (for its own target, or for every target in a runtime-dispatch build,
// CPUFORMER_NATIVE=OFF on x86-64) and that this CPU runs, else Eigen. The
// environment variable CPUFORMER_GEMM_KERNEL=amx|avx512|avx2|eigen, read
// once, caps the choice of every kernel family (to compare kernels, or test a
// narrower one on a wider CPU; amx only concerns the low-precision kernels);
// any other value is ignored with a warning on stderr.
GemmKernel gemm_kernel();

// True when the library was built with runtime kernel dispatch.
bool gemm_runtime_dispatch();

// The low-precision kernels (ops/packed_weight.hpp). On x86-64 with GCC or
// Clang every build carries every level and picks the widest this CPU runs,
// under the same CPUFORMER_GEMM_KERNEL cap (amx allows all, avx512 stops at
// Avx512, avx2 at Avx2, eigen at Scalar):
//   int8: Amx = AMX-INT8 (calls with few rows use Avx512), Avx512 = AVX512-VNNI
//         (with AVX512BW/VL), Avx2 = AVX2, Scalar = plain C++
//   bf16: Amx = AMX-BF16 (same), Avx512 = AVX512-BF16 (with AVX512BW/VL),
//         Avx2 = AVX2+FMA, Scalar = plain C++
// Every int8 kernel computes bit-identical results; the bf16 ones agree to
// float rounding.
enum class LowpKernel { Scalar = 0, Avx2 = 1, Avx512 = 2, Amx = 3 };
LowpKernel int8_kernel();
LowpKernel bf16_kernel();
// "amx-int8" / "amx-bf16", "avx512-vnni" / "avx512-bf16", "avx2", "scalar".
const char* int8_kernel_name(LowpKernel k);
const char* bf16_kernel_name(LowpKernel k);

// The float32 vector kernels beside the GEMM: flash attention (block
// products, online softmax, the query-row kernel) and the vector math of
// softmax, LayerNorm, GELU and the other activations, cross-entropy and
// dropout. A native build compiles them once, for its own target, and that is
// the level reported; a runtime-dispatch build (CPUFORMER_NATIVE=OFF on
// x86-64) compiles them for its baseline target, for AVX2 + FMA and for
// AVX-512 (F, BW, DQ, VL), and uses the widest this CPU runs under the same
// CPUFORMER_GEMM_KERNEL cap (avx2 stops at Avx2, eigen at Baseline).
// Every level gives the same results to float rounding.
enum class VectorKernel { Baseline = 0, Avx2 = 1, Avx512 = 2 };
VectorKernel vector_kernel();
// "avx512", "avx2" or "baseline" (the build's own target, below both).
const char* vector_kernel_name(VectorKernel k);

}  // namespace cpuformer
