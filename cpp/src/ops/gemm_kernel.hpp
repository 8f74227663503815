// Private: the register tile and packing of the packed float32 GEMM (the
// Kernel policy of gemm_driver.hpp), one body for two instruction sets.
//
// The micro-kernel keeps a kMR x 2·L tile of C in 2·kMR vector registers of L
// lanes; each k step loads two vectors of B and broadcasts kMR elements of A
// into 2·kMR FMAs. The tile is as tall as the register file allows once the
// two B vectors and the broadcast A element are counted:
//   AVX-512F:   L = 16, 32 zmm: a 14 x 32 tile in 28 accumulators
//   AVX2 + FMA: L = 8,  16 ymm: a  6 x 16 tile in 12 accumulators
// A vector policy (gemm_vec.hpp: Avx512, Avx2) supplies the lanes, the vector
// operations (also those vec_gelu.hpp needs), the L x L transposes, the
// packing of A (whose best shuffles differ between the two) and the block
// sizes; PackedKernel<V> turns it into the driver's policy. The structs are
// declared for every instruction set the including file is compiled for, and
// each file instantiates only the one its entry points name (gemm_packed.cpp
// the widest of its own target; kernels_avx2.cpp and kernels_avx512.cpp in a
// runtime-dispatch build). Internal linkage, as in gemm_driver.hpp.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "gemm_driver.hpp"
#include "gemm_vec.hpp"
#include "vec_gelu.hpp"
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 intrinsics start from an "undefined" vector that its own
// -Wuninitialized then reports inside avx512fintrin.h.
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace cpuformer {
namespace detail {
namespace {  // internal linkage, as in gemm_driver.hpp
namespace gemm_tile {

using gemm_driver::Epilogue;

// Bp: ceil(nc / kNR) panels, each kc steps of kNR = 2·L values (columns past
// nc are 0).
template <class V>
inline void pack_b(bool trans, const float* B, int64_t ldb, int64_t nc, int64_t kc, float* bp) {
  constexpr int L = V::kLanes, NR = 2 * L;
  if (!trans) {
    // element (k, n) at B[k * ldb + n]: walk B row by row (one contiguous
    // read per k, NR values to each panel); on AVX-512, 2-6% faster at 2
    // threads than walking a 32-column strip down all kc rows.
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = B + k * ldb;
      float* dst = bp + k * NR;
      int64_t q0 = 0;
      for (; q0 + NR <= nc; q0 += NR, dst += NR * kc) {
        V::store(dst, V::loadu(src + q0));
        V::store(dst + L, V::loadu(src + q0 + L));
      }
      if (q0 < nc) {
        const int cols = static_cast<int>(nc - q0);
        V::store(dst, V::maskload(src + q0, V::mask(cols)));
        V::store(dst + L, V::maskload(src + q0 + L, V::mask(cols - L)));
      }
    }
    return;
  }
  // element (k, n) at B[n * ldb + k]: column n of Bp is row n of B
  for (int64_t q0 = 0; q0 < nc; q0 += NR, bp += NR * kc) {
    const int cols = static_cast<int>(std::min<int64_t>(NR, nc - q0));
    int64_t k = 0;
    if (cols == NR) {
      for (; k + L <= kc; k += L) {
        V::transpose(B + q0 * ldb + k, ldb, bp + k * NR, NR);
        V::transpose(B + (q0 + L) * ldb + k, ldb, bp + k * NR + L, NR);
      }
    }
    for (int j = 0; j < NR; ++j) {
      const float* src = B + (q0 + j) * ldb;
      for (int64_t kk = k; kk < kc; ++kk) bp[kk * NR + j] = j < cols ? src[kk] : 0.0f;
    }
  }
}

// The epilogue's activation on a register (tanh-GELU is left to activation_inplace).
template <class V>
inline typename V::T activate(typename V::T x, Activation act) {
  if (act == Activation::Gelu) return vgelu<V>(x);
  if (act == Activation::Relu) return V::max_keep_nan(0.0f, x);  // x < 0 ? 0 : x, NaN kept
  return x;
}

// C[R, n] (op)= alpha · Ap[R, kc] · Bp[kc, n] for one tile, n <= 2·L columns.
// first: C = alpha·AB + beta·C (beta 0 overwrites); otherwise C += alpha·AB.
template <class V, int R>
inline void micro_kernel(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c, int64_t ldc,
                         int n, float alpha, float beta, bool first, const Epilogue& ep) {
  using T = typename V::T;
  constexpr int L = V::kLanes, MR = V::kMR, NR = 2 * L;
  // C is written (and maybe read) at the end: start fetching its rows (one
  // 64-byte line per 16 floats) now, behind the FMA loop. Without this, the
  // stores of a fresh C miss on every line (AVX-512, measured: 155 vs 220
  // GFLOP/s for one core with C rows 3 KB apart).
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < NR; j += 16) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + j), _MM_HINT_T0);
  T c0[R], c1[R];
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = V::zero();
  const auto step = [&]() {
    const T b0 = V::load(bp);
    const T b1 = V::load(bp + L);
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      const T a = V::broadcast(ap + i);
      c0[i] = V::fmadd(a, b0, c0[i]);
      c1[i] = V::fmadd(a, b1, c1[i]);
    }
    ap += MR;
    bp += NR;
  };
  // (The unroll count must be a literal: GCC 12 crashes on a dependent one.)
  if constexpr (V::kUnrollK4) {
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; ++k) step();
  } else {
    for (int64_t k = 0; k < kc; ++k) step();
  }
  const bool full = V::kUnmaskedFullTiles && n == NR;
  const typename V::Mask m0 = V::mask(n), m1 = V::mask(n - L);
  const T va = V::set1(alpha), vb = V::set1(beta);
  const bool add_bias = first && ep.bias;
  // The exact GELU and ReLU are applied on the registers before the store.
  const bool in_register = ep.last && (ep.act == Activation::Gelu || ep.act == Activation::Relu);
  const T bias0 = add_bias ? V::maskload(ep.bias, m0) : V::zero();
  const T bias1 = add_bias ? V::maskload(ep.bias + L, m1) : V::zero();
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) {
    float* row = c + i * ldc;
    T x0 = alpha == 1.0f ? c0[i] : V::mul(va, c0[i]);
    T x1 = alpha == 1.0f ? c1[i] : V::mul(va, c1[i]);
    if (!first || beta != 0.0f) {
      const T y0 = full ? V::loadu(row) : V::maskload(row, m0);
      const T y1 = full ? V::loadu(row + L) : V::maskload(row + L, m1);
      const bool scale = first && beta != 1.0f;
      x0 = V::add(x0, scale ? V::mul(vb, y0) : y0);
      x1 = V::add(x1, scale ? V::mul(vb, y1) : y1);
    }
    if (add_bias) {
      x0 = V::add(x0, bias0);
      x1 = V::add(x1, bias1);
    }
    if (in_register) {
      x0 = activate<V>(x0, ep.act);
      if (n > L) x1 = activate<V>(x1, ep.act);
    }
    if (full) {
      V::storeu(row, x0);
      V::storeu(row + L, x1);
    } else {
      V::maskstore(row, m0, x0);
      V::maskstore(row + L, m1, x1);
    }
  }
  // Other activations run once the tile is final, while its rows are in L1.
  if (ep.last && ep.act != Activation::None && !in_register)
    for (int i = 0; i < R; ++i) activation_inplace(c + i * ldc, n, ep.act);
}

