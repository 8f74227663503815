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
    r.avx512bw = __builtin_cpu_supports("avx512bw");
    r.avx512vl = __builtin_cpu_supports("avx512vl");
    r.avx512vnni = __builtin_cpu_supports("avx512vnni");
    r.avx512bf16 = __builtin_cpu_supports("avx512bf16");
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

GemmKernel read_env_cap() {
  const char* env = std::getenv("CPUFORMER_GEMM_KERNEL");
  if (!env || !*env) return GemmKernel::Avx512;
  if (std::strcmp(env, "avx512") == 0) return GemmKernel::Avx512;
  if (std::strcmp(env, "avx2") == 0) return GemmKernel::Avx2;
  if (std::strcmp(env, "eigen") == 0) return GemmKernel::Eigen;
  std::fprintf(stderr, "cpuformer: ignoring CPUFORMER_GEMM_KERNEL=%s (expected avx512, avx2 or eigen)\n", env);
  return GemmKernel::Avx512;
}

// Read once: one warning for a bad value, whichever kernel family asks first.
GemmKernel env_cap() {
  static const GemmKernel cap = read_env_cap();
  return cap;
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

namespace {

LowpKernel choose_lowp(bool avx512_ok) {
  const GemmKernel cap = env_cap();
  const CpuFeatures& f = cpu_features();
#if defined(CPUFORMER_LOWP_X86)
  if (cap >= GemmKernel::Avx512 && f.avx512f && f.avx512bw && f.avx512vl && avx512_ok) return LowpKernel::Avx512;
  if (cap >= GemmKernel::Avx2 && f.avx2 && f.fma) return LowpKernel::Avx2;
#else
  (void)cap;
  (void)f;
  (void)avx512_ok;
#endif
  return LowpKernel::Scalar;
}

}  // namespace

LowpKernel int8_kernel() {
  static const LowpKernel k = choose_lowp(cpu_features().avx512vnni);
  return k;
}

LowpKernel bf16_kernel() {
  static const LowpKernel k = choose_lowp(cpu_features().avx512bf16);
  return k;
}

const char* int8_kernel_name(LowpKernel k) {
  return k == LowpKernel::Avx512 ? "avx512-vnni" : k == LowpKernel::Avx2 ? "avx2" : "scalar";
}

const char* bf16_kernel_name(LowpKernel k) {
  return k == LowpKernel::Avx512 ? "avx512-bf16" : k == LowpKernel::Avx2 ? "avx2" : "scalar";
}

}  // namespace cpuformer
