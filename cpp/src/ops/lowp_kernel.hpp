// Private: the bodies of the low-precision GEMM kernels (see lowp.hpp and
// ops/packed_weight.hpp for the contract and the packed layout).
//
// One driver (this file), several tile policies (lowp_tiles.hpp; the AMX
// ones in lowp_amx.cpp) over the formats of lowp_prep.hpp. A policy P supplies
//   kMR        rows of x per register tile (the tile is kMR x 32 outputs)
//   Acc        int32_t (int8) or float (bf16)
//   kUnsignedA int8 only: activations stored as q + 128 (u8, for vpdpbusd),
//              corrected by W's compensation row; otherwise q as s8
//   prep       rounds one row of x into the kernel's activation format
//   tile<R>    acc[R][32] = Σ over all groups of x rows · one panel of W
// and the driver splits the work between threads (rows of x, or panels of W
// when x has few rows), walks blocks of panels that stay in L2, and applies
// the epilogue (int8 scales, bias, activation) as each tile completes.
//
// Policies exist for the instruction sets the including file is compiled
// for: always the scalar ones, AVX2 ones under __AVX2__, AVX-512 ones under
// __AVX512VNNI__ / __AVX512BF16__. Each including file instantiates only the
// policies of its own entry points (lowp_avx2.cpp the AVX2 ones even when a
// native build makes AVX-512 available), so the instruction set a kernel
// uses is the one its name says. Everything has internal linkage, as in
// gemm_driver.hpp: the linker can never share code between instruction sets.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "cpuformer/ops/activations.hpp"
#include "lowp.hpp"
#include "lowp_prep.hpp"   // panel geometry, activation rounding, bf16 panels
#include "lowp_tiles.hpp"  // the tile policies and peak probes
#ifdef _OPENMP
#include <omp.h>
#endif

