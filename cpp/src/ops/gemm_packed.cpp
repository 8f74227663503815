// Packed GEMM with an AVX-512 register-tiled micro-kernel, in the layered
// scheme of Goto and van de Geijn ("Anatomy of high-performance matrix
// multiplication", 2008):
//   for jc over N in kNC columns:           B block lives in L3
//     for pc over K in kKC:                 pack B[pc:, jc:] into kNR-wide panels
//       for ic over M in kMC rows:          pack A[ic:, pc:] into kMR-tall panels (L2)
//         for jr over the B panels:         one panel (kKC x kNR), from L2
//           for ir over the A panels:       micro-kernel: C[kMR, kNR] += Ap · Bp
// The micro-kernel keeps a 14 x 32 tile of C in 28 zmm registers; each k step
// loads two vectors of B and broadcasts 14 elements of A into 28 FMAs.
// Threads split C into disjoint row (or column) ranges and run the serial
// algorithm on them with their own packing buffers: no barriers.
#include "gemm_packed.hpp"

#include "cpuformer/ops/activations.hpp"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <new>

#if defined(__AVX512F__)
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 intrinsics start from an "undefined" vector that its own
// -Wuninitialized then reports inside avx512fintrin.h.
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace cpuformer {
namespace detail {

#if !defined(__AVX512F__)

bool packed_gemm_available() { return false; }
void packed_gemm(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
                 float*, int64_t, int, const float*, Activation) {
  std::terminate();  // unreachable: gemm() asks packed_gemm_available() first
}

#else

namespace {

constexpr int kMR = 14;
constexpr int kNR = 32;
// Block sizes from a sweep on Zen 5 (1 MB L2 per core, 48 KB L1): a long kc
// amortises each tile's C traffic, and both panels stream well from L2.
// KC 1024 beat 384 by 8-10% on the bench's GEMM shapes at 1 and 2 threads.
constexpr int64_t kKC = 1024;      // A panel 14 x 1024 = 56 KB, B panel 1024 x 32 = 128 KB
constexpr int64_t kMC = kMR * 8;   // an A block (112 x 1024, 448 KB) stays in L2
constexpr int64_t kNC = kNR * 32;  // a B block (1024 x 1024, 4 MB) stays in L3

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// A 64-byte aligned scratch buffer per thread, grown on demand, kept for reuse.
struct Scratch {
  float* p = nullptr;
  int64_t n = 0;
  ~Scratch() { std::free(p); }
  float* get(int64_t need) {
    if (need > n) {
      std::free(p);
      p = nullptr;
      n = 0;
      const size_t bytes = static_cast<size_t>(round_up(need * int64_t(sizeof(float)), 64));
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) throw std::bad_alloc();
      n = need;
    }
    return p;
  }
};
thread_local Scratch tl_apack, tl_bpack;

// What a tile does after its product: add the bias row (first K block only)
// and apply the activation (last K block only).
struct Epilogue {
  const float* bias;  // bias of the tile's first column, or null
  Activation act;
  bool last;
};

__mmask16 lane_mask(int n) { return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u); }

// Transposes 16 vectors in place: afterwards r[j] lane i = old r[i] lane j.
void transpose16(__m512 r[16]) {
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
void transpose16(const float* in, int64_t ld_in, float* out) {
  __m512 r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(in + i * ld_in);
  transpose16(r);
  for (int j = 0; j < 16; ++j) _mm512_store_ps(out + j * kNR, r[j]);
}

// Ap: ceil(mc / kMR) panels, each kc steps of kMR values (rows past mc are 0).
void pack_a(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* ap) {
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
void pack_b(bool trans, const float* B, int64_t ldb, int64_t nc, int64_t kc, float* bp) {
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
void micro_kernel(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c, int64_t ldc,
                  __mmask16 m0, __mmask16 m1, float alpha, float beta, bool first, const Epilogue& ep) {
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
    _mm512_mask_storeu_ps(row, m0, x0);
    _mm512_mask_storeu_ps(row + 16, m1, x1);
  }
  // The activation runs once the tile is final, while its rows are in L1.
  if (ep.last && ep.act != Activation::None) {
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

// bias: the bias of C's first column (or null); act applies to C's final values.
void gemm_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias,
                 Activation act) {
  float* bp = tl_bpack.get(std::min(K, kKC) * round_up(std::min(N, kNC), kNR));
  float* ap = tl_apack.get(std::min(K, kKC) * round_up(std::min(M, kMC), kMR));
  for (int64_t jc = 0; jc < N; jc += kNC) {
    const int64_t nc = std::min(kNC, N - jc);
    for (int64_t pc = 0; pc < K; pc += kKC) {
      const int64_t kc = std::min(kKC, K - pc);
      const bool first = pc == 0;
      Epilogue ep{nullptr, act, pc + kc >= K};
      pack_b(tb, tb ? B + jc * ldb + pc : B + pc * ldb + jc, ldb, nc, kc, bp);
      for (int64_t ic = 0; ic < M; ic += kMC) {
        const int64_t mc = std::min(kMC, M - ic);
        pack_a(ta, ta ? A + pc * lda + ic : A + ic * lda + pc, lda, mc, kc, ap);
        for (int64_t jr = 0; jr < nc; jr += kNR) {
          const int n = static_cast<int>(std::min<int64_t>(kNR, nc - jr));
          const __mmask16 m0 = lane_mask(n), m1 = lane_mask(n - 16);
          ep.bias = bias ? bias + jc + jr : nullptr;
          for (int64_t ir = 0; ir < mc; ir += kMR) {
            const int m = static_cast<int>(std::min<int64_t>(kMR, mc - ir));
            kKernels[m](kc, ap + ir * kc, bp + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc, m0, m1, alpha, beta,
                        first, ep);
          }
        }
      }
    }
  }
}

}  // namespace

bool packed_gemm_available() { return true; }

void packed_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int nthreads, const float* bias,
                 Activation act) {
  // Split the larger of M and N: every thread packs all of the other operand,
  // so that is the cheaper duplication. Pieces stay multiples of the tile.
  const bool split_m = M >= N;
  const int64_t tile = split_m ? kMR : kNR;
  const int64_t extent = split_m ? M : N;
  // A piece is at least two tiles: a 64 x 128 · 128 x 128 product still
  // splits into two 64-column halves.
  int nt = static_cast<int>(std::min<int64_t>(nthreads, extent / (2 * tile)));
  if (nt <= 1) {
    gemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, act);
    return;
  }
  const int64_t chunk = round_up((extent + nt - 1) / nt, tile);
  std::exception_ptr error;
#pragma omp parallel num_threads(nt)
  {
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    const int64_t lo = std::min(extent, t * chunk), hi = std::min(extent, lo + chunk);
    try {
      if (hi > lo) {
        if (split_m)
          gemm_serial(ta, tb, hi - lo, N, K, alpha, ta ? A + lo : A + lo * lda, lda, B, ldb, beta, C + lo * ldc, ldc,
                      bias, act);
        else
          gemm_serial(ta, tb, M, hi - lo, K, alpha, A, lda, tb ? B + lo * ldb : B + lo, ldb, beta, C + lo, ldc,
                      bias ? bias + lo : nullptr, act);
      }
    } catch (...) {
#pragma omp critical(cpuformer_gemm_error)
      error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

#endif  // __AVX512F__

}  // namespace detail
}  // namespace cpuformer
