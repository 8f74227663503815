// Private: the AVX2 + FMA policy of the packed GEMM (see gemm_driver.hpp), for
// CPUs without AVX-512. The micro-kernel keeps a 6 x 16 tile of C in 12 ymm
// registers; each k step loads two vectors of B and broadcasts 6 elements of
// A into 12 FMAs (16 registers in all: 12 accumulators, 2 of B, 1 of A).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "gemm_driver.hpp"
#include "vec_gelu.hpp"

namespace cpuformer {
namespace detail {
namespace {  // internal linkage, as in gemm_driver.hpp
namespace avx2_gemm {

using gemm_driver::Epilogue;

constexpr int kMR = 6;
constexpr int kNR = 16;

// The vector operations vec_gelu.hpp needs, on 8 floats.
struct V8 {
  using T = __m256;
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
};

// The epilogue's activation on a register (tanh-GELU is left to activation_inplace).
inline __m256 activate(__m256 x, Activation act) {
  if (act == Activation::Gelu) return vgelu<V8>(x);
  if (act == Activation::Relu) return _mm256_max_ps(_mm256_setzero_ps(), x);  // x < 0 ? 0 : x, NaN kept
  return x;
}

// Lanes [0, n) of an integer mask for maskload/maskstore (n clamped to 0..8).
inline __m256i lane_mask(int n) {
  alignas(32) static const int32_t table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  n = n < 0 ? 0 : n > 8 ? 8 : n;
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + 8 - n));
}

// Stores the transpose of the 8 x 8 block held in r[0..7] (one row each):
// column j of the block goes to out + j * ld_out, for j = 0..7 in order.
inline void store_transposed8(const __m256 r[8], float* out, int64_t ld_out) {
  __m256 t[8], s[8];
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

// The same for the block whose rows start `ld_in` apart at `in`.
inline void transpose8(const float* in, int64_t ld_in, float* out, int64_t ld_out) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(in + i * ld_in);
  store_transposed8(r, out, ld_out);
}

// Ap: ceil(mc / kMR) panels, each kc steps of kMR values (rows past mc are 0).
inline void pack_a(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* ap) {
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
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (i < kMR ? i : 0) * lda);
        store_transposed8(r, ap + k * kMR, kMR);
      }
    } else if (trans && rows == kMR) {
      // element (m, k) at A[k * lda + m]: 6 contiguous values per k, moved as
      // one 8-lane store whose 2 extra lanes the next step overwrites (the
      // masked load never reads past the panel).
      const __m256i six = lane_mask(kMR);
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

// Bp: ceil(nc / kNR) panels, each kc steps of kNR values (columns past nc are 0).
inline void pack_b(bool trans, const float* B, int64_t ldb, int64_t nc, int64_t kc, float* bp) {
  if (!trans) {  // element (k, n) at B[k * ldb + n]: one contiguous read per k
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = B + k * ldb;
      float* dst = bp + k * kNR;
      int64_t q0 = 0;
      for (; q0 + kNR <= nc; q0 += kNR, dst += kNR * kc) {
        _mm256_store_ps(dst, _mm256_loadu_ps(src + q0));
        _mm256_store_ps(dst + 8, _mm256_loadu_ps(src + q0 + 8));
      }
      if (q0 < nc) {
        const int cols = static_cast<int>(nc - q0);
        _mm256_store_ps(dst, _mm256_maskload_ps(src + q0, lane_mask(cols)));
        _mm256_store_ps(dst + 8, _mm256_maskload_ps(src + q0 + 8, lane_mask(cols - 8)));
      }
    }
    return;
  }
  // element (k, n) at B[n * ldb + k]: column n of Bp is row n of B
  for (int64_t q0 = 0; q0 < nc; q0 += kNR, bp += kNR * kc) {
    const int cols = static_cast<int>(std::min<int64_t>(kNR, nc - q0));
    int64_t k = 0;
    if (cols == kNR) {
      for (; k + 8 <= kc; k += 8) {
        transpose8(B + q0 * ldb + k, ldb, bp + k * kNR, kNR);
        transpose8(B + (q0 + 8) * ldb + k, ldb, bp + k * kNR + 8, kNR);
      }
    }
    for (int j = 0; j < kNR; ++j) {
      const float* src = B + (q0 + j) * ldb;
      for (int64_t kk = k; kk < kc; ++kk) bp[kk * kNR + j] = j < cols ? src[kk] : 0.0f;
    }
  }
}

