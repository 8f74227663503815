// Private: the low-precision GEMM behind ops/packed_weight.hpp. One call's
// operands, and the entry point of each kernel (lowp_kernel.hpp holds their
// bodies; lowp_scalar.cpp, lowp_avx2.cpp and lowp_avx512.cpp build them per
// instruction set; runtime/cpu.hpp picks one).
#pragma once
#include <cstdint>

#include "cpuformer/ops/activations.hpp"

namespace cpuformer {
namespace detail {

// out[m, j - o0] = act(alpha · x[m, :] · W[j, :] + beta · out[m, j - o0] + bias[j])
// for m < M, o0 <= j < o1 (beta == 0: out is only written).
struct LowpGemm {
  const uint8_t* b;       // the packed panels (ops/packed_weight.hpp)
  const float* wscale;    // int8: [rows of W]
  const int32_t* comp;    // int8: [rows of W]
  int64_t groups;         // 4-byte groups with data per row of W (padded cols / g)
  int64_t pgroups;        // groups per panel (a multiple of 16); also the activation row length / 4
  int64_t cols;           // K, the real column count of W
  const float* x;         // [M, ldx], or with xt (bf16 only) stored transposed: x[m, k] at x[k * ldx + m]
  int64_t ldx;
  bool xt = false;
  int64_t M;
  int64_t o0, o1;
  float* out;             // [M, ldo]
  int64_t ldo;
  const float* bias;      // indexed by row of W, or null
  Activation act;
  float alpha = 1.0f, beta = 0.0f;  // bf16 only (int8 keeps 1 and 0)
  uint8_t* abuf;          // scratch, round_up(M, 32) rows of pgroups * 4 bytes, 64-byte aligned: the
                          // rounded activations (rows past M zeroed by kernels that read them)
  float* ascale;          // scratch, M floats: int8 row scales
  float* stage;           // scratch, lowp_stage_floats() per thread (bf16 kernels that widen W's panels), or null
};

// Scratch the kernels need per call: activation bytes (rows rounded up to
// 32, float32 for the staged bf16 kernel: the larger) and float32 staging
// floats per thread (a block of panels widened, at most ~512 KB).
inline int64_t lowp_activation_bytes(int64_t M, int64_t pgroups) { return (M + 31) / 32 * 32 * pgroups * 8; }
inline int64_t lowp_stage_floats(int64_t pgroups) {
  const int64_t panel = pgroups * 2 * 32;  // floats of one widened panel
  const int64_t block = (256 << 10) / (panel * 2);
  return (block > 1 ? block : 1) * panel;
}

// This thread's grow-only, 64-byte aligned scratch buffer number `slot`
// (< kLowpScratchSlots): 0 for packed_linear_forward's activations, 1 and 2
// for gemm_bf16's packed op(B) and rounded op(A). Kept between calls.
constexpr int kLowpScratchSlots = 3;
uint8_t* lowp_scratch(int slot, int64_t bytes);

// A kernel: rounds the activations into abuf/ascale, then the product.
using LowpEntry = void (*)(const LowpGemm&, int nthreads);
// Packs panels [p0, p1) of op(B)ᵀ [N, K] into bf16 panels with pgroups groups
// each (lowp_prep.hpp: pack_bf16_panels); op(B) = B stored [N, K] when
// trans_b, else Bᵀ of B stored [K, N].
using LowpPackEntry = void (*)(uint8_t* dst, bool trans_b, const float* B, int64_t ldb, int64_t N, int64_t K,
                               int64_t pgroups, int64_t p0, int64_t p1);
void lowp_bf16_pack_scalar(uint8_t* dst, bool trans_b, const float* B, int64_t ldb, int64_t N, int64_t K,
                           int64_t pgroups, int64_t p0, int64_t p1);
// The packer for the bf16 kernel runtime/cpu.hpp chose (AVX-512 with the
// AVX-512 and AMX kernels).
LowpPackEntry lowp_bf16_pack_entry();

void lowp_int8_scalar(const LowpGemm& g, int nthreads);
void lowp_bf16_scalar(const LowpGemm& g, int nthreads);
// The peak probes (lowp_tiles.hpp): `iters` iterations of independent
// dot-product chains; *ops = operations per iteration.
using LowpPeak = float (*)(int64_t iters, float seed, double* ops);
float lowp_int8_peak_scalar(int64_t iters, float seed, double* ops);
float lowp_bf16_peak_scalar(int64_t iters, float seed, double* ops);
// The entry and probe runtime/cpu.hpp chose for int8 or bf16 (dtype 2 or 1).
LowpEntry lowp_entry(int dtype);
LowpPeak lowp_peak(int dtype);

#if defined(CPUFORMER_LOWP_X86)
// AMX (lowp_amx.cpp): 32 x 32 tiles of TDPBSSD / TDPBF16PS; calls with
// fewer than 16 rows go to the AVX-512 kernels.
void lowp_int8_amx(const LowpGemm& g, int nthreads);
void lowp_bf16_amx(const LowpGemm& g, int nthreads);
float lowp_int8_peak_amx(int64_t iters, float seed, double* ops);
float lowp_bf16_peak_amx(int64_t iters, float seed, double* ops);
float lowp_int8_peak_avx2(int64_t iters, float seed, double* ops);
float lowp_bf16_peak_avx2(int64_t iters, float seed, double* ops);
float lowp_int8_peak_avx512(int64_t iters, float seed, double* ops);
float lowp_bf16_peak_avx512(int64_t iters, float seed, double* ops);
void lowp_int8_avx2(const LowpGemm& g, int nthreads);
void lowp_bf16_avx2(const LowpGemm& g, int nthreads);
void lowp_int8_avx512(const LowpGemm& g, int nthreads);  // AVX512-VNNI
void lowp_bf16_avx512(const LowpGemm& g, int nthreads);  // AVX512-BF16
void lowp_bf16_pack_avx512(uint8_t* dst, bool trans_b, const float* B, int64_t ldb, int64_t N, int64_t K,
                           int64_t pgroups, int64_t p0, int64_t p1);
#endif

}  // namespace detail
}  // namespace cpuformer
