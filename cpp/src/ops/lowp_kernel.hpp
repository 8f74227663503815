// Private: the bodies of the low-precision GEMM kernels (see lowp.hpp and
// ops/packed_weight.hpp for the contract and the packed layout).
//
// One driver, several tile policies. A policy P supplies
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
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "lowp.hpp"
#include "cpuformer/ops/activations.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // see gemm_kernel_avx512.hpp
#endif

namespace cpuformer {
namespace detail {
namespace {
namespace lowp {

constexpr int kPanel = 32;             // rows of W per panel = output columns per tile
constexpr int64_t kGroupBytes = 4;     // bytes per row of W per group
constexpr int64_t kPanelGroup = kPanel * kGroupBytes;
constexpr int64_t kBlockBytes = 256 << 10;          // panels walked together (stay in L2)
constexpr int64_t kMinParallelWork = int64_t(1) << 18;  // multiply-adds below which one thread runs

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---------------------------------------------------------------------------
// Activation rounding (ops/packed_weight.hpp: quantize_rows_int8, float_to_bf16)
// ---------------------------------------------------------------------------

inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float from_bf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// One row of x [K] -> q [groups * 4] (s8, or u8 = q + 128) and its scale.
template <bool kUnsigned>
inline void prep_int8(const float* x, int64_t K, int64_t groups, uint8_t* q, float* scale) {
  // max |x| as the largest bit pattern of |x|: for non-negative floats the
  // bits order like the values (Inf above every finite, NaN above Inf), and an
  // integer max reduction vectorises where a float one may not.
  uint32_t top = 0;
  for (int64_t k = 0; k < K; ++k) {
    uint32_t u;
    std::memcpy(&u, x + k, 4);
    u &= 0x7FFFFFFFu;
    top = u > top ? u : top;
  }
  const bool bad = top >= 0x7F800000u;  // NaN or Inf
  float amax;
  std::memcpy(&amax, &top, 4);
  const int64_t Kp = groups * kGroupBytes;
  const uint8_t zero = kUnsigned ? 128 : 0;
  if (bad || !(amax >= std::numeric_limits<float>::min())) {  // NaN/Inf, or zero/subnormal
    *scale = bad ? std::numeric_limits<float>::quiet_NaN() : 0.0f;
    std::memset(q, zero, static_cast<size_t>(Kp));
    return;
  }
  const float inv = 127.0f / amax;
  *scale = amax / 127.0f;
  constexpr float kMagic = 12582912.0f;  // 1.5 · 2^23: adding and subtracting it rounds half to even
  for (int64_t k = 0; k < K; ++k) {
    float t = (x[k] * inv + kMagic) - kMagic;
    t = t > 127.0f ? 127.0f : t;
    t = t < -127.0f ? -127.0f : t;
    const int v = static_cast<int>(t);
    q[k] = static_cast<uint8_t>(kUnsigned ? v + 128 : v);
  }
  for (int64_t k = K; k < Kp; ++k) q[k] = zero;
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
// ---- bf16 rounding and 4-byte-group transposes on AVX-512 (the same
// rounding as to_bf16: nearest even, NaN made quiet) ----

// bf16 bits of 16 floats, in the low half of each 32-bit lane.
inline __m512i bf16_bits(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)),
                                                _mm512_set1_epi32(0x7F800000));
  return _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
}
// Lanes i: bf16(a[i]) | bf16(b[i]) << 16 (a 4-byte group of two columns).
inline __m512i bf16_pairs(__m512 a, __m512 b) {
  return _mm512_or_si512(bf16_bits(a), _mm512_slli_epi32(bf16_bits(b), 16));
}
inline __mmask16 first_lanes(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }
// n <= 32 consecutive floats -> their bf16 values in order (16 groups); zero past n.
inline __m512i bf16_run(const float* p, int64_t n) {
  const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(n), p);
  const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(n > 16 ? n - 16 : 0), p + 16);
  const __m256i l16 = _mm512_cvtepi32_epi16(bf16_bits(lo)), h16 = _mm512_cvtepi32_epi16(bf16_bits(hi));
  return _mm512_inserti64x4(_mm512_castsi256_si512(l16), h16, 1);
}
// In-register transpose of a 16 x 16 matrix of 32-bit elements: r[i] lane j
// becomes r[j] lane i.
inline void transpose16(__m512i* r) {
  __m512i t[16], u[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 4; ++k) {  // u[4k + j], 128-bit lane L: column 4L + j of rows 4k .. 4k + 3
    u[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
    u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xDD);
    const __m512i w0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
    const __m512i w1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xDD);
    r[j] = _mm512_shuffle_i32x4(v0, w0, 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(v0, w0, 0xDD);
    r[4 + j] = _mm512_shuffle_i32x4(v1, w1, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(v1, w1, 0xDD);
  }
}
#define CPUFORMER_LOWP_BF16_AVX512 1
#endif

inline void prep_bf16(const float* x, int64_t K, int64_t groups, uint8_t* out) {
#if defined(CPUFORMER_LOWP_BF16_AVX512)
  for (int64_t k = 0; k < groups * 2; k += 32) {
    const int64_t n = K - k < 32 ? (K > k ? K - k : 0) : 32;
    _mm512_storeu_si512(out + 2 * k, bf16_run(x + k, n));
  }
#else
  uint16_t* o = reinterpret_cast<uint16_t*>(out);
  for (int64_t k = 0; k < K; ++k) o[k] = to_bf16(x[k]);
  for (int64_t k = K; k < groups * 2; ++k) o[k] = 0;
#endif
}

// op(B)ᵀ [N, K] packed into bf16 panels (ops/packed_weight.hpp's layout,
// pgroups groups per panel, padding zero): element (n, k) is B[n * ldb + k]
// when B is stored [N, K] (trans_b), B[k * ldb + n] when stored [K, N].
// Panels [p0, p1) only (callers split them between threads).
inline void pack_bf16_panels(uint8_t* dst, bool trans_b, const float* B, int64_t ldb, int64_t N, int64_t K,
                             int64_t pgroups, int64_t p0, int64_t p1) {
  const int64_t panel_bytes = pgroups * kPanelGroup, groups = (K + 1) / 2;
  for (int64_t p = p0; p < p1; ++p) {
    uint8_t* out = dst + p * panel_bytes;
    const int64_t n0 = p * kPanel, nr = N - n0 < kPanel ? N - n0 : kPanel;
#if defined(CPUFORMER_LOWP_BF16_AVX512)
    if (trans_b) {  // 16 rows x 16 groups at a time: round along the rows, transpose into groups
      for (int64_t g0 = 0; g0 < pgroups; g0 += 16) {
        const int64_t kn = K - 2 * g0;  // columns left from 2 * g0
        for (int h = 0; h < 2; ++h) {
          __m512i r[16];
          for (int i = 0; i < 16; ++i) {
            const int64_t row = 16 * h + i;
            r[i] = row < nr && kn > 0 ? bf16_run(B + (n0 + row) * ldb + 2 * g0, kn < 32 ? kn : 32)
                                      : _mm512_setzero_si512();
          }
          transpose16(r);
          for (int c = 0; c < 16; ++c) _mm512_store_si512(out + (g0 + c) * kPanelGroup + 64 * h, r[c]);
        }
      }
    } else {  // rows 2g and 2g + 1 of B are one group for 32 contiguous columns
      const __mmask16 m0 = first_lanes(nr), m1 = first_lanes(nr > 16 ? nr - 16 : 0);
      for (int64_t g = 0; g < pgroups; ++g) {
        uint8_t* o = out + g * kPanelGroup;
        if (g >= groups) {
          _mm512_store_si512(o, _mm512_setzero_si512());
          _mm512_store_si512(o + 64, _mm512_setzero_si512());
          continue;
        }
        const float* s0 = B + 2 * g * ldb + n0;
        const bool odd = 2 * g + 1 < K;
        const float* s1 = s0 + ldb;
        const __m512 z = _mm512_setzero_ps();
        _mm512_store_si512(o, bf16_pairs(_mm512_maskz_loadu_ps(m0, s0), odd ? _mm512_maskz_loadu_ps(m0, s1) : z));
        _mm512_store_si512(o + 64, bf16_pairs(_mm512_maskz_loadu_ps(m1, s0 + 16),
                                              odd ? _mm512_maskz_loadu_ps(m1, s1 + 16) : z));
      }
    }
#else
    uint16_t* o16 = reinterpret_cast<uint16_t*>(out);
    std::memset(out, 0, static_cast<size_t>(panel_bytes));
    for (int64_t r = 0; r < nr; ++r)
      for (int64_t k = 0; k < K; ++k)
        o16[(k >> 1) * 2 * kPanel + 2 * r + (k & 1)] = to_bf16(trans_b ? B[(n0 + r) * ldb + k] : B[k * ldb + n0 + r]);
    (void)groups;
#endif
  }
}

// Policies without the AMX extras: tiles of any height, no per-thread setup.
struct NoTileState {
  static constexpr bool kFullTiles = false;  // true: every tile computes kMR rows (rows past M are zero)
  // true: the tile reads panels widened to float32 by stage() (once per
  // thread and call, reused by every row tile) and activations as float32
  static constexpr bool kStaged = false;
  // true: tile_into(a, lda, b, ng, out, ldo, accumulate) writes a full kMR x 32
  // float32 tile straight into the output (or adds to it)
  static constexpr bool kDirect = false;
  static void thread_begin() {}
  static void thread_end() {}
};

struct Int8Prep : NoTileState {
  using Acc = int32_t;
  static constexpr bool kInt8 = true;
};
struct Bf16Prep : NoTileState {
  using Acc = float;
  static constexpr bool kInt8 = false;
  static constexpr bool kUnsignedA = false;
};

// ---------------------------------------------------------------------------
// Tile policies
// ---------------------------------------------------------------------------

// Plain C++: the reference every other policy must match (int8: exactly;
// bf16: each product is exact in float32, added odd element first, as
// vdpbf16ps does).
struct ScalarInt8 : Int8Prep {
  static constexpr int kMR = 4;
  static constexpr bool kUnsignedA = false;
  template <int R>
  static void tile(const uint8_t* a, int64_t lda, const uint8_t* b, int64_t ng, int32_t* acc) {
    for (int i = 0; i < R * kPanel; ++i) acc[i] = 0;
    for (int64_t g = 0; g < ng; ++g) {
      const int8_t* bg = reinterpret_cast<const int8_t*>(b + g * kPanelGroup);
      for (int r = 0; r < R; ++r) {
        const int8_t* ar = reinterpret_cast<const int8_t*>(a + r * lda + g * kGroupBytes);
        const int32_t a0 = ar[0], a1 = ar[1], a2 = ar[2], a3 = ar[3];
        int32_t* out = acc + r * kPanel;
        for (int j = 0; j < kPanel; ++j)
          out[j] += a0 * bg[4 * j] + a1 * bg[4 * j + 1] + a2 * bg[4 * j + 2] + a3 * bg[4 * j + 3];
      }
    }
  }
};

struct ScalarBf16 : Bf16Prep {
  static constexpr int kMR = 4;
  template <int R>
  static void tile(const uint8_t* a, int64_t lda, const uint8_t* b, int64_t ng, float* acc) {
    for (int i = 0; i < R * kPanel; ++i) acc[i] = 0.0f;
    for (int64_t g = 0; g < ng; ++g) {
      const uint16_t* bg = reinterpret_cast<const uint16_t*>(b + g * kPanelGroup);
      for (int r = 0; r < R; ++r) {
        const uint16_t* ar = reinterpret_cast<const uint16_t*>(a + r * lda + g * kGroupBytes);
        const float lo = from_bf16(ar[0]), hi = from_bf16(ar[1]);
        float* out = acc + r * kPanel;
        for (int j = 0; j < kPanel; ++j) {
          float s = out[j] + hi * from_bf16(bg[2 * j + 1]);
          out[j] = s + lo * from_bf16(bg[2 * j]);
        }
      }
    }
  }
};

#if defined(__AVX2__) && defined(__FMA__)
// AVX2: s8 activations; |a| (u8) times b with a's signs (s8) through
// vpmaddubsw (pair sums <= 2 · 127 · 127, no saturation), then vpmaddwd
// against ones: the exact 4-term dot product per int32 lane.
struct Avx2Int8 : Int8Prep {
  static constexpr int kMR = 2;
  static constexpr bool kUnsignedA = false;
  template <int R>
  static void tile(const uint8_t* a, int64_t lda, const uint8_t* b, int64_t ng, int32_t* acc) {
    __m256i c[R][4];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < 4; ++v) c[r][v] = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t g = 0; g < ng; ++g) {
      __m256i sa[R], ua[R];
      for (int r = 0; r < R; ++r) {
        sa[r] = _mm256_set1_epi32(load_i32(a + r * lda + g * kGroupBytes));
        ua[r] = _mm256_abs_epi8(sa[r]);
      }
      const uint8_t* bg = b + g * kPanelGroup;
      for (int v = 0; v < 4; ++v) {
        const __m256i bv = _mm256_load_si256(reinterpret_cast<const __m256i*>(bg + 32 * v));
        for (int r = 0; r < R; ++r) {
          const __m256i p = _mm256_maddubs_epi16(ua[r], _mm256_sign_epi8(bv, sa[r]));
          c[r][v] = _mm256_add_epi32(c[r][v], _mm256_madd_epi16(p, ones));
        }
      }
    }
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < 4; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * kPanel + 8 * v), c[r][v]);
  }
};

