// Private: the tile policies of the low-precision GEMM (the contract is in
// lowp_kernel.hpp, which includes this file), one per instruction set and
// precision, and the peak probes of their dot-product steps. Policies exist
// for the instruction sets the including file is compiled for. Internal
// linkage, as in lowp_kernel.hpp.
#pragma once
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <cstdint>
#include <cstring>

#include "lowp_prep.hpp"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // see gemm_kernel.hpp
#endif

namespace cpuformer {
namespace detail {
namespace {
namespace lowp {

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

}  // namespace lowp
}  // namespace
}  // namespace detail
}  // namespace cpuformer
