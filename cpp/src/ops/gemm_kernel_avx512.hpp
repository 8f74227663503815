// Private: the AVX-512 policy of the packed GEMM (see gemm_driver.hpp). The
// micro-kernel keeps a 14 x 32 tile of C in 28 zmm registers; each k step
// loads two vectors of B and broadcasts 14 elements of A into 28 FMAs.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "gemm_driver.hpp"
#include "vec_gelu.hpp"
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 intrinsics start from an "undefined" vector that its own
// -Wuninitialized then reports inside avx512fintrin.h.
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace cpuformer {
namespace detail {
namespace {  // internal linkage, as in gemm_driver.hpp
namespace avx512_gemm {

using gemm_driver::Epilogue;

constexpr int kMR = 14;
constexpr int kNR = 32;

// The vector operations vec_gelu.hpp needs, on 16 floats.
struct V16 {
  using T = __m512;
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
};

// The epilogue's activation on a register (tanh-GELU is left to activation_inplace).
inline __m512 activate(__m512 x, Activation act) {
  if (act == Activation::Gelu) return vgelu<V16>(x);
  if (act == Activation::Relu) return _mm512_max_ps(_mm512_setzero_ps(), x);  // x < 0 ? 0 : x, NaN kept
  return x;
}

inline __mmask16 lane_mask(int n) { return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u); }

// Transposes 16 vectors in place: afterwards r[j] lane i = old r[i] lane j.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
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

// Copies the transpose of a 16 x 16 block (rows of `in` ld_in apart) into
// 16 rows of `out`, kNR apart.
inline void transpose16(const float* in, int64_t ld_in, float* out) {
  __m512 r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(in + i * ld_in);
  transpose16(r);
  for (int j = 0; j < 16; ++j) _mm512_store_ps(out + j * kNR, r[j]);
}

// Ap: ceil(mc / kMR) panels, each kc steps of kMR values (rows past mc are 0).
inline void pack_a(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* ap) {
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
      const __mmask16 keep = lane_mask(kMR);
      for (int64_t k0 = 0; k0 < kc; k0 += 16) {
        const int steps = static_cast<int>(std::min<int64_t>(16, kc - k0));
        const __mmask16 km = lane_mask(steps);
        __m512 r[16];
        for (int i = 0; i < 16; ++i)
          r[i] = i < rows ? _mm512_maskz_loadu_ps(km, A + (p0 + i) * lda + k0) : _mm512_setzero_ps();
        transpose16(r);
        for (int j = 0; j < steps; ++j) _mm512_mask_storeu_ps(ap + (k0 + j) * kMR, keep, r[j]);
      }
    }
  }
}

// Bp: ceil(nc / kNR) panels, each kc steps of kNR values (columns past nc are 0).
inline void pack_b(bool trans, const float* B, int64_t ldb, int64_t nc, int64_t kc, float* bp) {
  if (!trans) {
    // element (k, n) at B[k * ldb + n]: walk B row by row (one contiguous
    // read per k, 32 values to each panel); 2-6% faster at 2 threads than
    // walking a 32-column strip down all kc rows.
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = B + k * ldb;
      float* dst = bp + k * kNR;
      int64_t q0 = 0;
      for (; q0 + kNR <= nc; q0 += kNR, dst += kNR * kc) {
        _mm512_store_ps(dst, _mm512_loadu_ps(src + q0));
        _mm512_store_ps(dst + 16, _mm512_loadu_ps(src + q0 + 16));
      }
      if (q0 < nc) {
        const int cols = static_cast<int>(nc - q0);
        _mm512_store_ps(dst, _mm512_maskz_loadu_ps(lane_mask(cols), src + q0));
        _mm512_store_ps(dst + 16, _mm512_maskz_loadu_ps(lane_mask(cols - 16), src + q0 + 16));
      }
    }
    return;
  }
  // element (k, n) at B[n * ldb + k]: column n of Bp is row n of B
  for (int64_t q0 = 0; q0 < nc; q0 += kNR, bp += kNR * kc) {
    const int cols = static_cast<int>(std::min<int64_t>(kNR, nc - q0));
    int64_t k = 0;
    if (cols == kNR) {
      for (; k + 16 <= kc; k += 16) {
        transpose16(B + q0 * ldb + k, ldb, bp + k * kNR);
        transpose16(B + (q0 + 16) * ldb + k, ldb, bp + k * kNR + 16);
      }
    }
    for (int j = 0; j < kNR; ++j) {
      const float* src = B + (q0 + j) * ldb;
      for (int64_t kk = k; kk < kc; ++kk) bp[kk * kNR + j] = j < cols ? src[kk] : 0.0f;
    }
  }
}

