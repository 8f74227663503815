// Packing, quantization and the dispatching product of ops/packed_weight.hpp.
// The kernels themselves live in lowp_kernel.hpp; this file builds the
// scalar ones (for the library's own target) and picks one per call from
// runtime/cpu.hpp's choice.
#include "cpuformer/ops/packed_weight.hpp"

#include <cstdlib>
#include <new>

#include "cpuformer/error.hpp"
#include "cpuformer/io/json.hpp"  // quote_for_message
#include "cpuformer/runtime/cpu.hpp"
#include "cpuformer/runtime/threads.hpp"
#include "gemm_packed.hpp"
#include "lowp_kernel.hpp"

namespace cpuformer {

namespace detail {
void lowp_int8_scalar(const LowpGemm& g, int nthreads) { lowp::run<lowp::ScalarInt8>(g, nthreads); }
void lowp_bf16_scalar(const LowpGemm& g, int nthreads) { lowp::run<lowp::ScalarBf16>(g, nthreads); }
float lowp_int8_peak_scalar(int64_t iters, float seed, double* ops) { return lowp::peak_int8_scalar(iters, seed, ops); }
float lowp_bf16_peak_scalar(int64_t iters, float seed, double* ops) { return lowp::peak_bf16_scalar(iters, seed, ops); }

void lowp_bf16_pack_scalar(uint8_t* dst, bool trans_b, const float* B, int64_t ldb, int64_t N, int64_t K,
                           int64_t pgroups, int64_t p0, int64_t p1) {
  lowp::pack_bf16_panels(dst, trans_b, B, ldb, N, K, pgroups, p0, p1);
}

LowpPackEntry lowp_bf16_pack_entry() {
#if defined(CPUFORMER_LOWP_X86)
  if (bf16_kernel() >= LowpKernel::Avx512) return lowp_bf16_pack_avx512;
#endif
  return lowp_bf16_pack_scalar;
}

LowpEntry lowp_entry(int dtype) {
  const bool i8 = dtype == static_cast<int>(DType::Int8);
  const LowpKernel k = i8 ? int8_kernel() : bf16_kernel();
#if defined(CPUFORMER_LOWP_X86)
  if (k == LowpKernel::Amx) return i8 ? lowp_int8_amx : lowp_bf16_amx;
  if (k == LowpKernel::Avx512) return i8 ? lowp_int8_avx512 : lowp_bf16_avx512;
  if (k == LowpKernel::Avx2) return i8 ? lowp_int8_avx2 : lowp_bf16_avx2;
#else
  (void)k;
#endif
  return i8 ? lowp_int8_scalar : lowp_bf16_scalar;
}

LowpPeak lowp_peak(int dtype) {
  const bool i8 = dtype == static_cast<int>(DType::Int8);
  const LowpKernel k = i8 ? int8_kernel() : bf16_kernel();
#if defined(CPUFORMER_LOWP_X86)
  if (k == LowpKernel::Amx) return i8 ? lowp_int8_peak_amx : lowp_bf16_peak_amx;
  if (k == LowpKernel::Avx512) return i8 ? lowp_int8_peak_avx512 : lowp_bf16_peak_avx512;
  if (k == LowpKernel::Avx2) return i8 ? lowp_int8_peak_avx2 : lowp_bf16_peak_avx2;
#else
  (void)k;
#endif
  return i8 ? lowp_int8_peak_scalar : lowp_bf16_peak_scalar;
}
}  // namespace detail

namespace {

using detail::lowp::kGroupBytes;
using detail::lowp::kPanelGroup;

std::shared_ptr<uint8_t> aligned_bytes(int64_t n) {
  const size_t bytes = static_cast<size_t>((n + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
}

// Byte offset of element (r, c) of W in the packed layout; esize 1 or 2.
inline int64_t packed_offset(const PackedWeight& w, int64_t r, int64_t c) {
  const int64_t g = w.group(), esize = kGroupBytes / g;
  return (r / kPanelRows) * w.panel_bytes() + (c / g) * kPanelGroup + (r % kPanelRows) * kGroupBytes + (c % g) * esize;
}

PackedWeight empty_packed(DType dtype, int64_t rows, int64_t cols) {
  CF_CHECK_VALUE(rows >= 1 && cols >= 1, "packed weight: expected a non-empty matrix, got [", rows, ", ", cols, "]");
  PackedWeight w;
  w.dtype = dtype;
  w.rows = rows;
  w.cols = cols;
  if (dtype == DType::Int8)
    CF_CHECK_VALUE(cols <= kInt8MaxCols, "int8 weights: at most ", kInt8MaxCols, " columns (in_features), got ", cols);
  w.data = aligned_bytes(w.bytes());
  return w;
}

// Parallel over rows of W for big matrices.
template <class F>
void for_rows(int64_t rows, int64_t cols, F&& f) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMinWork)
  for (int64_t r = 0; r < rows; ++r) f(r);
}

// A panel's rows are interleaved in 4-byte groups: row r's groups are 128
// bytes apart, starting at its panel and lane.
template <class T>
T* row_base(const PackedWeight& w, int64_t r) {
  return reinterpret_cast<T*>(w.data.get() + packed_offset(w, r, 0));
}

void finish_int8(PackedWeight& w) {
  w.comp.assign(static_cast<size_t>(w.rows), 0);
  for_rows(w.rows, w.cols, [&](int64_t r) {
    const int8_t* base = row_base<const int8_t>(w, r);
    int32_t s = 0;
    for (int64_t c = 0; c < w.cols; ++c) s += base[(c / 4) * kPanelGroup + c % 4];
    w.comp[static_cast<size_t>(r)] = 128 * s;
  });
}

}  // namespace

int64_t PackedWeight::nbytes() const {
  return (data ? bytes() : 0) + static_cast<int64_t>(scale.size() * sizeof(float) + comp.size() * sizeof(int32_t));
}

uint16_t float_to_bf16(float x) { return detail::lowp::to_bf16(x); }
float bf16_to_float(uint16_t b) { return detail::lowp::from_bf16(b); }

void quantize_rows_int8(const float* x, int64_t N, int64_t cols, int8_t* q, float* scale) {
  const int64_t groups = (cols + 3) / 4;
  std::vector<uint8_t> row(static_cast<size_t>(groups * 4));
  for (int64_t n = 0; n < N; ++n) {
    detail::lowp::prep_int8<false>(x + n * cols, cols, groups, row.data(), scale + n);
    std::memcpy(q + n * cols, row.data(), static_cast<size_t>(cols));
  }
}

bool float32_prepack_available() { return detail::packed_gemm_available(); }

int64_t packed_row_align(const PackedWeight& w) { return w.dtype == DType::Float32 ? detail::prepack_align() : 1; }

PackedWeight pack_weight(DType dtype, const float* w, int64_t rows, int64_t cols, int64_t ldw) {
  if (dtype == DType::Float32) {
    CF_CHECK_STATE(float32_prepack_available(), "pack_weight: float32 needs a packed GEMM kernel, and this process "
                   "uses Eigen");
    CF_CHECK_VALUE(rows >= 1 && cols >= 1, "pack_weight: expected a non-empty matrix, got [", rows, ", ", cols, "]");
    PackedWeight p;
    p.dtype = DType::Float32;
    p.rows = rows;
    p.cols = cols;
    p.kernel = static_cast<int>(gemm_kernel());
    p.npad = (rows + detail::prepack_align() - 1) / detail::prepack_align() * detail::prepack_align();
    p.data = aligned_bytes(detail::prepack_floats(rows, cols) * int64_t(sizeof(float)));
    detail::prepack_weight(w, ldw, rows, cols, reinterpret_cast<float*>(p.data.get()));
    return p;
  }
  PackedWeight p = empty_packed(dtype, rows, cols);
  if (dtype == DType::BFloat16) {
    for_rows(rows, cols, [&](int64_t r) {
      uint8_t* base = p.data.get() + packed_offset(p, r, 0);
      const float* src = w + r * ldw;
      for (int64_t c = 0; c < cols; ++c) {
        const uint16_t b = float_to_bf16(src[c]);
        std::memcpy(base + (c / 2) * kPanelGroup + (c % 2) * 2, &b, 2);
      }
    });
    return p;
  }
  p.scale.assign(static_cast<size_t>(rows), 1.0f);
  int64_t bad_row = -1;
  const int64_t groups = (cols + 3) / 4;
  for_rows(rows, cols, [&](int64_t r) {
    std::vector<uint8_t> q(static_cast<size_t>(groups * 4));
    float s = 0.0f;
    detail::lowp::prep_int8<false>(w + r * ldw, cols, groups, q.data(), &s);
    if (std::isnan(s)) {
#pragma omp critical(cpuformer_pack_weight)
      bad_row = bad_row < 0 || r < bad_row ? r : bad_row;
      return;
    }
    if (s > 0.0f) p.scale[static_cast<size_t>(r)] = s;  // else a zero row: q = 0 with scale 1
    int8_t* base = row_base<int8_t>(p, r);
    for (int64_t c = 0; c < cols; ++c) base[(c / 4) * kPanelGroup + c % 4] = static_cast<int8_t>(q[c]);
  });
  CF_CHECK_VALUE(bad_row < 0, "cannot quantize to int8: row ", bad_row, " of the [", rows, ", ", cols,
                 "] weight holds NaN or Inf");
  finish_int8(p);
  return p;
}

PackedWeight pack_int8(const int8_t* q, const float* scale, int64_t rows, int64_t cols, const char* what) {
  for (int64_t r = 0; r < rows; ++r)
    CF_CHECK_VALUE(std::isfinite(scale[r]) && scale[r] > 0.0f, what, ": scale of row ", r,
                   " must be finite and > 0, got ", scale[r]);
  for (int64_t i = 0; i < rows * cols; ++i)
    CF_CHECK_VALUE(q[i] != -128, what, ": int8 value -128 at flat position ", i, " (quantized weights are in [-127, 127])");
  PackedWeight p = empty_packed(DType::Int8, rows, cols);
  p.scale.assign(scale, scale + rows);
  for_rows(rows, cols, [&](int64_t r) {
    int8_t* base = row_base<int8_t>(p, r);
    for (int64_t c = 0; c < cols; ++c) base[(c / 4) * kPanelGroup + c % 4] = q[r * cols + c];
  });
  finish_int8(p);
  return p;
}

PackedWeight pack_bf16(const uint16_t* w, int64_t rows, int64_t cols) {
  PackedWeight p = empty_packed(DType::BFloat16, rows, cols);
  for_rows(rows, cols, [&](int64_t r) {
    uint16_t* base = row_base<uint16_t>(p, r);
    for (int64_t c = 0; c < cols; ++c) base[(c / 2) * (kPanelGroup / 2) + c % 2] = w[r * cols + c];
  });
  return p;
}

void unpack_int8(const PackedWeight& w, int8_t* q) {
  CF_CHECK_VALUE(w.dtype == DType::Int8 && w.defined(), "unpack_int8: not an int8 weight");
  for_rows(w.rows, w.cols, [&](int64_t r) {
    const int8_t* base = row_base<const int8_t>(w, r);
    for (int64_t c = 0; c < w.cols; ++c) q[r * w.cols + c] = base[(c / 4) * kPanelGroup + c % 4];
  });
}

void unpack_bf16(const PackedWeight& w, uint16_t* out) {
  CF_CHECK_VALUE(w.dtype == DType::BFloat16 && w.defined(), "unpack_bf16: not a bfloat16 weight");
  for_rows(w.rows, w.cols, [&](int64_t r) {
    const uint16_t* base = row_base<const uint16_t>(w, r);
    for (int64_t c = 0; c < w.cols; ++c) out[r * w.cols + c] = base[(c / 2) * (kPanelGroup / 2) + c % 2];
  });
}

namespace {

void dequantize_row(const PackedWeight& w, int64_t r, float* out) {
  if (w.dtype == DType::Int8) {
    const int8_t* base = row_base<const int8_t>(w, r);
    const float s = w.scale[static_cast<size_t>(r)];
    for (int64_t c = 0; c < w.cols; ++c) out[c] = s * static_cast<float>(base[(c / 4) * kPanelGroup + c % 4]);
  } else {
    const uint16_t* base = row_base<const uint16_t>(w, r);
    for (int64_t c = 0; c < w.cols; ++c) out[c] = bf16_to_float(base[(c / 2) * (kPanelGroup / 2) + c % 2]);
  }
}

}  // namespace

void dequantize_weight(const PackedWeight& w, float* out) {
  CF_CHECK_VALUE(w.defined() && w.dtype != DType::Float32, "dequantize_weight: not a bfloat16 or int8 weight");
  for_rows(w.rows, w.cols, [&](int64_t r) { dequantize_row(w, r, out + r * w.cols); });
}

void dequantize_rows(const PackedWeight& w, const int64_t* ids, int64_t n, float* out) {
  CF_CHECK_VALUE(w.defined() && w.dtype != DType::Float32, "dequantize_rows: not a bfloat16 or int8 weight");
  for_rows(n, w.cols, [&](int64_t i) { dequantize_row(w, ids[i], out + i * w.cols); });
}

namespace {

// Per-thread scratch, grown on demand.
struct LowpScratch {
  std::shared_ptr<uint8_t> bytes;
  int64_t capacity = 0;
  uint8_t* get(int64_t n) {
    if (n > capacity) {
      bytes = aligned_bytes(n);
      capacity = n;
    }
    return bytes.get();
  }
};
thread_local LowpScratch tl_scratch[detail::kLowpScratchSlots];

}  // namespace

uint8_t* detail::lowp_scratch(int slot, int64_t bytes) { return tl_scratch[slot].get(bytes); }

void packed_linear_forward(float* out, int64_t ldo, const float* x, int64_t ldx, const PackedWeight& w,
                           const float* bias, int64_t N, Activation act, int64_t o0, int64_t o1) {
  CF_CHECK_VALUE(w.defined(), "packed_linear_forward: the weight is not packed");
  if (o1 < 0) o1 = w.rows;
  CF_CHECK_VALUE(0 <= o0 && o0 < o1 && o1 <= w.rows, "packed_linear_forward: rows [", o0, ", ", o1,
                 ") out of range for a weight of ", w.rows, " rows");
  if (N <= 0) return;
  if (w.dtype == DType::Float32) {
    CF_CHECK_STATE(w.kernel == static_cast<int>(gemm_kernel()), "packed_linear_forward: the float32 weight was "
                   "packed for another GEMM kernel");
    CF_CHECK_VALUE(o0 % detail::prepack_align() == 0, "packed_linear_forward: row offset ", o0,
                   " is not a multiple of ", detail::prepack_align());
    detail::packed_gemm_prepacked(N, o0, o1, w.cols, x, ldx, reinterpret_cast<const float*>(w.data.get()), w.npad,
                                  out, ldo, call_threads(), bias, act);
    return;
  }
  const int64_t groups = w.groups();
  const int nthreads = call_threads();
  // Activations (rows rounded up to 32 for the AMX tiles), their (int8) row
  // scales and (bf16) the staging areas, in one per-thread buffer.
  const int64_t abytes = detail::lowp_activation_bytes(N, w.panel_groups());
  const int64_t sbytes = (N * static_cast<int64_t>(sizeof(float)) + 63) / 64 * 64;
  const int64_t stage = w.dtype == DType::BFloat16 ? detail::lowp_stage_floats(w.panel_groups()) * nthreads : 0;
  uint8_t* scratch = detail::lowp_scratch(0, abytes + sbytes + stage * static_cast<int64_t>(sizeof(float)));
  detail::LowpGemm g;
  g.b = w.data.get();
  g.wscale = w.dtype == DType::Int8 ? w.scale.data() : nullptr;
  g.comp = w.dtype == DType::Int8 ? w.comp.data() : nullptr;
  g.groups = groups;
  g.pgroups = w.panel_groups();
  g.cols = w.cols;
  g.x = x;
  g.ldx = ldx;
  g.M = N;
  g.o0 = o0;
  g.o1 = o1;
  g.out = out;
  g.ldo = ldo;
  g.bias = bias;
  g.act = act;
  g.abuf = scratch;
  g.ascale = reinterpret_cast<float*>(scratch + abytes);
  g.stage = stage ? reinterpret_cast<float*>(scratch + abytes + sbytes) : nullptr;
  detail::lowp_entry(static_cast<int>(w.dtype))(g, nthreads);
}

}  // namespace cpuformer
