// Machine throughput probes for the benchmark harness (bench/): the FP32
// fused-multiply-add peak of this machine and the throughput of our GEMM.
// Both use the library's thread pool (set_num_threads) and the instruction
// set of the GEMM kernel in use (runtime/cpu.hpp), so they measure what the
// kernels can reach, not a theoretical datasheet.
#pragma once
#include <cstdint>

#include "cpuformer/ops/packed_weight.hpp"

namespace cpuformer {

// FP32 FMA peak in GFLOP/s (one FMA = 2 FLOP per lane), measured for about
// `seconds` with every thread running many independent FMA chains held in
// vector registers (at the packed GEMM kernel's instruction set, AVX-512 or
// AVX2+FMA; without one, the widest compiled in: AVX-512, AVX2+FMA, NEON, or
// plain vectors) until a shared deadline; FLOPs actually done over
// wall time, best of three trials. A busy machine lowers it (preempted
// threads do less work), as it lowers everything else. seconds in (0, 60]
// (ValueError otherwise).
double fma_peak_gflops(double seconds);

// Throughput of gemm() on C[M,N] = A[M,K] · B[K,N] (row-major, no
// transposes, beta = 0) in GFLOP/s, 2·M·N·K FLOP per call: one untimed
// warm-up call, then the median of `repeats` timed calls. M, N, K, repeats
// >= 1 and M·N, N·K, M·K <= 2^31 (ValueError otherwise).
double gemm_gflops(int64_t M, int64_t N, int64_t K, int repeats);

// The low-precision counterparts (ops/packed_weight.hpp), dtype bfloat16 or
// int8: the peak of the dot-product step of the kernel in use (int8_kernel(),
// bf16_kernel()), measured like fma_peak_gflops, in G(FL)OP/s with 2
// operations per multiply-add; and the throughput of packed_linear_forward
// on x[M, K] · W[N, K]ᵀ (W packed once, outside the timing).
double lowp_peak_gops(DType dtype, double seconds);
double lowp_gemm_gops(DType dtype, int64_t M, int64_t N, int64_t K, int repeats);

}  // namespace cpuformer
