#include "cpuformer/runtime/peak.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "cpuformer/error.hpp"
#include "cpuformer/ops/gemm.hpp"

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace cpuformer {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

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
float fma_chains(int64_t iters, float seed) {
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

// One timed trial of about `seconds`: every thread runs chunks of FMA chains
// until a shared deadline and counts its own iterations, so a thread that
// the OS preempts simply contributes less. Returns GFLOP/s over the wall time
// of the whole parallel region (thread start-up included).
double fma_trial(double seconds, float* sink) {
  constexpr int64_t kChunk = 1 << 14;  // ~0.1 ms per chunk: clock reads are negligible
  const Clock::time_point t0 = Clock::now();
  const Clock::time_point deadline = t0 + std::chrono::duration_cast<Clock::duration>(
                                               std::chrono::duration<double>(seconds));
  double iters = 0;
  float total = 0;
#ifdef _OPENMP
#pragma omp parallel reduction(+ : total, iters)
#endif
  {
    float seed = 1.0f;
#ifdef _OPENMP
    seed += 0.01f * static_cast<float>(omp_get_thread_num());
#endif
    do {
      seed = fma_chains(kChunk, seed);
      iters += static_cast<double>(kChunk);
    } while (Clock::now() < deadline);
    total += seed;
  }
  const double dt = seconds_since(t0);
  *sink += total;
  return 2.0 * kLanes * kChains * iters / dt * 1e-9;
}

}  // namespace

double fma_peak_gflops(double seconds) {
  CF_CHECK_VALUE(std::isfinite(seconds) && seconds > 0 && seconds <= 60,
                 "fma_peak_gflops: expected 0 < seconds <= 60, got ", seconds);
  float sink = 0;
  // A short untimed trial wakes the thread pool and lets clocks ramp up.
  fma_trial(std::min(0.02, seconds / 4), &sink);
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) best = std::max(best, fma_trial(seconds / 3, &sink));
  // `sink` is finite by construction; testing it keeps the work observable.
  return std::isfinite(sink) ? best : 0.0;
}

double gemm_gflops(int64_t M, int64_t N, int64_t K, int repeats) {
  CF_CHECK_VALUE(M >= 1 && N >= 1 && K >= 1, "gemm_gflops: expected M, N, K >= 1, got M=", M, ", N=", N,
                 ", K=", K);
  CF_CHECK_VALUE(repeats >= 1, "gemm_gflops: expected repeats >= 1, got ", repeats);
  const int64_t limit = int64_t{1} << 31;
  CF_CHECK_VALUE(M <= limit / N && N <= limit / K && M <= limit / K,
                 "gemm_gflops: matrices too large (each of M*N, N*K, M*K must be <= 2^31), got M=", M, ", N=", N,
                 ", K=", K);
  std::vector<float> a(static_cast<size_t>(M * K)), b(static_cast<size_t>(K * N)), c(static_cast<size_t>(M * N));
  // Deterministic values in [-0.5, 0.5): no denormals, no overflow.
  uint32_t s = 12345u;
  auto next = [&s]() {
    s = s * 1664525u + 1013904223u;
    return static_cast<float>(s >> 8) * (1.0f / 16777216.0f) - 0.5f;
  };
  for (float& x : a) x = next();
  for (float& x : b) x = next();
  gemm(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N);
  std::vector<double> times(static_cast<size_t>(repeats));
  for (int r = 0; r < repeats; ++r) {
    const Clock::time_point t0 = Clock::now();
    gemm(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N);
    times[static_cast<size_t>(r)] = seconds_since(t0);
  }
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  const double median = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
  return 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) / median * 1e-9;
}

}  // namespace cpuformer
