// Private: the formats of the low-precision GEMM kernels (lowp_kernel.hpp):
// the panel geometry, the rounding of activations into int8 or bfloat16
// rows, and the packing of a float32 weight into bf16 panels. Internal
// linkage, as in lowp_kernel.hpp.
#pragma once
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <cstdint>
#include <cstring>
#include <limits>

#include "lowp.hpp"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // see gemm_kernel.hpp
#endif

namespace cpuformer {
namespace detail {
namespace {
namespace lowp {

constexpr int kPanel = 32;             // rows of W per panel = output columns per tile
constexpr int64_t kGroupBytes = 4;     // bytes per row of W per group
constexpr int64_t kPanelGroup = kPanel * kGroupBytes;

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

}  // namespace lowp
}  // namespace
}  // namespace detail
}  // namespace cpuformer