// AVX2 + FMA: bf16 pairs widened to float32 (the high element by masking,
// the low one by shifting), odd element first, as vdpbf16ps.
struct Avx2Bf16 : Bf16Prep {
  static constexpr int kMR = 2;
  template <int R>
  static void tile(const uint8_t* a, int64_t lda, const uint8_t* b, int64_t ng, float* acc) {
    __m256 c[R][4];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < 4; ++v) c[r][v] = _mm256_setzero_ps();
    const __m256i hi_mask = _mm256_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
    for (int64_t g = 0; g < ng; ++g) {
      __m256 ahi[R], alo[R];
      for (int r = 0; r < R; ++r) {
        const __m256i av = _mm256_set1_epi32(load_i32(a + r * lda + g * kGroupBytes));
        ahi[r] = _mm256_castsi256_ps(_mm256_and_si256(av, hi_mask));
        alo[r] = _mm256_castsi256_ps(_mm256_slli_epi32(av, 16));
      }
      const uint8_t* bg = b + g * kPanelGroup;
      for (int v = 0; v < 4; ++v) {
        const __m256i bv = _mm256_load_si256(reinterpret_cast<const __m256i*>(bg + 32 * v));
        const __m256 bhi = _mm256_castsi256_ps(_mm256_and_si256(bv, hi_mask));
        const __m256 blo = _mm256_castsi256_ps(_mm256_slli_epi32(bv, 16));
        for (int r = 0; r < R; ++r) {
          c[r][v] = _mm256_fmadd_ps(ahi[r], bhi, c[r][v]);
          c[r][v] = _mm256_fmadd_ps(alo[r], blo, c[r][v]);
        }
      }
    }
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < 4; ++v) _mm256_storeu_ps(acc + r * kPanel + 8 * v, c[r][v]);
  }
};

