// Weight matrices in low precision (int8, bfloat16), packed once in the
// layout the low-precision GEMM kernels read, and the product with float32
// activations.
//
// A PackedWeight holds a matrix W [rows, cols]: a Linear's weight [out, in],
// an embedding table [V, C]. The kernels compute out = x · Wᵀ, so the rows
// of W are the output columns. Layout (the same for every instruction set):
//   panels of kPanelRows = 32 rows of W; inside a panel, groups of g
//   consecutive columns (g = 4 for int8, 2 for bf16: 4 bytes either way),
//   each group holding those g columns of all 32 rows, row after row:
//     data[panel][col / g][row % 32][col % g]
//   a panel holds a multiple of 16 groups (64 bytes of each row: one AMX
//   tile row); rows past `rows` and columns past `cols` are zero.
// Numerics (the choice of README "Precision"):
//   int8  W[r, c] ≈ scale[r] · q[r, c], q in [-127, 127], symmetric per row
//         (per output channel), scale = max_c |W[r, c]| / 127 (1 for a zero
//         row). Activations are quantized per row of x the same way at each
//         call; the products accumulate exactly in int32 and are scaled back
//         to float32 (then bias, then activation).
//   bf16  W rounded to bfloat16 (nearest even); activations rounded the same
//         way at each call; products accumulate in float32.
//   float32 (a pre-packed copy for speed, never the only one): the layout
//         the float32 GEMM kernel chosen at run time reads (ops/gemm_packed.hpp:
//         prepack_weight): panels of that kernel's kNR rows of W, K-blocked;
//         `npad` = rows rounded up to kNR, `kernel` = which kernel packed it.
// Kernels are chosen at run time (runtime/cpu.hpp: int8_kernel(),
// bf16_kernel()); every int8 kernel gives bit-identical results, the bf16
// kernels agree to float rounding.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cpuformer/ops/activations.hpp"
#include "cpuformer/runtime/dtype.hpp"

namespace cpuformer {

constexpr int64_t kPanelRows = 32;
// int8 rows are limited so the int32 accumulators cannot overflow
// (255 · 127 · 65536 < 2^31).
constexpr int64_t kInt8MaxCols = 65536;

struct PackedWeight {
  DType dtype = DType::Float32;  // BFloat16 or Int8 once packed
  int64_t rows = 0, cols = 0;
  std::shared_ptr<uint8_t> data;  // 64-byte aligned, bytes() long
  std::vector<float> scale;       // int8: [rows]
  std::vector<int32_t> comp;      // int8: [rows], 128 · Σ_c q[r, c] (for kernels with unsigned activations)
  int64_t npad = 0;               // float32: rows rounded up to the kernel's panel width
  int kernel = 0;                 // float32: the GemmKernel (runtime/cpu.hpp) it was packed for

  bool defined() const { return data != nullptr; }
  // Columns per 4-byte group: 4 (int8) or 2 (bf16).
  int64_t group() const { return dtype == DType::Int8 ? 4 : 2; }
  int64_t groups() const { return (cols + group() - 1) / group(); }
  // Groups per panel: groups() rounded up to a multiple of 16.
  int64_t panel_groups() const { return (groups() + 15) / 16 * 16; }
  int64_t panels() const { return (rows + kPanelRows - 1) / kPanelRows; }
  int64_t panel_bytes() const { return panel_groups() * kPanelRows * 4; }
  int64_t bytes() const {
    return dtype == DType::Float32 ? npad * cols * int64_t(sizeof(float)) : panels() * panel_bytes();
  }
  // Memory held (data, scales, compensation).
  int64_t nbytes() const;
};

// Quantizes and packs W [rows, cols] (row-major, leading dimension ldw).
// Float32: the pre-packed float32 layout (needs float32_prepack_available()).
// ValueError when W holds
// NaN or Inf (int8; bf16 keeps them), or for int8 with cols > kInt8MaxCols.
PackedWeight pack_weight(DType dtype, const float* w, int64_t rows, int64_t cols, int64_t ldw);
// From stored quantized values (a checkpoint): q [rows, cols] in [-127, 127]
// with scale [rows] finite and > 0 (ValueError naming `what` otherwise).
PackedWeight pack_int8(const int8_t* q, const float* scale, int64_t rows, int64_t cols, const char* what);
// From bfloat16 bit patterns w [rows, cols].
PackedWeight pack_bf16(const uint16_t* w, int64_t rows, int64_t cols);

// Whether this process has a float32 GEMM kernel that reads pre-packed
// weights (runtime/cpu.hpp: gemm_kernel() is not Eigen).
bool float32_prepack_available();
// The row alignment o0 must have for packed_linear_forward on a float32
// PackedWeight (the kernel's panel width; 1 for bfloat16 / int8).
int64_t packed_row_align(const PackedWeight& w);

// The stored form back (inverse of pack_int8 / pack_bf16).
void unpack_int8(const PackedWeight& w, int8_t* q);
void unpack_bf16(const PackedWeight& w, uint16_t* out);
// out [rows, cols] = the float32 values the kernels compute with.
void dequantize_weight(const PackedWeight& w, float* out);
// (Not for float32 PackedWeights: their module keeps the float32 values.)
// out[i, :] = W[ids[i], :] in float32 for i < n (an embedding lookup);
// every id in [0, rows) (checked by the caller).
void dequantize_rows(const PackedWeight& w, const int64_t* ids, int64_t n, float* out);

// out[N, o1 - o0] (leading dimension ldo) = act(x[N, cols] · W[o0:o1]ᵀ + bias[o0:o1]);
// x row-major with leading dimension ldx; bias indexed by row of W (null:
// none); o1 = -1 means rows. Multithreaded (threads split the rows of x or
// the panels of W). Allocation-free once its per-thread scratch has grown.
void packed_linear_forward(float* out, int64_t ldo, const float* x, int64_t ldx, const PackedWeight& w,
                           const float* bias, int64_t N, Activation act = Activation::None, int64_t o0 = 0,
                           int64_t o1 = -1);

// The activation rounding the kernels apply, for references and tests.
// int8, per row of x [N, cols]: amax = max |x|, scale = amax / 127,
// q = clamp(round_half_even(x · (127 / amax)), -127, 127); a zero row gives
// scale 0 and q 0; a row holding NaN or Inf gives scale NaN (its outputs are NaN).
void quantize_rows_int8(const float* x, int64_t N, int64_t cols, int8_t* q, float* scale);
// float32 -> bfloat16 bits, round to nearest even (NaN stays a quiet NaN).
uint16_t float_to_bf16(float x);
float bf16_to_float(uint16_t b);
// x[i] = bf16_to_float(float_to_bf16(x[i])) for i < n.
void round_bf16_inplace(float* x, int64_t n);

}  // namespace cpuformer
