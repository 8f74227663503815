// Skinny products C = alpha · A · Bᵀ + beta · C with a handful of rows in A:
// the decoding step, where every Linear multiplies one token by its weight.
// Each weight row is a contiguous dot product, so the kernel walks 4 rows of
// B at a time with up to 4 rows of A held against them: 16 accumulators, and
// every byte of B read once per call. That read is the whole cost (memory
// bandwidth), so both cores share it: threads split the columns of C.
#include "gemv.hpp"

#include <algorithm>
#include <exception>

#if defined(__AVX512F__)
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // see gemm_packed.cpp
#endif
#endif

namespace cpuformer {
namespace detail {

#if !defined(__AVX512F__)

bool gemv_available() { return false; }
void gemv_nt(int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float, float*, int64_t,
             int, const float*, Activation) {
  std::terminate();  // unreachable: gemm() asks gemv_available() first
}

#else

namespace {

constexpr int kRowsB = 4;  // columns of C per step
// Below this many elements of B a second thread costs more than it saves.
constexpr int64_t kMinWorkPerThread = int64_t(1) << 16;

__mmask16 tail_mask(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

void store(float* c, float alpha, float beta, float sum) {
  const float v = alpha * sum;
  *c = beta == 0.0f ? v : v + beta * *c;
}

// Columns [n0, n1) of C for MA (1..4) rows of A.
template <int MA>
void columns(int64_t n0, int64_t n1, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
             int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t kfull = K / 16 * 16;
  const __mmask16 tail = tail_mask(K - kfull);
  int64_t n = n0;
  for (; n + kRowsB <= n1; n += kRowsB) {
    __m512 acc[MA][kRowsB];
    for (int m = 0; m < MA; ++m)
      for (int j = 0; j < kRowsB; ++j) acc[m][j] = _mm512_setzero_ps();
    const float* b = B + n * ldb;
    for (int64_t k = 0; k < kfull; k += 16) {
      __m512 bv[kRowsB];
      for (int j = 0; j < kRowsB; ++j) bv[j] = _mm512_loadu_ps(b + j * ldb + k);
      for (int m = 0; m < MA; ++m) {
        const __m512 a = _mm512_loadu_ps(A + m * lda + k);
        for (int j = 0; j < kRowsB; ++j) acc[m][j] = _mm512_fmadd_ps(a, bv[j], acc[m][j]);
      }
    }
    if (kfull < K) {
      __m512 bv[kRowsB];
      for (int j = 0; j < kRowsB; ++j) bv[j] = _mm512_maskz_loadu_ps(tail, b + j * ldb + kfull);
      for (int m = 0; m < MA; ++m) {
        const __m512 a = _mm512_maskz_loadu_ps(tail, A + m * lda + kfull);
        for (int j = 0; j < kRowsB; ++j) acc[m][j] = _mm512_fmadd_ps(a, bv[j], acc[m][j]);
      }
    }
    for (int m = 0; m < MA; ++m)
      for (int j = 0; j < kRowsB; ++j) store(C + m * ldc + n + j, alpha, beta, _mm512_reduce_add_ps(acc[m][j]));
  }
  for (; n < n1; ++n) {  // the last few columns, one at a time
    __m512 acc[MA];
    for (int m = 0; m < MA; ++m) acc[m] = _mm512_setzero_ps();
    const float* b = B + n * ldb;
    for (int64_t k = 0; k < K; k += 16) {
      const __mmask16 mk = tail_mask(K - k);
      const __m512 bv = _mm512_maskz_loadu_ps(mk, b + k);
      for (int m = 0; m < MA; ++m) acc[m] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, A + m * lda + k), bv, acc[m]);
    }
    for (int m = 0; m < MA; ++m) store(C + m * ldc + n, alpha, beta, _mm512_reduce_add_ps(acc[m]));
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

}  // namespace

bool gemv_available() { return true; }

void gemv_nt(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
             float beta, float* C, int64_t ldc, int nthreads, const float* bias, Activation act) {
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

#endif  // __AVX512F__

}  // namespace detail
}  // namespace cpuformer