// C[R, n] (op)= alpha · Ap[R, kc] · Bp[kc, n] for one tile; n = lanes in m0/m1.
// first: C = alpha·AB + beta·C (beta 0 overwrites); otherwise C += alpha·AB.
template <int R>
inline void micro_kernel(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c, int64_t ldc,
                  __mmask16 m0, __mmask16 m1, float alpha, float beta, bool first, const gemm_driver::Epilogue& ep) {
  {
    // C is written (and maybe read) at the end: start fetching its rows now,
    // behind the FMA loop. Without this, the stores of a fresh C miss on every
    // line (measured: 155 vs 220 GFLOP/s for one core with C rows 3 KB apart).
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
    }
  }
  __m512 c0[R], c1[R];
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(bp);
    const __m512 b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      const __m512 a = _mm512_set1_ps(ap[i]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
    ap += kMR;
    bp += kNR;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const bool add_bias = first && ep.bias;
  // The exact GELU and ReLU are applied on the registers before the store.
  const bool in_register = ep.last && (ep.act == Activation::Gelu || ep.act == Activation::Relu);
  const __m512 bias0 = add_bias ? _mm512_maskz_loadu_ps(m0, ep.bias) : _mm512_setzero_ps();
  const __m512 bias1 = add_bias ? _mm512_maskz_loadu_ps(m1, ep.bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) {
    float* row = c + i * ldc;
    __m512 x0 = alpha == 1.0f ? c0[i] : _mm512_mul_ps(va, c0[i]);
    __m512 x1 = alpha == 1.0f ? c1[i] : _mm512_mul_ps(va, c1[i]);
    if (!first || beta != 0.0f) {
      const __m512 y0 = _mm512_maskz_loadu_ps(m0, row), y1 = _mm512_maskz_loadu_ps(m1, row + 16);
      const bool scale = first && beta != 1.0f;
      x0 = _mm512_add_ps(x0, scale ? _mm512_mul_ps(vb, y0) : y0);
      x1 = _mm512_add_ps(x1, scale ? _mm512_mul_ps(vb, y1) : y1);
    }
    if (add_bias) {
      x0 = _mm512_add_ps(x0, bias0);
      x1 = _mm512_add_ps(x1, bias1);
    }
    if (in_register) {
      x0 = activate(x0, ep.act);
      if (m1) x1 = activate(x1, ep.act);
    }
    _mm512_mask_storeu_ps(row, m0, x0);
    _mm512_mask_storeu_ps(row + 16, m1, x1);
  }
  // Other activations run once the tile is final, while its rows are in L1.
  if (ep.last && ep.act != Activation::None && !in_register) {
    const int n = __builtin_popcount(m0) + __builtin_popcount(m1);
    for (int i = 0; i < R; ++i) activation_inplace(c + i * ldc, n, ep.act);
  }
}

using Kernel = void (*)(int64_t, const float*, const float*, float*, int64_t, __mmask16, __mmask16, float, float, bool,
                        const Epilogue&);
constexpr Kernel kKernels[kMR + 1] = {nullptr,
                                      micro_kernel<1>,
                                      micro_kernel<2>,
                                      micro_kernel<3>,
                                      micro_kernel<4>,
                                      micro_kernel<5>,
                                      micro_kernel<6>,
                                      micro_kernel<7>,
                                      micro_kernel<8>,
                                      micro_kernel<9>,
                                      micro_kernel<10>,
                                      micro_kernel<11>,
                                      micro_kernel<12>,
                                      micro_kernel<13>,
                                      micro_kernel<14>};

}  // namespace avx512_gemm

struct Avx512Kernel {
  static constexpr int kMR = avx512_gemm::kMR;
  static constexpr int kNR = avx512_gemm::kNR;
  // Block sizes from a sweep on Zen 5 (1 MB L2 per core, 48 KB L1): a long kc
  // amortises each tile's C traffic, and both panels stream well from L2.
  // KC 1024 beat 384 by 8-10% on the bench's GEMM shapes at 1 and 2 threads.
  static constexpr int64_t kKC = 1024;      // A panel 14 x 1024 = 56 KB, B panel 1024 x 32 = 128 KB
  static constexpr int64_t kMC = kMR * 8;   // an A block (112 x 1024, 448 KB) stays in L2
  static constexpr int64_t kNC = kNR * 32;  // a B block (1024 x 1024, 4 MB) stays in L3
  static void pack_a(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* ap) {
    avx512_gemm::pack_a(trans, A, lda, mc, kc, ap);
  }
  static void pack_b(bool trans, const float* B, int64_t ldb, int64_t nc, int64_t kc, float* bp) {
    avx512_gemm::pack_b(trans, B, ldb, nc, kc, bp);
  }
  static void tile(int m, int n, int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, float alpha,
                   float beta, bool first, const gemm_driver::Epilogue& ep) {
    avx512_gemm::kKernels[m](kc, ap, bp, c, ldc, avx512_gemm::lane_mask(n), avx512_gemm::lane_mask(n - 16), alpha,
                             beta, first, ep);
  }
};

}  // namespace
}  // namespace detail
}  // namespace cpuformer
