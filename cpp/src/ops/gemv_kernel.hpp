// Private: the skinny-product kernel behind gemv.hpp.
//
// Skinny products C = alpha · A · Bᵀ + beta · C with a handful of rows in A:
// the decoding step, where every Linear multiplies one token by its weight.
// Each weight row is a contiguous dot product, so the kernel walks 4 rows of
// B at a time with up to 4 rows of A held against them: 16 accumulators, and
// every byte of B read once per call. That read is the whole cost (memory
// bandwidth), so both cores share it: threads split the columns of C.
// One body serves two instruction sets through `Vec` below: AVX-512F (16
// lanes, masked loads for the tail of K) or else AVX2 + FMA (8 lanes,
// _mm256_maskload_ps for the tail), whichever the including file is compiled
// for (gemv.cpp for the library's own target; kernels_avx2.cpp and
// kernels_avx512.cpp in a runtime-dispatch build). Internal linkage, as in
// gemm_driver.hpp.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "cpuformer/ops/activations.hpp"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // see gemm_kernel.hpp
#endif

namespace cpuformer {
namespace detail {
namespace {

// The few vector operations the kernel needs. mask(n) selects the first
// min(n, kLanes) lanes; masked loads read only those lanes and zero the rest.
#if defined(__AVX512F__)
struct Vec {
  static constexpr int kLanes = 16;
  using V = __m512;
  using Mask = __mmask16;
  static Mask mask(int64_t n) { return n >= 16 ? Mask(0xFFFF) : Mask((1u << n) - 1u); }
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static float sum(V v) { return _mm512_reduce_add_ps(v); }
};
#else
struct Vec {
  static constexpr int kLanes = 8;
  using V = __m256;
  using Mask = __m256i;  // lane i active when its sign bit is set
  static Mask mask(int64_t n) {
    const int active = static_cast<int>(std::min<int64_t>(n, 8));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(active), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  // Inactive lanes are not accessed (no fault past the end of a row).
  static V load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  // (lanes 0-3 + 4-7), then the two halves of that, then the last pair.
  static float sum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
#endif

constexpr int kRowsB = 4;  // columns of C per step
constexpr int kLanes = Vec::kLanes;
// Below this many elements of B a second thread costs more than it saves.
constexpr int64_t kMinWorkPerThread = int64_t(1) << 16;

void store(float* c, float alpha, float beta, float sum) {
  const float v = alpha * sum;
  *c = beta == 0.0f ? v : v + beta * *c;
}

// Columns [n0, n1) of C for MA (1..4) rows of A.
template <int MA>
void columns(int64_t n0, int64_t n1, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
             int64_t ldb, float beta, float* C, int64_t ldc) {
  using V = Vec::V;
  const int64_t kfull = K / kLanes * kLanes;
  const Vec::Mask tail = Vec::mask(K - kfull);
  int64_t n = n0;
  for (; n + kRowsB <= n1; n += kRowsB) {
    V acc[MA][kRowsB];
    for (int m = 0; m < MA; ++m)
      for (int j = 0; j < kRowsB; ++j) acc[m][j] = Vec::zero();
    const float* b = B + n * ldb;
    for (int64_t k = 0; k < kfull; k += kLanes) {
      V bv[kRowsB];
      for (int j = 0; j < kRowsB; ++j) bv[j] = Vec::load(b + j * ldb + k);
      for (int m = 0; m < MA; ++m) {
        const V a = Vec::load(A + m * lda + k);
        for (int j = 0; j < kRowsB; ++j) acc[m][j] = Vec::fmadd(a, bv[j], acc[m][j]);
      }
    }
    if (kfull < K) {
      V bv[kRowsB];
      for (int j = 0; j < kRowsB; ++j) bv[j] = Vec::load(b + j * ldb + kfull, tail);
      for (int m = 0; m < MA; ++m) {
        const V a = Vec::load(A + m * lda + kfull, tail);
        for (int j = 0; j < kRowsB; ++j) acc[m][j] = Vec::fmadd(a, bv[j], acc[m][j]);
      }
    }
    for (int m = 0; m < MA; ++m)
      for (int j = 0; j < kRowsB; ++j) store(C + m * ldc + n + j, alpha, beta, Vec::sum(acc[m][j]));
  }
  for (; n < n1; ++n) {  // the last few columns, one at a time
    V acc[MA];
    for (int m = 0; m < MA; ++m) acc[m] = Vec::zero();
    const float* b = B + n * ldb;
    for (int64_t k = 0; k < K; k += kLanes) {
      const Vec::Mask mk = Vec::mask(K - k);
      const V bv = Vec::load(b + k, mk);
      for (int m = 0; m < MA; ++m) acc[m] = Vec::fmadd(Vec::load(A + m * lda + k, mk), bv, acc[m]);
    }
    for (int m = 0; m < MA; ++m) store(C + m * ldc + n, alpha, beta, Vec::sum(acc[m]));
  }
}

// Columns [n0, n1) of every row of C, then the epilogue on that block.
void columns_all_rows(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* A, int64_t lda,
                      const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias,
                      Activation act) {
  for (int64_t m0 = 0; m0 < M; m0 += 4) {
    const float* a = A + m0 * lda;
    float* c = C + m0 * ldc;
    switch (std::min<int64_t>(4, M - m0)) {
      case 1: columns<1>(n0, n1, K, alpha, a, lda, B, ldb, beta, c, ldc); break;
      case 2: columns<2>(n0, n1, K, alpha, a, lda, B, ldb, beta, c, ldc); break;
      case 3: columns<3>(n0, n1, K, alpha, a, lda, B, ldb, beta, c, ldc); break;
      default: columns<4>(n0, n1, K, alpha, a, lda, B, ldb, beta, c, ldc); break;
    }
  }
  for (int64_t m = 0; m < M; ++m) {
    float* row = C + m * ldc;
    if (bias)
      for (int64_t n = n0; n < n1; ++n) row[n] += bias[n];
    activation_inplace(row + n0, n1 - n0, act);
  }
}

inline void gemv_run(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                     int64_t ldb, float beta, float* C, int64_t ldc, int nthreads, const float* bias, Activation act) {
  const int64_t by_work = std::max<int64_t>(1, N * K / kMinWorkPerThread);
  const int nt = static_cast<int>(std::min<int64_t>({int64_t(nthreads), by_work, (N + kRowsB - 1) / kRowsB}));
  if (nt <= 1) {
    columns_all_rows(M, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, act);
    return;
  }
  // Column chunks are multiples of kRowsB, so only the last has a remainder.
  const int64_t chunk = (N + nt - 1) / nt + kRowsB - 1;
  const int64_t step = chunk - chunk % kRowsB;
#pragma omp parallel for schedule(static, 1) num_threads(nt)
  for (int t = 0; t < nt; ++t) {
    const int64_t lo = std::min(N, t * step), hi = t == nt - 1 ? N : std::min(N, lo + step);
    if (hi > lo) columns_all_rows(M, lo, hi, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, act);
  }
}

}  // namespace
}  // namespace detail
}  // namespace cpuformer