// AVX2 + FMA for bf16 products with many rows: each panel is widened to
// float32 once per call ([group][odd, even][32 rows of W]) and the
// activations are float32 rows holding bf16 values, so the inner loop is
// plain FMAs, as in the float32 kernel. The sums are those of Avx2Bf16
// (exact products, odd element first): bit-identical results.
struct Avx2Bf16Staged : Bf16Prep {
  static constexpr int kMR = 6;
  static constexpr bool kStaged = true;
  static constexpr int64_t kStagedGroupFloats = 2 * kPanel;
  static void stage(const uint8_t* panel, int64_t ng, float* out) {
    const __m256i hi_mask = _mm256_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
    for (int64_t g = 0; g < ng; ++g) {
      const uint8_t* src = panel + g * kPanelGroup;
      float* dst = out + g * kStagedGroupFloats;
      for (int v = 0; v < 4; ++v) {
        const __m256i bv = _mm256_load_si256(reinterpret_cast<const __m256i*>(src + 32 * v));
        _mm256_store_ps(dst + 8 * v, _mm256_castsi256_ps(_mm256_and_si256(bv, hi_mask)));            // odd
        _mm256_store_ps(dst + kPanel + 8 * v, _mm256_castsi256_ps(_mm256_slli_epi32(bv, 16)));        // even
      }
    }
  }
  // Up to 6 rows, one 16-column half of the panel at a time: 12 accumulators,
  // 2 loads of W and 6 broadcasts per 12 FMAs, the float32 kernel's ratio.
  template <int R>
  static void tile(const uint8_t* a, int64_t lda, const uint8_t* b, int64_t ng, float* acc) {
    const float* bf = reinterpret_cast<const float*>(b);
    for (int half = 0; half < 2; ++half) {
      __m256 c[R][2];
      for (int r = 0; r < R; ++r) c[r][0] = c[r][1] = _mm256_setzero_ps();
      for (int64_t g = 0; g < ng; ++g) {
        const float* bg = bf + g * kStagedGroupFloats + 16 * half;
        const float* a0 = reinterpret_cast<const float*>(a) + 2 * g;
        const __m256 bo0 = _mm256_load_ps(bg), bo1 = _mm256_load_ps(bg + 8);
        for (int r = 0; r < R; ++r) {  // odd element first, as vdpbf16ps
          const __m256 ao = _mm256_broadcast_ss(reinterpret_cast<const float*>(reinterpret_cast<const uint8_t*>(a0) +
                                                                                r * lda) + 1);
          c[r][0] = _mm256_fmadd_ps(ao, bo0, c[r][0]);
          c[r][1] = _mm256_fmadd_ps(ao, bo1, c[r][1]);
        }
        const __m256 be0 = _mm256_load_ps(bg + kPanel), be1 = _mm256_load_ps(bg + kPanel + 8);
        for (int r = 0; r < R; ++r) {
          const __m256 ae = _mm256_broadcast_ss(reinterpret_cast<const float*>(reinterpret_cast<const uint8_t*>(a0) +
                                                                                r * lda));
          c[r][0] = _mm256_fmadd_ps(ae, be0, c[r][0]);
          c[r][1] = _mm256_fmadd_ps(ae, be1, c[r][1]);
        }
      }
      for (int r = 0; r < R; ++r) {
        _mm256_storeu_ps(acc + r * kPanel + 16 * half, c[r][0]);
        _mm256_storeu_ps(acc + r * kPanel + 16 * half + 8, c[r][1]);
      }
    }
  }
};
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
// AVX512-VNNI: u8 activations (q + 128) times s8 weights, 4 products per
// int32 lane per vpdpbusd; a 14 x 32 tile in 28 zmm accumulators.
struct Avx512Int8 : Int8Prep {
  static constexpr int kMR = 14;
  static constexpr bool kUnsignedA = true;
  template <int R>
  static void tile(const uint8_t* a, int64_t lda, const uint8_t* b, int64_t ng, int32_t* acc) {
    __m512i c0[R], c1[R];
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_si512();
    for (int64_t g = 0; g < ng; ++g) {
      const __m512i b0 = _mm512_load_si512(b + g * kPanelGroup);
      const __m512i b1 = _mm512_load_si512(b + g * kPanelGroup + 64);
#pragma GCC unroll 14
      for (int r = 0; r < R; ++r) {
        const __m512i av = _mm512_set1_epi32(load_i32(a + r * lda + g * kGroupBytes));
        c0[r] = _mm512_dpbusd_epi32(c0[r], av, b0);
        c1[r] = _mm512_dpbusd_epi32(c1[r], av, b1);
      }
    }
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r) {
      _mm512_storeu_si512(acc + r * kPanel, c0[r]);
      _mm512_storeu_si512(acc + r * kPanel + 16, c1[r]);
    }
  }
};
#endif