// C[R, n] (op)= alpha · Ap[R, kc] · Bp[kc, n] for one tile; n = lanes set in
// m0/m1 (full tiles pass full = true and skip the masked accesses).
// first: C = alpha·AB + beta·C (beta 0 overwrites); otherwise C += alpha·AB.
template <int R>
void micro_kernel(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c, int64_t ldc, int n,
                  float alpha, float beta, bool first, const gemm_driver::Epilogue& ep) {
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
  __m256 c0[R], c1[R];
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(bp);
    const __m256 b1 = _mm256_load_ps(bp + 8);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const __m256 a = _mm256_broadcast_ss(ap + i);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
    ap += kMR;
    bp += kNR;
  }
  const bool full = n == kNR;
  const __m256i m0 = lane_mask(n), m1 = lane_mask(n - 8);
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  const bool add_bias = first && ep.bias;
  // The exact GELU and ReLU are applied on the registers before the store.
  const bool in_register = ep.last && (ep.act == Activation::Gelu || ep.act == Activation::Relu);
  const __m256 bias0 = add_bias ? _mm256_maskload_ps(ep.bias, m0) : _mm256_setzero_ps();
  const __m256 bias1 = add_bias ? _mm256_maskload_ps(ep.bias + 8, m1) : _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
    float* row = c + i * ldc;
    __m256 x0 = alpha == 1.0f ? c0[i] : _mm256_mul_ps(va, c0[i]);
    __m256 x1 = alpha == 1.0f ? c1[i] : _mm256_mul_ps(va, c1[i]);
    if (!first || beta != 0.0f) {
      const __m256 y0 = full ? _mm256_loadu_ps(row) : _mm256_maskload_ps(row, m0);
      const __m256 y1 = full ? _mm256_loadu_ps(row + 8) : _mm256_maskload_ps(row + 8, m1);
      const bool scale = first && beta != 1.0f;
      x0 = _mm256_add_ps(x0, scale ? _mm256_mul_ps(vb, y0) : y0);
      x1 = _mm256_add_ps(x1, scale ? _mm256_mul_ps(vb, y1) : y1);
    }
    if (add_bias) {
      x0 = _mm256_add_ps(x0, bias0);
      x1 = _mm256_add_ps(x1, bias1);
    }
    if (in_register) {
      x0 = activate(x0, ep.act);
      if (n > 8) x1 = activate(x1, ep.act);
    }
    if (full) {
      _mm256_storeu_ps(row, x0);
      _mm256_storeu_ps(row + 8, x1);
    } else {
      _mm256_maskstore_ps(row, m0, x0);
      _mm256_maskstore_ps(row + 8, m1, x1);
    }
  }
  // Other activations run once the tile is final, while its rows are in L1.
  if (ep.last && ep.act != Activation::None && !in_register)
    for (int i = 0; i < R; ++i) activation_inplace(c + i * ldc, n, ep.act);
}

using Kernel = void (*)(int64_t, const float*, const float*, float*, int64_t, int, float, float, bool,
                        const Epilogue&);
constexpr Kernel kKernels[kMR + 1] = {nullptr,          micro_kernel<1>, micro_kernel<2>, micro_kernel<3>,
                                      micro_kernel<4>,  micro_kernel<5>, micro_kernel<6>};

}  // namespace avx2_gemm

struct Avx2Kernel {
  static constexpr int kMR = avx2_gemm::kMR;
  static constexpr int kNR = avx2_gemm::kNR;
  // Block sizes for Zen 3-class cores (32 KB L1, 512 KB L2): a B panel
  // (256 x 16, 16 KB) stays in L1 while the A block (144 x 256, 144 KB)
  // streams from L2; the B block (256 x 4096, 4 MB) lives in L3.
  static constexpr int64_t kKC = 256;
  static constexpr int64_t kMC = kMR * 24;
  static constexpr int64_t kNC = kNR * 256;
  static void pack_a(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* ap) {
    avx2_gemm::pack_a(trans, A, lda, mc, kc, ap);
  }
  static void pack_b(bool trans, const float* B, int64_t ldb, int64_t nc, int64_t kc, float* bp) {
    avx2_gemm::pack_b(trans, B, ldb, nc, kc, bp);
  }
  static void tile(int m, int n, int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, float alpha,
                   float beta, bool first, const gemm_driver::Epilogue& ep) {
    avx2_gemm::kKernels[m](kc, ap, bp, c, ldc, n, alpha, beta, first, ep);
  }
};

}  // namespace
}  // namespace detail
}  // namespace cpuformer
