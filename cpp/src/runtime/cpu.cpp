#include "cpuformer/runtime/cpu.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cpuformer {

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures r;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    // libgcc's detection also checks (XGETBV) that the OS saves the ymm and
    // zmm state before it reports AVX2 or AVX-512.
    __builtin_cpu_init();
    r.avx2 = __builtin_cpu_supports("avx2");
    r.fma = __builtin_cpu_supports("fma");
    r.avx512f = __builtin_cpu_supports("avx512f");
#endif
    return r;
  }();
  return f;
}

const char* gemm_kernel_name(GemmKernel k) {
  switch (k) {
    case GemmKernel::Avx512:
      return "packed-avx512";
    case GemmKernel::Avx2:
      return "packed-avx2";
    default:
      return "eigen";
  }
}

bool gemm_runtime_dispatch() {
#if defined(CPUFORMER_GEMM_DISPATCH)
  return true;
#else
  return false;
#endif
}

namespace {

GemmKernel env_cap() {
  const char* env = std::getenv("CPUFORMER_GEMM_KERNEL");
  if (!env || !*env) return GemmKernel::Avx512;
  if (std::strcmp(env, "avx512") == 0) return GemmKernel::Avx512;
  if (std::strcmp(env, "avx2") == 0) return GemmKernel::Avx2;
  if (std::strcmp(env, "eigen") == 0) return GemmKernel::Eigen;
  std::fprintf(stderr, "cpuformer: ignoring CPUFORMER_GEMM_KERNEL=%s (expected avx512, avx2 or eigen)\n", env);
  return GemmKernel::Avx512;
}

GemmKernel choose() {
  const GemmKernel cap = env_cap();
  const CpuFeatures& f = cpu_features();
  // Kernels compiled for the library's own target need no check: the whole
  // library already requires that instruction set.
#if defined(CPUFORMER_GEMM_DISPATCH)
  constexpr bool dispatch = true;
#else
  constexpr bool dispatch = false;
#endif
#if defined(__AVX512F__)
  constexpr bool static512 = true, static2 = false;
#elif defined(__AVX2__) && defined(__FMA__)
  constexpr bool static512 = false, static2 = true;
#else
  constexpr bool static512 = false, static2 = false;
#endif
  if (cap >= GemmKernel::Avx512 && (static512 || (dispatch && f.avx512f))) return GemmKernel::Avx512;
  if (cap >= GemmKernel::Avx2 && (static2 || (dispatch && f.avx2 && f.fma))) return GemmKernel::Avx2;
  return GemmKernel::Eigen;
}

}  // namespace

GemmKernel gemm_kernel() {
  static const GemmKernel k = choose();
  return k;
}

}  // namespace cpuformer