#if defined(__AVX512F__) && defined(__AVX512BF16__)
// AVX512-BF16: 2 bf16 products per float32 lane per vdpbf16ps; 14 x 32 tile.
struct Avx512Bf16 : Bf16Prep {
  static constexpr int kMR = 14;
  template <int R>
  static void tile(const uint8_t* a, int64_t lda, const uint8_t* b, int64_t ng, float* acc) {
    __m512 c0[R], c1[R];
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; ++g) {
      const __m512bh b0 = (__m512bh)_mm512_load_si512(b + g * kPanelGroup);
      const __m512bh b1 = (__m512bh)_mm512_load_si512(b + g * kPanelGroup + 64);
#pragma GCC unroll 14
      for (int r = 0; r < R; ++r) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(load_i32(a + r * lda + g * kGroupBytes));
        c0[r] = _mm512_dpbf16_ps(c0[r], av, b0);
        c1[r] = _mm512_dpbf16_ps(c1[r], av, b1);
      }
    }
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r) {
      _mm512_storeu_ps(acc + r * kPanel, c0[r]);
      _mm512_storeu_ps(acc + r * kPanel + 16, c1[r]);
    }
  }
};
#endif

// ---------------------------------------------------------------------------
// Peak probes: independent chains of each kernel's dot-product step, so the
// benchmark can report how close the GEMM gets (runtime/peak.hpp). Each
// returns a value derived from every step; *ops = multiply-adds x 2 per
// iteration.
// ---------------------------------------------------------------------------

