// Private: the ISA-independent half of the packed GEMM (see gemm_packed.cpp),
// in the layered scheme of Goto and van de Geijn ("Anatomy of high-performance
// matrix multiplication", 2008):
//   for jc over N in NC columns:           B block lives in L3
//     for pc over K in KC:                 pack B[pc:, jc:] into NR-wide panels
//       for ic over M in MC rows:          pack A[ic:, pc:] into MR-tall panels (L2)
//         for jr over the B panels:        one panel (KC x NR), from L1/L2
//           for ir over the A panels:      micro-kernel: C[MR, NR] += Ap · Bp
// A Kernel policy supplies the register tile (kMR x kNR), the block sizes,
// the packing routines and the micro-kernel:
//   static void pack_a(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* ap);
//   static void pack_b(bool trans, const float* B, int64_t ldb, int64_t nc, int64_t kc, float* bp);
//   static void tile(int m, int n, int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
//                    float alpha, float beta, bool first, const Epilogue& ep);
// Threads split C into disjoint row (or column) ranges and run the serial
// algorithm on them with their own packing buffers: no barriers.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <new>

#include "cpuformer/ops/activations.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace cpuformer {
namespace detail {
// Internal linkage: each translation unit that includes this (one per
// instruction set in a runtime-dispatch build, see gemm_packed.cpp) gets its own
// copy, so the linker can never pick a copy compiled for a wider ISA.
namespace {
namespace gemm_driver {

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// What a tile does after its product: add the bias row (first K block only)
// and apply the activation (last K block only).
struct Epilogue {
  const float* bias;  // bias of the tile's first column, or null
  Activation act;
  bool last;
};

// A 64-byte aligned scratch buffer per thread, grown on demand, kept for
// reuse. `slack` floats past the request may be written by vector stores.
struct Scratch {
  static constexpr int64_t kSlack = 16;
  float* p = nullptr;
  int64_t n = 0;
  ~Scratch() { std::free(p); }
  float* get(int64_t need) {
    if (need > n) {
      std::free(p);
      p = nullptr;
      n = 0;
      const size_t bytes = static_cast<size_t>(round_up((need + kSlack) * int64_t(sizeof(float)), 64));
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) throw std::bad_alloc();
      n = need;
    }
    return p;
  }
};
inline thread_local Scratch tl_apack, tl_bpack;

// B packed once (a weight matrix, see prepack_b): what pack_b would write
// for every (jc, pc) block, laid out [pc block][panel over all N][kc][kNR],
// so block (jc, pc) starts at data + pc · npad + (n0 + jc) · kc, where npad
// = N rounded up to kNR and n0 the first column this call computes.
struct Prepacked {
  const float* data = nullptr;
  int64_t npad = 0;
  int64_t n0 = 0;
};

// Floats prepack_b writes for B [N, K] (stored transposed: row n is column n).
template <class Kn>
int64_t prepacked_floats(int64_t N, int64_t K) {
  return round_up(N, Kn::kNR) * K;
}

// out = the Prepacked layout of B, given as W [N, K] row-major (ldw).
template <class Kn>
void prepack_b(const float* W, int64_t ldw, int64_t N, int64_t K, float* out) {
  const int64_t npad = round_up(N, Kn::kNR);
  for (int64_t pc = 0; pc < K; pc += Kn::kKC)
    Kn::pack_b(true, W + pc, ldw, N, std::min<int64_t>(Kn::kKC, K - pc), out + pc * npad);
}

// bias: the bias of C's first column (or null); act applies to C's final values.
// pre.data set: B is ignored and its panels are read from pre instead.
template <class Kn>
void gemm_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias, Activation act,
                 const Prepacked& pre = Prepacked()) {
  constexpr int64_t MR = Kn::kMR, NR = Kn::kNR, KC = Kn::kKC, MC = Kn::kMC, NC = Kn::kNC;
  float* bbuf = pre.data ? nullptr : tl_bpack.get(std::min(K, KC) * round_up(std::min(N, NC), NR));
  float* ap = tl_apack.get(std::min(K, KC) * round_up(std::min(M, MC), MR));
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const bool first = pc == 0;
      Epilogue ep{nullptr, act, pc + kc >= K};
      const float* bp = pre.data ? pre.data + pc * pre.npad + (pre.n0 + jc) * kc : bbuf;
      if (!pre.data) Kn::pack_b(tb, tb ? B + jc * ldb + pc : B + pc * ldb + jc, ldb, nc, kc, bbuf);
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min(MC, M - ic);
        // The block's rows in ceil(mc / MR) tiles of balanced heights (32
        // rows: 11 + 11 + 10, not 14 + 14 + 4: a short tile has too few
        // accumulators to hide the FMA latency and costs nearly a full one).
        // Tile t's rows start at row_of(t) and sit in packed panel t.
        const int64_t tiles = (mc + MR - 1) / MR, base = mc / tiles, extra = mc % tiles;
        const auto row_of = [&](int64_t t) { return t * base + std::min(t, extra); };
        for (int64_t t = 0; t < tiles; ++t) {
          const int64_t r0 = row_of(t);
          Kn::pack_a(ta, ta ? A + pc * lda + ic + r0 : A + (ic + r0) * lda + pc, lda, row_of(t + 1) - r0, kc,
                     ap + t * MR * kc);
        }
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int n = static_cast<int>(std::min(NR, nc - jr));
          ep.bias = bias ? bias + jc + jr : nullptr;
          for (int64_t t = 0; t < tiles; ++t) {
            const int64_t r0 = row_of(t);
            Kn::tile(static_cast<int>(row_of(t + 1) - r0), n, kc, ap + t * MR * kc, bp + jr * kc,
                     C + (ic + r0) * ldc + jc + jr, ldc, alpha, beta, first, ep);
          }
        }
      }
    }
  }
}

