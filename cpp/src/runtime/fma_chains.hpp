// Private: the FMA chains of the peak probe (runtime/peak.cpp), built for the
// instruction set of the file that includes this: the library's own target,
// or, in a runtime-dispatch build, AVX2 (fma_peak_avx2.cpp) and AVX-512
// (fma_peak_avx512.cpp). Internal linkage, as in ops/gemm_driver.hpp.
#pragma once
#include <cstdint>

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace cpuformer {
namespace detail {
namespace {
namespace fma_chains {

// kChains independent accumulators: enough to cover FMA latency (4-5 cycles)
// times the number of FMA ports (2) with room to spare, and few enough to
// stay in registers (16 of 32 zmm/ymm on x86-64 with AVX-512, 16 of 16 ymm
// with AVX2 would spill the constants, so AVX2 uses 12).
// Each chain computes acc = acc * a + b with a slightly below 1, which
// converges to b / (1 - a): no overflow, no denormals, nothing to fold away.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
constexpr int kChains = 16;
using Vec = __m512;
inline Vec vset(float x) { return _mm512_set1_ps(x); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline float vsum(Vec v) {  // (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized)
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float s = 0;
  for (float x : t) s += x;
  return s;
}
#elif defined(__FMA__)
constexpr int kLanes = 8;
constexpr int kChains = 12;
using Vec = __m256;
inline Vec vset(float x) { return _mm256_set1_ps(x); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline float vsum(Vec v) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  float s = 0;
  for (float x : t) s += x;
  return s;
}
#elif defined(__ARM_NEON) && defined(__aarch64__)
constexpr int kLanes = 4;
constexpr int kChains = 16;
using Vec = float32x4_t;
inline Vec vset(float x) { return vdupq_n_f32(x); }
inline Vec vfma(Vec a, Vec b, Vec c) { return vfmaq_f32(c, a, b); }
inline float vsum(Vec v) { return vaddvq_f32(v); }
#else
// Portable fallback: compiler vectors; without an FMA instruction this is a
// multiply and an add, which still counts as 2 FLOP.
constexpr int kLanes = 4;
constexpr int kChains = 8;
typedef float Vec __attribute__((vector_size(16)));
inline Vec vset(float x) { return Vec{x, x, x, x}; }
inline Vec vfma(Vec a, Vec b, Vec c) { return a * b + c; }
inline float vsum(Vec v) { return v[0] + v[1] + v[2] + v[3]; }
#endif

// Runs `iters` iterations of kChains FMAs on one thread; returns the mean of
// all accumulator lanes (about `seed`), derived from every FMA so the work
// cannot be optimised away. Callers feed it back as the next seed so
// repeated calls cannot be hoisted out of a loop either.
inline float run(int64_t iters, float seed) {
  Vec acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = vset(seed + 0.001f * static_cast<float>(c));
  const Vec a = vset(0.999999f);
  const Vec b = vset(1e-6f);
  for (int64_t i = 0; i < iters; ++i) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 16
#endif
    for (int c = 0; c < kChains; ++c) acc[c] = vfma(acc[c], a, b);
  }
  float s = 0;
  for (int c = 0; c < kChains; ++c) s += vsum(acc[c]);
  return s / static_cast<float>(kLanes * kChains);
}

constexpr double kFlopsPerIteration = 2.0 * kLanes * kChains;

}  // namespace fma_chains
}  // namespace

#if defined(CPUFORMER_GEMM_DISPATCH)
// fma_chains::run at one instruction set; *flops_per_iteration = FLOP done
// per iteration. Only for a CPU that supports it.
float fma_chains_avx2(int64_t iters, float seed, double* flops_per_iteration);
float fma_chains_avx512(int64_t iters, float seed, double* flops_per_iteration);
#endif

}  // namespace detail
}  // namespace cpuformer