namespace cpuformer {
namespace detail {
namespace {
namespace lowp {

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

constexpr int64_t kBlockBytes = 256 << 10;          // panels walked together (stay in L2)
constexpr int64_t kMinParallelWork = int64_t(1) << 18;  // multiply-adds below which one thread runs

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// Bytes per row of the rounded activations.
template <class P>
int64_t act_row_bytes(const LowpGemm& c) {
  return c.pgroups * kGroupBytes * (P::kStaged ? 2 : 1);  // staged: float32 instead of bf16
}

// Rows [m0, m1) of a transposed x (bf16), rounded into abuf: blocks of rows,
// so each block's output lines stay in L1 while the columns of x stream.
template <class P>
void prepare_transposed(const LowpGemm& c, int64_t m0, int64_t m1) {
  const int64_t lda = act_row_bytes<P>(c), Kp = c.pgroups * 2;
  constexpr int64_t kRows = 64;
#if defined(CPUFORMER_LOWP_BF16_AVX512)
  if constexpr (!P::kStaged) {
    // 16 groups x 16 rows at a time: rows 2g, 2g + 1 of x give the groups of
    // 16 consecutive output rows; a transpose turns them into 64-byte row runs.
    const int64_t groups = (c.cols + 1) / 2;
    for (int64_t g0 = 0; g0 < c.pgroups; g0 += 16) {
      for (int64_t mb = m0; mb < m1; mb += 16) {
        const int64_t n = imin(16, m1 - mb);
        const __mmask16 mask = first_lanes(n);
        __m512i r[16];
        for (int i = 0; i < 16; ++i) {
          const int64_t g = g0 + i;
          if (g >= groups) {
            r[i] = _mm512_setzero_si512();
            continue;
          }
          const float* s0 = c.x + 2 * g * c.ldx + mb;
          const __m512 a = _mm512_maskz_loadu_ps(mask, s0);
          const __m512 b = 2 * g + 1 < c.cols ? _mm512_maskz_loadu_ps(mask, s0 + c.ldx) : _mm512_setzero_ps();
          r[i] = bf16_pairs(a, b);
        }
        transpose16(r);
        for (int64_t i = 0; i < n; ++i) _mm512_store_si512(c.abuf + (mb + i) * lda + g0 * kGroupBytes, r[i]);
      }
    }
    return;
  }
#endif
  for (int64_t mb = m0; mb < m1; mb += kRows) {
    const int64_t me = imin(m1, mb + kRows);
    for (int64_t k = 0; k < c.cols; ++k) {
      const float* src = c.x + k * c.ldx;
      for (int64_t m = mb; m < me; ++m) {
        if constexpr (P::kStaged)
          reinterpret_cast<float*>(c.abuf + m * lda)[k] = from_bf16(to_bf16(src[m]));
        else
          reinterpret_cast<uint16_t*>(c.abuf + m * lda)[k] = to_bf16(src[m]);
      }
    }
    for (int64_t m = mb; m < me; ++m)
      for (int64_t k = c.cols; k < Kp; ++k) {
        if constexpr (P::kStaged)
          reinterpret_cast<float*>(c.abuf + m * lda)[k] = 0.0f;
        else
          reinterpret_cast<uint16_t*>(c.abuf + m * lda)[k] = 0;
      }
  }
}

template <class P>
void prepare(const LowpGemm& c, int64_t m0, int64_t m1) {
  const int64_t lda = act_row_bytes<P>(c);
  if constexpr (!P::kInt8) {
    if (c.xt) prepare_transposed<P>(c, m0, m1);
  }
  for (int64_t m = m0; m < m1 && !c.xt; ++m) {
    if constexpr (P::kInt8) {
      prep_int8<P::kUnsignedA>(c.x + m * c.ldx, c.cols, c.pgroups, c.abuf + m * lda, c.ascale + m);
    } else if constexpr (P::kStaged) {
      float* o = reinterpret_cast<float*>(c.abuf + m * lda);
      const float* x = c.x + m * c.ldx;
      for (int64_t k = 0; k < c.cols; ++k) o[k] = from_bf16(to_bf16(x[k]));
      for (int64_t k = c.cols; k < c.pgroups * 2; ++k) o[k] = 0.0f;
    } else {
      prep_bf16(c.x + m * c.ldx, c.cols, c.pgroups, c.abuf + m * lda);
    }
  }
  if (P::kFullTiles && m1 == c.M) {  // the last tile reads whole kMR-row blocks
    const int64_t end = (c.M + P::kMR - 1) / P::kMR * P::kMR;
    std::memset(c.abuf + c.M * lda, 0, static_cast<size_t>((end - c.M) * lda));
  }
}

template <class P, int R = P::kMR>
void tile_rows(int rows, const uint8_t* a, int64_t lda, const uint8_t* b, int64_t ng, typename P::Acc* acc) {
  if constexpr (P::kFullTiles) {
    P::template tile<P::kMR>(a, lda, b, ng, acc);
  } else if constexpr (R >= 1) {
    if (rows == R)
      P::template tile<R>(a, lda, b, ng, acc);
    else
      tile_rows<P, R - 1>(rows, a, lda, b, ng, acc);
  }
}

// Rows m .. m + R - 1, columns [col0, col0 + 32) of the output from acc[R][32].
template <class P>
void epilogue(const LowpGemm& c, const typename P::Acc* acc, int R, int64_t m, int64_t col0) {
  const int64_t j0 = imax(col0, c.o0), n = imin(col0 + kPanel, c.o1) - j0;
  const float* ws = P::kInt8 ? c.wscale + j0 : nullptr;
  const int32_t* comp = P::kInt8 && P::kUnsignedA ? c.comp + j0 : nullptr;
  const float* bias = c.bias ? c.bias + j0 : nullptr;
  for (int r = 0; r < R; ++r) {
    const typename P::Acc* in = acc + r * kPanel + (j0 - col0);
    float* y = c.out + (m + r) * c.ldo + (j0 - c.o0);
    if constexpr (P::kInt8) {
      const float sa = c.ascale[m + r];
      for (int64_t j = 0; j < n; ++j) {
        const int32_t s = P::kUnsignedA ? in[j] - comp[j] : in[j];
        y[j] = static_cast<float>(s) * (sa * ws[j]);
      }
    } else if (c.beta != 0.0f) {
      for (int64_t j = 0; j < n; ++j) y[j] = c.alpha * in[j] + c.beta * y[j];
    } else if (c.alpha != 1.0f) {
      for (int64_t j = 0; j < n; ++j) y[j] = c.alpha * in[j];
    } else {
      for (int64_t j = 0; j < n; ++j) y[j] = in[j];
    }
    if (bias)
      for (int64_t j = 0; j < n; ++j) y[j] += bias[j];
    if (c.act != Activation::None) activation_inplace(y, n, c.act);
  }
}

// Rows [m0, m1) x panels [p0, p1) on the calling thread.
// Floats of one staged panel (kStaged policies).
inline int64_t staged_panel_floats(const LowpGemm& c) { return c.pgroups * 2 * kPanel; }
// Panels walked together: their bytes stay in L2 (staged: as many widened
// panels as the staging area, lowp_stage_floats(), holds).
inline int64_t panel_block(const LowpGemm& c, bool staged) {
  if (staged) return lowp_stage_floats(c.pgroups) / staged_panel_floats(c);
  return imax(1, kBlockBytes / (c.pgroups * kPanelGroup));
}

// Rows [m0, m1) x panels [p0, p1) on the calling thread; `stage` is this
// thread's float32 staging area (kStaged policies).
template <class P>
void serial(const LowpGemm& c, int64_t m0, int64_t m1, int64_t p0, int64_t p1, float* stage = nullptr) {
  const int64_t lda = act_row_bytes<P>(c), panel_bytes = c.pgroups * kPanelGroup;
  const int64_t block = panel_block(c, P::kStaged);
  const int64_t ng = P::kFullTiles ? c.pgroups : c.groups;  // AMX steps whole 16-group tiles
  alignas(64) typename P::Acc acc[P::kMR * kPanel];
  // Whole tiles whose epilogue is at most "+ C": products go straight into C.
  [[maybe_unused]] const bool direct = P::kDirect && c.alpha == 1.0f && (c.beta == 0.0f || c.beta == 1.0f);
  P::thread_begin();
  for (int64_t pb = p0; pb < p1; pb += block) {
    const int64_t pe = imin(p1, pb + block);
    if constexpr (P::kStaged)
      for (int64_t p = pb; p < pe; ++p) P::stage(c.b + p * panel_bytes, c.groups, stage + (p - pb) * staged_panel_floats(c));
    for (int64_t m = m0; m < m1; m += P::kMR) {
      const int R = static_cast<int>(imin(P::kMR, m1 - m));
      for (int64_t p = pb; p < pe; ++p) {
        const uint8_t* bp = P::kStaged ? reinterpret_cast<const uint8_t*>(stage + (p - pb) * staged_panel_floats(c))
                                       : c.b + p * panel_bytes;
        const int64_t col0 = p * kPanel;
        if constexpr (P::kDirect) {
          if (direct && R == P::kMR && col0 >= c.o0 && col0 + kPanel <= c.o1) {
            float* y = c.out + m * c.ldo + (col0 - c.o0);
            P::tile_into(c.abuf + m * lda, lda, bp, ng, y, c.ldo, c.beta != 0.0f);
            if (c.bias || c.act != Activation::None) {
              for (int r = 0; r < R; ++r) {
                float* row = y + r * c.ldo;
                if (c.bias)
                  for (int j = 0; j < kPanel; ++j) row[j] += c.bias[col0 + j];
                if (c.act != Activation::None) activation_inplace(row, kPanel, c.act);
              }
            }
            continue;
          }
        }
        tile_rows<P>(R, c.abuf + m * lda, lda, bp, ng, acc);
        epilogue<P>(c, acc, R, m, col0);
      }
    }
  }
  P::thread_end();
}

template <class P>
void run(const LowpGemm& c, int nthreads) {
  const int64_t p0 = c.o0 / kPanel, p1 = (c.o1 + kPanel - 1) / kPanel, np = p1 - p0;
  const int64_t work = c.M * (c.o1 - c.o0) * c.cols;
  int nt = work < kMinParallelWork ? 1 : nthreads;
  // Enough rows for two tiles per thread: split them (each thread rounds its
  // own activations, no barrier); otherwise split the panels of W (decoding).
  const bool by_rows = c.M >= int64_t(2) * P::kMR * nt;
  if (!by_rows) nt = static_cast<int>(imin(nt, np));
  const int64_t stage_floats = P::kStaged ? lowp_stage_floats(c.pgroups) : 0;
  if (nt <= 1) {
    prepare<P>(c, 0, c.M);
    serial<P>(c, 0, c.M, p0, p1, c.stage);
    return;
  }
  if (by_rows) {
    const int64_t per = (c.M + nt - 1) / nt;
    const int64_t chunk = (per + P::kMR - 1) / P::kMR * P::kMR;
#pragma omp parallel num_threads(nt)
    {
      int t = 0;
#ifdef _OPENMP
      t = omp_get_thread_num();
#endif
      const int64_t lo = imin(c.M, t * chunk), hi = imin(c.M, lo + chunk);
      if (hi > lo) {
        prepare<P>(c, lo, hi);
        serial<P>(c, lo, hi, p0, p1, c.stage ? c.stage + t * stage_floats : nullptr);
      }
    }
    return;
  }
  prepare<P>(c, 0, c.M);
  const int64_t chunk = (np + nt - 1) / nt;
#pragma omp parallel num_threads(nt)
  {
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    const int64_t lo = imin(p1, p0 + t * chunk), hi = imin(p1, lo + chunk);
    if (hi > lo) serial<P>(c, 0, c.M, lo, hi, c.stage ? c.stage + t * stage_floats : nullptr);
  }
}

}  // namespace lowp
}  // namespace
}  // namespace detail
}  // namespace cpuformer