template <class Kn>
void packed_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int nthreads, const float* bias,
                 Activation act, const Prepacked& pre = Prepacked()) {
  // Split the larger of M and N: every thread packs all of the other operand,
  // so that is the cheaper duplication. Pieces stay multiples of the tile.
  // With B packed once (inference), splitting rows duplicates no packing at
  // all, and keeps each thread's rows of C in its own cache for the next
  // product: rows, but only when every thread gets at least three full
  // tiles. Below that,
  // a row split shortens the tiles (32 rows on 2 threads: two 8-row tiles
  // each instead of 11 + 11 + 10) and makes both threads stream the whole
  // weight; splitting columns keeps full tiles and halves each thread's
  // share of the weight (32 x 512 x 2048 on 2 threads: 251 -> 317 GFLOP/s).
  const bool split_m = pre.data ? M >= 3 * Kn::kMR * nthreads : M >= N;
  const int64_t tile = split_m ? (pre.data ? 1 : Kn::kMR) : Kn::kNR;
  const int64_t extent = split_m ? M : N;
  // A piece is at least two tiles: a 64 x 128 · 128 x 128 product still
  // splits into two 64-column halves.
  const int nt = static_cast<int>(std::min<int64_t>(nthreads, split_m && pre.data ? M / 16 : extent / (2 * tile)));
  if (nt <= 1) {
    gemm_serial<Kn>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, act, pre);
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
          gemm_serial<Kn>(ta, tb, hi - lo, N, K, alpha, ta ? A + lo : A + lo * lda, lda, B, ldb, beta, C + lo * ldc,
                          ldc, bias, act, pre);
        else
          gemm_serial<Kn>(ta, tb, M, hi - lo, K, alpha, A, lda, pre.data ? B : tb ? B + lo * ldb : B + lo, ldb, beta,
                          C + lo, ldc, bias ? bias + lo : nullptr, act, Prepacked{pre.data, pre.npad, pre.n0 + lo});
      }
    } catch (...) {
#pragma omp critical(cpuformer_gemm_error)
      error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace gemm_driver
}  // namespace
}  // namespace detail
}  // namespace cpuformer
