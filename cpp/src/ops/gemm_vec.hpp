// Private: the vector policies of the packed float32 GEMM (gemm_kernel.hpp
// holds the micro-kernel and B packing they parameterise). Each struct
// exists when the including file is compiled for its instruction set; the
// file instantiates the one its entry points name. Internal linkage, as in
// gemm_driver.hpp.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // see gemm_kernel.hpp
#endif

namespace cpuformer {
namespace detail {
namespace {  // internal linkage, as in gemm_driver.hpp
namespace gemm_tile {

// A policy holds the vector operations on L floats: T, Mask, and
//   zero, load (aligned), loadu, store (aligned), storeu, broadcast(p) (*p in
//   every lane), mul, add, mask(n) (lanes [0, n), n clamped to [0, L]),
//   maskload(p, m) (inactive lanes zero and not accessed), maskstore(p, m, v);
//   the vec_gelu.hpp traits; transpose(in, ld_in, out, ld_out): the L x L
//   block whose rows start ld_in apart goes to out, column j at out + j·ld_out.
// kUnmaskedFullTiles: full tiles use plain loads and stores (masked ones cost
// more on AVX2; AVX-512 masks are free).
// kUnrollK4: the k loop of the micro-kernel is unrolled 4 times.
// Also kMR (rows of the tile), the block sizes kKC, kMC, kNC and pack_a, as in
// gemm_driver.hpp's Kernel policy.

#if defined(__AVX512F__)
struct Avx512 {
  static constexpr int kLanes = 16;
  using T = __m512;
  using Mask = __mmask16;
  static constexpr bool kUnmaskedFullTiles = false;
  static constexpr bool kUnrollK4 = false;

  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* p) { return _mm512_load_ps(p); }
  static T loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_store_ps(p, v); }
  static void storeu(float* p, T v) { _mm512_storeu_ps(p, v); }
  static T broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static Mask mask(int n) { return n >= 16 ? Mask(0xFFFF) : n <= 0 ? Mask(0) : Mask((1u << n) - 1u); }
  static T maskload(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void maskstore(float* p, Mask m, T v) { _mm512_mask_storeu_ps(p, m, v); }

  static T set1(float a) { return _mm512_set1_ps(a); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T div(T a, T b) { return _mm512_div_ps(a, b); }
  static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T fmsub(T a, T b, T c) { return _mm512_fmsub_ps(a, b, c); }
  static T abs(T a) { return _mm512_abs_ps(a); }
  static T min_keep_nan(float c, T x) { return _mm512_min_ps(_mm512_set1_ps(c), x); }
  static T max_keep_nan(float c, T x) { return _mm512_max_ps(_mm512_set1_ps(c), x); }
  static T select_lt(T a, T b, T x, T y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x); }
  static T trunc_half(T n) {
    return _mm512_roundscale_ps(_mm512_mul_ps(n, _mm512_set1_ps(0.5f)), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  }
  static T pow2(T n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }

  // Transposes 16 vectors in place: afterwards r[j] lane i = old r[i] lane j.
  static void transpose(T r[16]) {
    T t[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
      r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
      r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
      r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 16; i += 8) {
      for (int j = 0; j < 4; ++j) {
        t[i + j] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0x88);
        t[i + j + 4] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0xDD);
      }
    }
    for (int j = 0; j < 8; ++j) {
      r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
      r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xDD);
    }
  }
  // (out rows are panel rows of Bp: 64-byte aligned.)
  static void transpose(const float* in, int64_t ld_in, float* out, int64_t ld_out) {
    T r[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(in + i * ld_in);
    transpose(r);
    for (int j = 0; j < 16; ++j) _mm512_store_ps(out + j * ld_out, r[j]);
  }

  static constexpr int kMR = 14;
  // Block sizes from a sweep on Zen 5 (1 MB L2 per core, 48 KB L1): a long kc
  // amortises each tile's C traffic, and both panels stream well from L2.
  // KC 1024 beat 384 by 8-10% on the bench's GEMM shapes at 1 and 2 threads.
  static constexpr int64_t kKC = 1024;         // A panel 14 x 1024 = 56 KB, B panel 1024 x 32 = 128 KB
  static constexpr int64_t kMC = kMR * 8;      // an A block (112 x 1024, 448 KB) stays in L2
  static constexpr int64_t kNC = 32 * 2 * kLanes;  // 32 panels: a B block (1024 x 1024, 4 MB) stays in L3

  // Ap: ceil(mc / kMR) panels, each kc steps of kMR values (rows past mc are 0).
  static void pack_a(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* ap) {
    for (int64_t p0 = 0; p0 < mc; p0 += kMR, ap += kMR * kc) {
      const int rows = static_cast<int>(std::min<int64_t>(kMR, mc - p0));
      if (trans) {  // element (m, k) at A[k * lda + m]: kMR contiguous values per k
        for (int64_t k = 0; k < kc; ++k) {
          const float* src = A + k * lda + p0;
          float* dst = ap + k * kMR;
          int i = 0;
          for (; i < rows; ++i) dst[i] = src[i];
          for (; i < kMR; ++i) dst[i] = 0.0f;
        }
      } else {  // element (m, k) at A[m * lda + k]: a row is contiguous in k
        // 16 k-steps at a time: load the panel's rows, transpose, and store the
        // first kMR lanes of each column (lanes past `rows` are zero). 2.6x
        // faster than a scalar strided copy on a 64 x 128 panel.
        const Mask keep = mask(kMR);
        for (int64_t k0 = 0; k0 < kc; k0 += 16) {
          const int steps = static_cast<int>(std::min<int64_t>(16, kc - k0));
          const Mask km = mask(steps);
          T r[16];
          for (int i = 0; i < 16; ++i)
            r[i] = i < rows ? _mm512_maskz_loadu_ps(km, A + (p0 + i) * lda + k0) : _mm512_setzero_ps();
          transpose(r);
          for (int j = 0; j < steps; ++j) _mm512_mask_storeu_ps(ap + (k0 + j) * kMR, keep, r[j]);
        }
      }
    }
  }
};
#endif  // __AVX512F__

#if defined(__AVX2__) && defined(__FMA__)
struct Avx2 {
  static constexpr int kLanes = 8;
  using T = __m256;
  using Mask = __m256i;  // lane i active when its sign bit is set
  static constexpr bool kUnmaskedFullTiles = true;
  static constexpr bool kUnrollK4 = true;

  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* p) { return _mm256_load_ps(p); }
  static T loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_store_ps(p, v); }
  static void storeu(float* p, T v) { _mm256_storeu_ps(p, v); }
  static T broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Mask mask(int n) {
    alignas(32) static const int32_t table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    n = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + 8 - n));
  }
  static T maskload(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void maskstore(float* p, Mask m, T v) { _mm256_maskstore_ps(p, m, v); }

  static T set1(float a) { return _mm256_set1_ps(a); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T div(T a, T b) { return _mm256_div_ps(a, b); }
  static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T fmsub(T a, T b, T c) { return _mm256_fmsub_ps(a, b, c); }
  static T abs(T a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static T min_keep_nan(float c, T x) { return _mm256_min_ps(_mm256_set1_ps(c), x); }
  static T max_keep_nan(float c, T x) { return _mm256_max_ps(_mm256_set1_ps(c), x); }
  static T select_lt(T a, T b, T x, T y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
  static T trunc_half(T n) {
    return _mm256_round_ps(_mm256_mul_ps(n, _mm256_set1_ps(0.5f)), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  }
  static T pow2(T n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }

  // Stores the transpose of the 8 x 8 block held in r[0..7] (one row each):
  // column j of the block goes to out + j * ld_out, for j = 0..7 in order.
  static void store_transposed(const T r[8], float* out, int64_t ld_out) {
    T t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);      // cols 0,1 | 4,5 of rows i, i+1, interleaved
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  // cols 2,3 | 6,7
    }
    for (int i = 0; i < 8; i += 4) {
      s[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);      // col 0 | col 4 of rows i..i+3
      s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);  // col 1 | col 5
      s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int j = 0; j < 4; ++j) {
      t[j] = _mm256_permute2f128_ps(s[j], s[j + 4], 0x20);
      t[j + 4] = _mm256_permute2f128_ps(s[j], s[j + 4], 0x31);
    }
    for (int j = 0; j < 8; ++j) _mm256_storeu_ps(out + j * ld_out, t[j]);  // ascending: pack_a relies on it
  }
  static void transpose(const float* in, int64_t ld_in, float* out, int64_t ld_out) {
    T r[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(in + i * ld_in);
    store_transposed(r, out, ld_out);
  }

  static constexpr int kMR = 6;
  // Block sizes for Zen 3-class cores (32 KB L1, 512 KB L2): a B panel
  // (256 x 16, 16 KB) stays in L1 while the A block (144 x 256, 144 KB)
  // streams from L2; the B block (256 x 4096, 4 MB) lives in L3.
  static constexpr int64_t kKC = 256;
  static constexpr int64_t kMC = kMR * 24;
  static constexpr int64_t kNC = 256 * 2 * kLanes;  // 256 panels

  // Ap: ceil(mc / kMR) panels, each kc steps of kMR values (rows past mc are 0).
  static void pack_a(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* ap) {
    for (int64_t p0 = 0; p0 < mc; p0 += kMR, ap += kMR * kc) {
      const int rows = static_cast<int>(std::min<int64_t>(kMR, mc - p0));
      int64_t k = 0;
      if (!trans && rows == kMR) {
        // 8 k-steps at a time: transpose 8 rows (the panel's 6 and 2 dummies
        // that repeat row 0) and store 8 lanes per step; the 2 extra lanes of
        // step k land on step k + 1's slot and are overwritten by its store
        // (the scratch buffer has slack for the panel's last step).
        for (; k + 8 <= kc; k += 8) {
          const float* src = A + p0 * lda + k;
          T r[8];
          for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (i < kMR ? i : 0) * lda);
          store_transposed(r, ap + k * kMR, kMR);
        }
      } else if (trans && rows == kMR) {
        // element (m, k) at A[k * lda + m]: 6 contiguous values per k, moved as
        // one 8-lane store whose 2 extra lanes the next step overwrites (the
        // masked load never reads past the panel).
        const Mask six = mask(kMR);
        for (; k < kc; ++k) _mm256_storeu_ps(ap + k * kMR, _mm256_maskload_ps(A + k * lda + p0, six));
      }
      for (; k < kc; ++k) {
        float* dst = ap + k * kMR;
        int i = 0;
        if (trans)  // element (m, k) at A[k * lda + m]
          for (; i < rows; ++i) dst[i] = A[k * lda + p0 + i];
        else
          for (; i < rows; ++i) dst[i] = A[(p0 + i) * lda + k];
        for (; i < kMR; ++i) dst[i] = 0.0f;
      }
    }
  }
};
#endif  // __AVX2__ && __FMA__

}  // namespace gemm_tile
}  // namespace
}  // namespace detail
}  // namespace cpuformer
