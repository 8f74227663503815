#include "cpuformer/runtime/cpu.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace cpuformer {

namespace {

// Linux hands a process the AMX tile state only on request (ARCH_REQ_XCOMP_PERM
// for XFEATURE_XTILEDATA); without it the first tile instruction faults.
bool amx_permitted() {
#if defined(__linux__) && (defined(__x86_64__) || defined(__i386__))
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

}  // namespace

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
    r.avx512dq = __builtin_cpu_supports("avx512dq");
    r.avx512vl = __builtin_cpu_supports("avx512vl");
    r.avx512vnni = __builtin_cpu_supports("avx512vnni");
    r.avx512bf16 = __builtin_cpu_supports("avx512bf16");
    const bool tiles = __builtin_cpu_supports("amx-tile") && amx_permitted();
    r.amx_int8 = tiles && __builtin_cpu_supports("amx-int8");
    r.amx_bf16 = tiles && __builtin_cpu_supports("amx-bf16");
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

// The cap as a level: 0 eigen/scalar, 1 avx2, 2 avx512, 3 amx (no cap).
int read_env_cap() {
  const char* env = std::getenv("CPUFORMER_GEMM_KERNEL");
  if (!env || !*env) return 3;
  if (std::strcmp(env, "amx") == 0) return 3;
  if (std::strcmp(env, "avx512") == 0) return 2;
  if (std::strcmp(env, "avx2") == 0) return 1;
  if (std::strcmp(env, "eigen") == 0) return 0;
  std::fprintf(stderr, "cpuformer: ignoring CPUFORMER_GEMM_KERNEL=%s (expected amx, avx512, avx2 or eigen)\n", env);
  return 3;
}

// Read once: one warning for a bad value, whichever kernel family asks first.
int env_cap() {
  static const int cap = read_env_cap();
  return cap;
}

GemmKernel choose() {
  const GemmKernel cap = static_cast<GemmKernel>(std::min(env_cap(), 2));
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

// avx512_ok: the AVX-512 dot-product extension of the family (VNNI or BF16);
// amx_ok: its AMX tiles (whose kernels hand calls with few rows to AVX-512).
LowpKernel choose_lowp(bool avx512_ok, bool amx_ok) {
  const int cap = env_cap();
  const CpuFeatures& f = cpu_features();
#if defined(CPUFORMER_LOWP_X86)
  const bool avx512 = f.avx512f && f.avx512bw && f.avx512vl && avx512_ok;
  if (cap >= 3 && avx512 && amx_ok) return LowpKernel::Amx;
  if (cap >= 2 && avx512) return LowpKernel::Avx512;
  if (cap >= 1 && f.avx2 && f.fma) return LowpKernel::Avx2;
#else
  (void)cap;
  (void)f;
  (void)avx512_ok;
  (void)amx_ok;
#endif
  return LowpKernel::Scalar;
}

}  // namespace

LowpKernel int8_kernel() {
  static const LowpKernel k = choose_lowp(cpu_features().avx512vnni, cpu_features().amx_int8);
  return k;
}

LowpKernel bf16_kernel() {
  static const LowpKernel k = choose_lowp(cpu_features().avx512bf16, cpu_features().amx_bf16);
  return k;
}

namespace {

// The level the library's own target already has: the vector kernels
// compiled without extra flags (the only ones in a native build) run it.
constexpr VectorKernel static_vector_level() {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
  return VectorKernel::Avx512;
#elif defined(__AVX2__) && defined(__FMA__)
  return VectorKernel::Avx2;
#else
  return VectorKernel::Baseline;
#endif
}

VectorKernel choose_vector() {
  VectorKernel level = static_vector_level();
#if defined(CPUFORMER_ISA_DISPATCH)
  // The widest level this CPU runs, under the cap, never below the build's own.
  const int cap = env_cap();
  const CpuFeatures& f = cpu_features();
  VectorKernel cpu = VectorKernel::Baseline;
  if (cap >= 2 && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.avx2 && f.fma)
    cpu = VectorKernel::Avx512;
  else if (cap >= 1 && f.avx2 && f.fma)
    cpu = VectorKernel::Avx2;
  level = std::max(level, cpu);
#endif
  return level;
}

}  // namespace

VectorKernel vector_kernel() {
  static const VectorKernel k = choose_vector();
  return k;
}

const char* vector_kernel_name(VectorKernel k) {
  switch (k) {
    case VectorKernel::Avx512: return "avx512";
    case VectorKernel::Avx2: return "avx2";
    default: return "baseline";
  }
}

const char* int8_kernel_name(LowpKernel k) {
  switch (k) {
    case LowpKernel::Amx: return "amx-int8";
    case LowpKernel::Avx512: return "avx512-vnni";
    case LowpKernel::Avx2: return "avx2";
    default: return "scalar";
  }
}

const char* bf16_kernel_name(LowpKernel k) {
  switch (k) {
    case LowpKernel::Amx: return "amx-bf16";
    case LowpKernel::Avx512: return "avx512-bf16";
    case LowpKernel::Avx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace cpuformer