constexpr int kPeakChains = 16;

inline float peak_int8_scalar(int64_t iters, float seed, double* ops) {
  *ops = 2.0 * kPeakChains * 4;
  int32_t acc[kPeakChains];
  const int32_t s = static_cast<int32_t>(seed) & 7;
  for (int c = 0; c < kPeakChains; ++c) acc[c] = c + s;
  const int8_t a[4] = {1, -2, 3, -4}, b[4] = {5, 6, -7, 8};
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kPeakChains; ++c) acc[c] = (acc[c] >> 1) + a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3];
  int64_t sum = 0;
  for (int c = 0; c < kPeakChains; ++c) sum += acc[c];
  return static_cast<float>(sum & 7);  // bounded: it is fed back as the next seed
}

inline float peak_bf16_scalar(int64_t iters, float seed, double* ops) {
  *ops = 2.0 * kPeakChains * 2;
  float acc[kPeakChains];
  for (int c = 0; c < kPeakChains; ++c) acc[c] = seed + 0.001f * static_cast<float>(c);
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kPeakChains; ++c) acc[c] = acc[c] * 0.5f + 0.25f * 0.75f;
  float sum = 0;
  for (int c = 0; c < kPeakChains; ++c) sum += acc[c];
  return sum / kPeakChains;  // the mean stays near the seed: fed back, it cannot overflow
}