using TileFn = void (*)(int64_t, const float*, const float*, float*, int64_t, int, float, float, bool,
                        const Epilogue&);

// kTiles[m]: the micro-kernel for m rows, m = 1..kMR.
template <class V, class Rows = std::make_integer_sequence<int, V::kMR>>
struct Tiles;
template <class V, int... I>
struct Tiles<V, std::integer_sequence<int, I...>> {
  static constexpr TileFn kTiles[V::kMR + 1] = {nullptr, micro_kernel<V, I + 1>...};
};

}  // namespace gemm_tile

// The policy gemm_driver.hpp reads.
template <class V>
struct PackedKernel {
  static constexpr int kMR = V::kMR;
  static constexpr int kNR = 2 * V::kLanes;
  static constexpr int64_t kKC = V::kKC;
  static constexpr int64_t kMC = V::kMC;
  static constexpr int64_t kNC = V::kNC;
  static void pack_a(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* ap) {
    V::pack_a(trans, A, lda, mc, kc, ap);
  }
  static void pack_b(bool trans, const float* B, int64_t ldb, int64_t nc, int64_t kc, float* bp) {
    gemm_tile::pack_b<V>(trans, B, ldb, nc, kc, bp);
  }
  static void tile(int m, int n, int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, float alpha,
                   float beta, bool first, const gemm_driver::Epilogue& ep) {
    gemm_tile::Tiles<V>::kTiles[m](kc, ap, bp, c, ldc, n, alpha, beta, first, ep);
  }
};

#if defined(__AVX512F__)
using Avx512Kernel = PackedKernel<gemm_tile::Avx512>;
#endif
#if defined(__AVX2__) && defined(__FMA__)
using Avx2Kernel = PackedKernel<gemm_tile::Avx2>;
#endif

}  // namespace
}  // namespace detail
}  // namespace cpuformer
