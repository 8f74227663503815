#include "cpuformer/runtime/peak.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "cpuformer/error.hpp"
#include "cpuformer/ops/gemm.hpp"

#include "cpuformer/ops/packed_weight.hpp"
#include "cpuformer/runtime/cpu.hpp"
#include "../ops/lowp.hpp"
#include "fma_chains.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace cpuformer {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The chains at the instruction set of the GEMM kernel in use (a
// runtime-dispatch build runs them from fma_peak_avx2.cpp or
// fma_peak_avx512.cpp), so the probe measures the peak the GEMM can reach.
float run_chains(int64_t iters, float seed, double* flops_per_iteration) {
#if defined(CPUFORMER_GEMM_DISPATCH)
  switch (gemm_kernel()) {
    case GemmKernel::Avx512:
      return detail::fma_chains_avx512(iters, seed, flops_per_iteration);
    case GemmKernel::Avx2:
      return detail::fma_chains_avx2(iters, seed, flops_per_iteration);
    default:
      break;
  }
#endif
  *flops_per_iteration = detail::fma_chains::kFlopsPerIteration;
  return detail::fma_chains::run(iters, seed);
}

using Chains = float (*)(int64_t iters, float seed, double* ops_per_iteration);

// One timed trial of about `seconds`: every thread runs chunks of `chains`
// until a shared deadline and counts its own iterations, so a thread that
// the OS preempts simply contributes less. Returns G(FL)OP/s over the wall
// time of the whole parallel region (thread start-up included).
double chains_trial(Chains run_chains, double seconds, float* sink) {
  constexpr int64_t kChunk = 1 << 14;  // ~0.1 ms per chunk: clock reads are negligible
  const Clock::time_point t0 = Clock::now();
  const Clock::time_point deadline = t0 + std::chrono::duration_cast<Clock::duration>(
                                               std::chrono::duration<double>(seconds));
  double flops = 0;
  run_chains(0, 1.0f, &flops);  // FLOP per iteration only
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
      double unused;
      seed = run_chains(kChunk, seed, &unused);
      iters += static_cast<double>(kChunk);
    } while (Clock::now() < deadline);
    total += seed;
  }
  const double dt = seconds_since(t0);
  *sink += total;
  return flops * iters / dt * 1e-9;
}

// n deterministic values in [-0.5, 0.5): no denormals, no overflow.
std::vector<float> probe_values(int64_t n, uint32_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<float>(seed >> 8) * (1.0f / 16777216.0f) - 0.5f;
  }
  return v;
}

// One untimed call, then the median wall time of `repeats` calls of fn.
template <class F>
double median_seconds(F&& fn, int repeats) {
  fn();
  std::vector<double> times(static_cast<size_t>(repeats));
  for (int r = 0; r < repeats; ++r) {
    const Clock::time_point t0 = Clock::now();
    fn();
    times[static_cast<size_t>(r)] = seconds_since(t0);
  }
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  return n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
}

double best_of_trials(Chains chains, double seconds) {
  float sink = 0;
  // A short untimed trial wakes the thread pool and lets clocks ramp up.
  chains_trial(chains, std::min(0.02, seconds / 4), &sink);
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) best = std::max(best, chains_trial(chains, seconds / 3, &sink));
  // `sink` is finite by construction; testing it keeps the work observable.
  return std::isfinite(sink) ? best : 0.0;
}

}  // namespace

double fma_peak_gflops(double seconds) {
  CF_CHECK_VALUE(std::isfinite(seconds) && seconds > 0 && seconds <= 60,
                 "fma_peak_gflops: expected 0 < seconds <= 60, got ", seconds);
  return best_of_trials(run_chains, seconds);
}

double lowp_peak_gops(DType dtype, double seconds) {
  CF_CHECK_VALUE(std::isfinite(seconds) && seconds > 0 && seconds <= 60,
                 "lowp_peak_gops: expected 0 < seconds <= 60, got ", seconds);
  CF_CHECK_VALUE(dtype != DType::Float32, "lowp_peak_gops: dtype must be bfloat16 or int8 (fma_peak_gflops "
                 "measures float32)");
  return best_of_trials(detail::lowp_peak(static_cast<int>(dtype)), seconds);
}

double lowp_gemm_gops(DType dtype, int64_t M, int64_t N, int64_t K, int repeats) {
  CF_CHECK_VALUE(dtype != DType::Float32, "lowp_gemm_gops: dtype must be bfloat16 or int8");
  CF_CHECK_VALUE(M >= 1 && N >= 1 && K >= 1 && repeats >= 1, "lowp_gemm_gops: expected M, N, K, repeats >= 1, got M=",
                 M, ", N=", N, ", K=", K, ", repeats=", repeats);
  const int64_t limit = int64_t{1} << 31;
  CF_CHECK_VALUE(M <= limit / N && N <= limit / K && M <= limit / K,
                 "lowp_gemm_gops: matrices too large (each of M*N, N*K, M*K must be <= 2^31)");
  std::vector<float> x = probe_values(M * K, 777u), w = probe_values(N * K, 778u), y(static_cast<size_t>(M * N));
  const PackedWeight pw = pack_weight(dtype, w.data(), N, K, K);
  const double median =
      median_seconds([&] { packed_linear_forward(y.data(), N, x.data(), K, pw, nullptr, M); }, repeats);
  return 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) / median * 1e-9;
}

double gemm_gflops(int64_t M, int64_t N, int64_t K, int repeats) {
  CF_CHECK_VALUE(M >= 1 && N >= 1 && K >= 1, "gemm_gflops: expected M, N, K >= 1, got M=", M, ", N=", N,
                 ", K=", K);
  CF_CHECK_VALUE(repeats >= 1, "gemm_gflops: expected repeats >= 1, got ", repeats);
  const int64_t limit = int64_t{1} << 31;
  CF_CHECK_VALUE(M <= limit / N && N <= limit / K && M <= limit / K,
                 "gemm_gflops: matrices too large (each of M*N, N*K, M*K must be <= 2^31), got M=", M, ", N=", N,
                 ", K=", K);
  std::vector<float> a = probe_values(M * K, 12345u), b = probe_values(K * N, 54321u), c(static_cast<size_t>(M * N));
  const double median = median_seconds(
      [&] { gemm(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N); }, repeats);
  return 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) / median * 1e-9;
}

}  // namespace cpuformer