#if defined(__AVX2__) && defined(__FMA__)
inline float peak_int8_avx2(int64_t iters, float seed, double* ops) {
  constexpr int kC = 8;  // 8 chains of 4 instructions keep 16 ymm registers busy
  *ops = 2.0 * kC * 8 * 4;
  __m256i acc[kC];
  for (int c = 0; c < kC; ++c) acc[c] = _mm256_set1_epi32(c + static_cast<int>(seed));
  const __m256i a = _mm256_set1_epi32(0x05FD0302), b = _mm256_set1_epi32(0x7F01FE03), ones = _mm256_set1_epi16(1);
  const __m256i ua = _mm256_abs_epi8(a);
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kC; ++c)
      acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(_mm256_maddubs_epi16(ua, _mm256_sign_epi8(b, a)), ones));
  int32_t t[8], sum = 0;
  for (int c = 0; c < kC; ++c) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(t), acc[c]);
    for (int j = 0; j < 8; ++j) sum += t[j];
  }
  return static_cast<float>(sum & 7);
}

inline float peak_bf16_avx2(int64_t iters, float seed, double* ops) {
  constexpr int kC = 6;
  *ops = 2.0 * kC * 8 * 2;
  __m256 acc[kC];
  for (int c = 0; c < kC; ++c) acc[c] = _mm256_set1_ps(seed + 0.01f * static_cast<float>(c));
  const __m256i b = _mm256_set1_epi32(0x3F7F3F7F);
  const __m256i hi_mask = _mm256_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
  const __m256 ahi = _mm256_set1_ps(0.5f), alo = _mm256_set1_ps(0.25f);
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kC; ++c) {  // the kernel's step: widen b, two FMAs
      const __m256 bhi = _mm256_castsi256_ps(_mm256_and_si256(b, hi_mask));
      const __m256 blo = _mm256_castsi256_ps(_mm256_slli_epi32(b, 16));
      acc[c] = _mm256_fmadd_ps(alo, blo, _mm256_fmadd_ps(ahi, bhi, _mm256_mul_ps(acc[c], alo)));
    }
  float t[8], sum = 0;
  for (int c = 0; c < kC; ++c) {
    _mm256_storeu_ps(t, acc[c]);
    for (int j = 0; j < 8; ++j) sum += t[j];
  }
  return sum / (8 * kC);
}
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
inline float peak_int8_avx512(int64_t iters, float seed, double* ops) {
  *ops = 2.0 * kPeakChains * 64;
  __m512i acc[kPeakChains];
  for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm512_set1_epi32(c + static_cast<int>(seed));
  const __m512i a = _mm512_set1_epi32(0x01020304), b = _mm512_set1_epi32(0x01FF01FF);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
  int32_t t[16];
  int64_t sum = 0;
  for (int c = 0; c < kPeakChains; ++c) {
    _mm512_storeu_si512(t, acc[c]);
    for (int j = 0; j < 16; ++j) sum += t[j];
  }
  return static_cast<float>(sum & 7);
}
#endif

#if defined(__AVX512F__) && defined(__AVX512BF16__)
inline float peak_bf16_avx512(int64_t iters, float seed, double* ops) {
  *ops = 2.0 * kPeakChains * 32;
  __m512 acc[kPeakChains];
  for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm512_set1_ps(seed + 0.01f * static_cast<float>(c));
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3F803F80), b = (__m512bh)_mm512_set1_epi32(0x33803380);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  float t[16], sum = 0;
  for (int c = 0; c < kPeakChains; ++c) {
    _mm512_storeu_ps(t, acc[c]);
    for (int j = 0; j < 16; ++j) sum += t[j];
  }
  return sum / (16 * kPeakChains);
}
#endif

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

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
