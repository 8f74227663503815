// Private: the first part of the flash-attention body (attention_kernels.hpp):
// packets, the block GEMM, block staging, the per-call Problem, the masks and
// the logits of one score row. Compiled once per instruction set: Packet and
// W are the including object's SIMD width (16 floats with AVX-512, 8 with
// AVX2, 4 with SSE2), and the block and tile sizes follow from W.
//
// Scaled dot-product attention, flash-style; contract in attention.hpp.
//
// Work layout (blocks of kBQ query rows and kBK keys; nothing of size L x S):
//   forward      parallel over (b, h, query block). Each task streams the key
//                blocks with an online softmax (running max m, running sum l)
//                and keeps lse_i = m_i + log l_i per row.
//   backward     recomputes p_ij = exp(s_ij - lse_i) block by block and uses
//                  dV_j += Σ_i drop_ij p_ij dO_i
//                  dS_ij = p_ij (drop_ij dO_i·v_j - D_i) · scale,  D_i = dO_i·out_i
//                  dQ_i += Σ_j dS_ij k_j,   dK_j += Σ_i dS_ij q_i
//                (D_i = dO_i·out_i holds with dropout too). Deterministic, no
//                atomics: either one task per (b, h) does everything (key
//                blocks outer, dQ in a per-head buffer), or two passes: one
//                task per (b, h, key block) for dK/dV, one per (b, h, query
//                block) for dQ. Both add the same terms in the same order, so
//                the gradients do not depend on the thread count.
//
// Score blocks are computed by small register-tiled GEMMs (block_gemm) whose
// right operand has contiguous rows. Two layouts are used so that no block is
// ever transposed inside the key loop:
//   "query-major" S[i][j] = q_i·k_j   (Kᵀ packed once per key block)
//   "key-major"   Sᵀ[j][i] = k_j·q_i  (Qᵀ packed once per query block)
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "cpuformer/ops/attention.hpp"
#include "cpuformer/runtime/rng.hpp"
#include "isa_dispatch.hpp"

namespace cpuformer {
namespace detail {
namespace {  // internal linkage: one copy per instruction-set object (isa_dispatch.hpp)
namespace attn {

namespace ei = Eigen::internal;
using Packet = ei::packet_traits<float>::type;
constexpr int W = ei::packet_traits<float>::size;  // floats per SIMD packet
// Query rows and keys per block. AVX2 (8 lanes, 6-row micro-tiles): 48, a
// whole number of tiles (64 left a 4-row remainder tile) and every block of a
// step inside the 32 KB L1; 3-5% faster than 64 at T=2048 on one Zen 3 core.
constexpr int kBQ = W >= 16 ? 64 : 48;
constexpr int kBK = kBQ;
static_assert(kBQ % W == 0 && kBK % W == 0, "blocks must hold whole packets");
constexpr float kInf = std::numeric_limits<float>::infinity();

inline Packet load(const float* x) { return ei::ploadu<Packet>(x); }
inline void store(float* x, const Packet& v) { ei::pstoreu(x, v); }
inline Packet bcast(float x) { return ei::pset1<Packet>(x); }
inline int64_t round_up(int64_t n) { return (n + W - 1) / W * W; }

// exp(x) for x <= ~0 with exp(-inf) = 0 exactly, results below FLT_MIN flushed
// to 0 (no denormals in the following GEMMs) and NaN propagated.
inline Packet exp_ps(const Packet& x) {
  const Packet y = ei::pselect(ei::pcmp_lt(x, bcast(-87.0f)), bcast(0.0f), ei::pexp(x));
  return ei::pselect(ei::pcmp_eq(x, x), y, x);
}

// ---------------------------------------------------------------------------
// block_gemm: C[M, N] (= or +=) A[M, K] · B[K, N], all small.
// A(i, k) = A[i*a_rs + k*a_cs] (A is only read by broadcasts, so any layout,
// including a transposed view, is fine); B has contiguous rows with stride
// ldb and N is a multiple of W; C has row stride ldc.
// Each C element accumulates its K products in order k = 0, 1, ... with FMA.
constexpr int kNV = W >= 16 ? 4 : 2;  // packets per micro-tile row
constexpr int kMR = W >= 8 ? 6 : 4;   // rows per micro-tile (AVX2: 6 x 2 packets, 12 of 16 registers)

// Layouts of A with a compile-time unit stride: kUnitRow (a_rs == 1, a
// transposed view: the broadcasts use constant offsets) and kUnitCol (a_cs ==
// 1, rows contiguous in k). Knowing either stride frees the registers that the
// general loop otherwise spills on AVX2.
enum ALayout { kGeneral, kUnitRow, kUnitCol };

template <int MR, int NV, int kLayout>
void micro_tile(int K, const float* A, int64_t a_rs_arg, int64_t a_cs_arg, const float* B, int64_t ldb, float* C,
                int64_t ldc, bool accumulate) {
  const int64_t a_rs = kLayout == kUnitRow ? 1 : a_rs_arg;
  const int64_t a_cs = kLayout == kUnitCol ? 1 : a_cs_arg;
  Packet c[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) c[r][v] = accumulate ? load(C + r * ldc + v * W) : bcast(0.0f);
  for (int k = 0; k < K; ++k) {
    const float* a = A + k * a_cs;
    const float* b = B + k * ldb;
    Packet bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load(b + v * W);
    for (int r = 0; r < MR; ++r) {
      const Packet av = bcast(a[r * a_rs]);
      for (int v = 0; v < NV; ++v) c[r][v] = ei::pmadd(av, bv[v], c[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) store(C + r * ldc + v * W, c[r][v]);
}

using TileFn = void (*)(int, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, bool);
template <int kLayout, int... I>
constexpr std::array<TileFn, sizeof...(I)> make_tiles(std::integer_sequence<int, I...>) {
  return {{&micro_tile<I / kNV + 1, I % kNV + 1, kLayout>...}};
}
using Tiles = std::array<TileFn, kMR * kNV>;
constexpr Tiles kTiles[3] = {make_tiles<kGeneral>(std::make_integer_sequence<int, kMR * kNV>{}),
                             make_tiles<kUnitRow>(std::make_integer_sequence<int, kMR * kNV>{}),
                             make_tiles<kUnitCol>(std::make_integer_sequence<int, kMR * kNV>{})};

void block_gemm(int M, int N, int K, const float* A, int64_t a_rs, int64_t a_cs, const float* B, int64_t ldb,
                float* C, int64_t ldc, bool accumulate) {
  const int nvec = N / W;
  const Tiles& tiles = kTiles[a_rs == 1 ? kUnitRow : a_cs == 1 ? kUnitCol : kGeneral];
  for (int jv = 0; jv < nvec; jv += kNV) {  // one column panel of B stays in L1 while the rows sweep it
    const int nv = std::min(kNV, nvec - jv);
    for (int i = 0; i < M; i += kMR) {
      const int mr = std::min(kMR, M - i);
      tiles[(mr - 1) * kNV + (nv - 1)](K, A + i * a_rs, a_rs, a_cs, B + jv * W, ldb, C + i * ldc + jv * W, ldc,
                                       accumulate);
    }
  }
}

// ---------------------------------------------------------------------------
// Block staging.

// dst[c][r] = x(b, h, t0 + r)[c] for r < n, c < len; columns [n, ldd) zeroed.
// dst is [len, ldd].
void pack_transposed(StridedBHT<const float> x, int64_t b, int64_t h, int64_t t0, int n, int64_t len, float* dst,
                     int ldd) {
  for (int64_t c = 0; c < len; ++c) std::fill(dst + c * ldd + n, dst + (c + 1) * ldd, 0.0f);
  for (int r = 0; r < n; ++r) {
    const float* src = x.at(b, h, t0 + r);
    for (int64_t c = 0; c < len; ++c) dst[c * ldd + r] = src[c];
  }
}

// Rows t0 .. t0+n of x as a block_gemm right operand: x itself when a row holds
// whole packets, otherwise a zero-padded copy in buf ([n, lenp]).
struct Rows {
  const float* p;
  int64_t ld;
};
Rows padded_rows(StridedBHT<const float> x, int64_t b, int64_t h, int64_t t0, int n, int64_t len, int64_t lenp,
                 float* buf) {
  if (len == lenp) return {x.at(b, h, t0), x.stride_t};
  for (int r = 0; r < n; ++r) {
    const float* src = x.at(b, h, t0 + r);
    std::copy(src, src + len, buf + r * lenp);
    std::fill(buf + r * lenp + len, buf + (r + 1) * lenp, 0.0f);
  }
  return {buf, lenp};
}

// bf16 products (AttentionParams::bf16): rows x cols of a block (leading
// dimension ld) rounded to bfloat16, nearest even.
void round_block(float* x, int rows, int cols, int64_t ld) {
  for (int r = 0; r < rows; ++r) {
    float* row = x + r * ld;
    for (int c = 0; c < cols; ++c) {  // branch-free, so it vectorises
      uint32_t u;
      std::memcpy(&u, row + c, 4);
      const uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
      u = (u & 0x7FFFFFFFu) > 0x7F800000u ? u : r;  // NaN stays NaN
      std::memcpy(row + c, &u, 4);
    }
  }
}

// Carves named per-thread buffers out of one allocation; with base == nullptr
// it only counts, so one layout function gives both the size and the views.
struct Carve {
  float* base;
  int64_t used = 0;
  float* take(int64_t n) {
    float* r = base ? base + used : nullptr;
    used += (n + 15) / 16 * 16;  // keep every buffer 64-byte aligned
    return r;
  }
};

using Workspace = LocalVector<float>;  // 64-byte aligned

// ---------------------------------------------------------------------------
// Per-call constants.
struct Problem {
  const AttentionParams& p;
  StridedBHT<const float> q, k, v;
  int64_t Dp, Dvp;  // D and Dv rounded up to whole packets
  float inv_keep;   // 1 / (1 - dropout_p)
  int64_t nqb, nkb;  // query and key block counts

  Problem(const AttentionParams& p_, StridedBHT<const float> q_, StridedBHT<const float> k_,
          StridedBHT<const float> v_)
      : p(p_), q(q_), k(k_), v(v_), Dp(round_up(p_.D)), Dvp(round_up(p_.Dv)),
        inv_keep(1.0f / (1.0f - p_.dropout_p)), nqb((p_.L + kBQ - 1) / kBQ), nkb((p_.S + kBK - 1) / kBK) {}

  // The [L, S] mask slice of head (b, h), or nullptr.
  const float* mask(int64_t b, int64_t h) const {
    return p.mask ? p.mask + b * p.mask_stride_b + h * p.mask_stride_h : nullptr;
  }
  // drop_ij: 0 for a dropped probability, 1/(1-p) for a kept one.
  float drop(int64_t bh, int64_t i, int64_t j) const {
    return rng_uniform(p.dropout_key, static_cast<uint64_t>((bh * p.L + i) * p.S + j)) >= p.dropout_p ? inv_keep
                                                                                                        : 0.0f;
  }
  // One past the last key that query block [i0, i0+nq) may see.
  int64_t key_end(int64_t i0, int nq) const { return p.is_causal ? std::min(p.S, i0 + nq) : p.S; }
  // The first query block that can see key block [j0, ...).
  int64_t first_query_block(int64_t j0) const { return p.is_causal ? std::min(j0 / kBQ, nqb) : 0; }

  // Sliding-window band. Blocks [a0, a0+na) x [c0, c0+nc) of two axes (query
  // and key, either way round: the band is symmetric) meet when one holds a
  // global index or they come within `window` of each other.
  bool banded() const { return p.window >= 0; }
  bool blocks_meet(int64_t a0, int64_t na, int64_t c0, int64_t nc) const {
    if (p.window < 0 || a0 < p.num_global || c0 < p.num_global) return true;
    return c0 <= a0 + na - 1 + p.window && c0 + nc - 1 >= a0 - p.window;
  }
  // Next block start to visit along the other axis after c0 (which does not
  // meet block [a0, a0+na)): the band's first block when c0 lies before it,
  // otherwise `end` (nothing more to visit).
  int64_t skip_to(int64_t a0, int64_t c0, int64_t blk, int64_t end) const {
    const int64_t lo = std::max<int64_t>(0, a0 - p.window) / blk * blk;
    return c0 < lo ? lo : end;
  }

  // Block layout: does the tile of queries [i0, i0+nq) x keys [j0, j0+nk)
  // (clipped to L x S) meet a nonzero cell?
  bool layout_meets(int64_t i0, int64_t nq, int64_t j0, int64_t nk) const {
    if (!p.layout) return true;
    const int64_t lb = p.layout_block;
    const int64_t qc1 = (std::min(i0 + nq, p.L) - 1) / lb, kc0 = j0 / lb, kc1 = (std::min(j0 + nk, p.S) - 1) / lb;
    for (int64_t qc = i0 / lb; qc <= qc1; ++qc) {
      const uint8_t* row = p.layout + qc * p.layout_cols;
      for (int64_t kc = kc0; kc <= kc1; ++kc)
        if (row[kc]) return true;
    }
    return false;
  }
};

// Layout mask of one score row (ops/bigbird_attention.hpp): entries
// x = start + c (c < n, x < len) whose cell, (x, other) when the row runs over
// queries or (other, x) when it runs over keys, is zero get -inf.
void layout_mask(const AttentionParams& p, float* row, int64_t start, int n, int64_t other, bool over_queries) {
  const int64_t lb = p.layout_block, oc = other / lb;
  const int64_t end = std::min(start + n, over_queries ? p.L : p.S);
  for (int64_t x = start; x < end;) {
    const int64_t xc = x / lb, seg_end = std::min(end, (xc + 1) * lb);
    const uint8_t cell = over_queries ? p.layout[xc * p.layout_cols + oc] : p.layout[oc * p.layout_cols + xc];
    if (!cell) std::fill(row + (x - start), row + (seg_end - start), -kInf);
    x = seg_end;
  }
}

// Band mask of one score row: entries x = start + c (c < n) with x >= num_global
// and |x - center| > window get -inf. Only called for center >= num_global.
void band_mask(const AttentionParams& p, float* row, int64_t start, int n, int64_t center) {
  const int64_t G = p.num_global;
  const int64_t lo = std::max(G, start), lo_end = std::min(center - p.window, start + n);
  if (lo_end > lo) std::fill(row + (lo - start), row + (lo_end - start), -kInf);
  const int64_t from = std::max<int64_t>(std::max(G, start), center + p.window + 1);
  if (from < start + n) std::fill(row + (from - start), row + n, -kInf);
}

// Logits of one key-major row: row[c] = s(i0 + c, j) for c < nqp, from
// row[c] = q·k on entry. s = scale·q·k + mask, -inf for a padded key or (causal)
// a key after the query. tmp: kBQ floats.
void logits_key_major(const Problem& pr, const float* mask, int64_t b, int64_t i0, int nq, int nqp, int64_t j,
                      float* row, float* tmp) {
  const AttentionParams& p = pr.p;
  const Packet sc = bcast(p.scale);
  if (mask) {
    for (int c = 0; c < nq; ++c) tmp[c] = mask[(i0 + c) * p.S + j];
    std::fill(tmp + nq, tmp + nqp, 0.0f);
    for (int c = 0; c < nqp; c += W) store(row + c, ei::pmadd(load(row + c), sc, load(tmp + c)));
  } else {
    for (int c = 0; c < nqp; c += W) store(row + c, ei::pmul(load(row + c), sc));
  }
  if (p.key_padding && p.key_padding[b * p.S + j]) {
    const Packet ninf = bcast(-kInf);
    for (int c = 0; c < nqp; c += W) store(row + c, ei::padd(load(row + c), ninf));
  }
  if (p.is_causal && j > i0) std::fill(row, row + std::min<int64_t>(j - i0, nqp), -kInf);
  if (pr.banded() && j >= p.num_global) band_mask(p, row, i0, nqp, j);
  if (p.layout) layout_mask(p, row, i0, nqp, j, true);
}

// Logits of one query-major row: row[jj] = s(i, j0 + jj) for jj < nkp, from
// row[jj] = q·k on entry. kbias[jj] is 0, or -inf for a padded key or a column
// past the block; tmp: kBK floats.
void logits_query_major(const Problem& pr, const float* mask, int64_t i, int64_t j0, int nk, int nkp,
                        const float* kbias, float* row, float* tmp) {
  const AttentionParams& p = pr.p;
  const Packet sc = bcast(p.scale);
  if (mask) {
    const float* m = mask + i * p.S + j0;
    if (nk < nkp) {
      std::copy(m, m + nk, tmp);
      std::fill(tmp + nk, tmp + nkp, 0.0f);
      m = tmp;
    }
    for (int c = 0; c < nkp; c += W) store(row + c, ei::pmadd(load(row + c), sc, load(m + c)));
  } else {
    for (int c = 0; c < nkp; c += W) store(row + c, ei::pmul(load(row + c), sc));
  }
  for (int c = 0; c < nkp; c += W) store(row + c, ei::padd(load(row + c), load(kbias + c)));
  if (p.is_causal && j0 + nkp - 1 > i) std::fill(row + std::max<int64_t>(0, i - j0 + 1), row + nkp, -kInf);
  if (pr.banded() && i >= p.num_global) band_mask(p, row, j0, nkp, i);
  if (p.layout) layout_mask(p, row, j0, nkp, i, false);
}

}  // namespace attn
}  // namespace
}  // namespace detail
}  // namespace cpuformer
