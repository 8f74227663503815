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
#include "cpuformer/ops/attention.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "cpuformer/error.hpp"
#include "cpuformer/runtime/threads.hpp"
#include "cpuformer/runtime/rng.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cpuformer {
namespace {

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

// A window wider than the problem is no band at all; clamping keeps the band
// arithmetic far from overflow.
AttentionParams clamped(const AttentionParams& p) {
  AttentionParams c = p;
  if (c.window > c.L + c.S) c.window = -1;
  if (c.window < 0) c.num_global = 0;
  return c;
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

using Workspace = std::vector<float, Eigen::aligned_allocator<float>>;

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

// ---------------------------------------------------------------------------
// Forward: one task per (b, h, query block), key-major scores.
struct ForwardScratch {
  float *qt, *st, *acc, *vpad, *m, *l, *alpha, *tmp;
  int64_t layout(float* base, const Problem& pr) {
    Carve c{base};
    qt = c.take(pr.p.D * kBQ);     // [D, kBQ]    Qᵀ of the block, columns >= nq zero
    st = c.take(kBK * kBQ);        // [kBK, kBQ]  Sᵀ, then Pᵀ
    acc = c.take(kBQ * pr.Dvp);    // [kBQ, Dvp]  unnormalised output rows
    vpad = c.take(kBK * pr.Dvp);   // [kBK, Dvp]  V rows padded to whole packets (Dv % W != 0)
    m = c.take(kBQ);               // [kBQ] running max
    l = c.take(kBQ);               // [kBQ] running sum of exp(s - m)
    alpha = c.take(kBQ);           // [kBQ] rescale factor of this key block
    tmp = c.take(kBQ);
    return c.used;
  }
};

void forward_query_block(const Problem& pr, StridedBHT<float> out, float* lse, int64_t b, int64_t h, int64_t qb,
                         const ForwardScratch& s) {
  const AttentionParams& p = pr.p;
  const int64_t bh = b * p.H + h, i0 = qb * kBQ;
  const int nq = static_cast<int>(std::min<int64_t>(kBQ, p.L - i0));
  const int nqp = static_cast<int>(round_up(nq));
  const float* mask = pr.mask(b, h);

  pack_transposed(pr.q, b, h, i0, nq, p.D, s.qt, kBQ);
  std::fill(s.m, s.m + kBQ, -kInf);
  std::fill(s.l, s.l + kBQ, 0.0f);
  std::fill(s.acc, s.acc + nq * pr.Dvp, 0.0f);

  const int64_t kend = pr.key_end(i0, nq);
  for (int64_t j0 = 0; j0 < kend; j0 += kBK) {
    if (!pr.blocks_meet(i0, nq, j0, kBK)) {  // outside the band: jump to it, or stop
      j0 = pr.skip_to(i0, j0, kBK, kend) - kBK;
      continue;
    }
    if (!pr.layout_meets(i0, nq, j0, kBK)) continue;  // no cell of the block layout
    const int nk = static_cast<int>(std::min<int64_t>(kBK, kend - j0));
    // st[j][c] = k_{j0+j} · q_{i0+c}
    block_gemm(nk, nqp, static_cast<int>(p.D), pr.k.at(b, h, j0), pr.k.stride_t, 1, s.qt, kBQ, s.st, kBQ, false);
    // Logits and their column max.
    for (int c = 0; c < nqp; c += W) store(s.alpha + c, bcast(-kInf));  // alpha holds the block max for now
    for (int j = 0; j < nk; ++j) {
      float* row = s.st + j * kBQ;
      logits_key_major(pr, mask, b, i0, nq, nqp, j0 + j, row, s.tmp);
      for (int c = 0; c < nqp; c += W) store(s.alpha + c, ei::pmax(load(s.alpha + c), load(row + c)));
    }
    // New max; m_use = 0 while a column has seen only masked keys, so that
    // exp(-inf - m_use) = 0 instead of NaN.
    for (int c = 0; c < nqp; c += W) {
      const Packet m_old = load(s.m + c);
      const Packet m_new = ei::pmax(m_old, load(s.alpha + c));
      const Packet m_use = ei::pselect(ei::pcmp_eq(m_new, bcast(-kInf)), bcast(0.0f), m_new);
      store(s.m + c, m_new);
      store(s.tmp + c, m_use);
      store(s.alpha + c, exp_ps(ei::psub(m_old, m_use)));
    }
    // p = exp(s - m_use); l = l·alpha + Σ_j p
    for (int c = 0; c < nqp; c += W) {
      const Packet m_use = load(s.tmp + c);
      Packet sum = bcast(0.0f);
      for (int j = 0; j < nk; ++j) {
        float* x = s.st + j * kBQ + c;
        const Packet e = exp_ps(ei::psub(load(x), m_use));
        store(x, e);
        sum = ei::padd(sum, e);
      }
      store(s.l + c, ei::pmadd(load(s.l + c), load(s.alpha + c), sum));
    }
    for (int c = 0; c < nq; ++c) {
      if (s.alpha[c] == 1.0f) continue;
      float* a = s.acc + c * pr.Dvp;
      const Packet al = bcast(s.alpha[c]);
      for (int64_t e = 0; e < pr.Dvp; e += W) store(a + e, ei::pmul(load(a + e), al));
    }
    if (p.dropout_p > 0.0f) {
      for (int j = 0; j < nk; ++j)
        for (int c = 0; c < nq; ++c) s.st[j * kBQ + c] *= pr.drop(bh, i0 + c, j0 + j);
    }
    if (p.bf16) round_block(s.st, nk, nqp, kBQ);
    // acc[c] += Σ_j p[c][j] v_j
    const Rows vr = padded_rows(pr.v, b, h, j0, nk, p.Dv, pr.Dvp, s.vpad);
    block_gemm(nq, static_cast<int>(pr.Dvp), nk, s.st, 1, kBQ, vr.p, vr.ld, s.acc, pr.Dvp, true);
  }
  // out = acc / l; a row that saw only masked keys has l = 0: out = 0, lse = -inf.
  for (int c = 0; c < nq; ++c) {
    float* o = out.at(b, h, i0 + c);
    const float* a = s.acc + c * pr.Dvp;
    float* ls = lse + bh * p.L + i0 + c;
    if (s.l[c] == 0.0f) {
      std::fill(o, o + p.Dv, 0.0f);
      *ls = -kInf;
    } else {
      const float inv = 1.0f / s.l[c];
      for (int64_t e = 0; e < p.Dv; ++e) o[e] = a[e] * inv;
      *ls = s.m[c] + std::log(s.l[c]);
    }
  }
}

// ---------------------------------------------------------------------------
// Forward of one query row, for the few-query calls of incremental decoding
// (L <= kRowQueries): a key-major block would compute kBQ columns for one
// useful query. Query-major instead: the logits of every visible key, their
// softmax in one pass, then the value sum. Same masks, dropout and bf16
// rounding as the block kernel (the sums run in another order).
//
// One task covers heads [h0, h1) of query row i of batch b and walks the keys
// in the outer loop, so the heads' slices of a cached key (or value) row,
// adjacent in a [B, T, H*D] projection, are read in one sweep rather than
// one head at a time (a decoding step is bound by reading the KV cache).
// Each head's arithmetic is the same whatever the grouping.
constexpr int64_t kRowQueries = 2;

void forward_query_rows(const Problem& pr, StridedBHT<float> out, float* lse, int64_t b, int64_t h0, int64_t h1,
                        int64_t i, Workspace& ws) {
  const AttentionParams& p = pr.p;
  const int64_t nh = h1 - h0, kend = pr.key_end(i, 1), kendp = round_up(kend), ld = kendp + W;
  const int64_t need = nh * ld + 2 * kBK + nh * pr.Dvp + nh;
  if (static_cast<int64_t>(ws.size()) < need) ws.resize(static_cast<size_t>(need));
  float* srows = ws.data();  // [nh, ld]: logits, then probabilities, of each head
  float* kbias = srows + nh * ld;
  float* tmp = kbias + kBK;
  float* accs = tmp + kBK;  // [nh, Dvp]
  float* scale_of = accs + nh * pr.Dvp;  // [nh] 1 / l per head; 0 = every key masked
  const int64_t D = p.D, Dv = p.Dv, Dfull = D / W * W, Dvfull = Dv / W * W;
  for (int64_t j0 = 0; j0 < kend; j0 += kBK) {
    const int nk = static_cast<int>(std::min<int64_t>(kBK, kend - j0));
    const int nkp = static_cast<int>(round_up(nk));
    if (!pr.layout_meets(i, 1, j0, nk)) {  // no cell of the block layout: every key masked
      for (int64_t g = 0; g < nh; ++g) std::fill_n(srows + g * ld + j0, nkp, -kInf);
      continue;
    }
    const uint8_t* pad = p.key_padding ? p.key_padding + b * p.S + j0 : nullptr;
    for (int j = 0; j < nk; j += W) {  // W keys at a time
      const int n = std::min(W, nk - j);
      if (pad && std::all_of(pad + j, pad + j + n, [](uint8_t x) { return x != 0; })) {
        // masked below: no need to read the keys (decoding pads a prompt on the left)
        for (int64_t g = 0; g < nh; ++g) std::fill_n(srows + g * ld + j0 + j, n, 0.0f);
        continue;
      }
      for (int64_t g = 0; g < nh; ++g) {
        const float* qi = pr.q.at(b, h0 + g, i);
        float* dots = srows + g * ld + j0 + j;
        if (n == W && Dfull == D) {
          // W partial-sum packets, transposed, summed: W dots in one packet
          // instead of a horizontal sum per key.
          ei::PacketBlock<Packet, W> blk;
          for (int jj = 0; jj < W; ++jj) {
            const float* kj = pr.k.at(b, h0 + g, j0 + j + jj);
            Packet a = bcast(0.0f);
            for (int64_t e = 0; e < D; e += W) a = ei::pmadd(load(qi + e), load(kj + e), a);
            blk.packet[jj] = a;
          }
          ei::ptranspose(blk);
          Packet r = blk.packet[0];
          for (int l = 1; l < W; ++l) r = ei::padd(r, blk.packet[l]);
          store(dots, r);
          continue;
        }
        for (int jj = 0; jj < n; ++jj) {
          const float* kj = pr.k.at(b, h0 + g, j0 + j + jj);
          Packet a = bcast(0.0f);
          for (int64_t e = 0; e < Dfull; e += W) a = ei::pmadd(load(qi + e), load(kj + e), a);
          float dot = ei::predux(a);
          for (int64_t e = Dfull; e < D; ++e) dot += qi[e] * kj[e];
          dots[jj] = dot;
        }
      }
    }
    for (int j = 0; j < nkp; ++j) kbias[j] = (j >= nk || (pad && pad[j])) ? -kInf : 0.0f;
    for (int64_t g = 0; g < nh; ++g) {
      float* row = srows + g * ld + j0;
      std::fill(row + nk, row + nkp, 0.0f);
      logits_query_major(pr, pr.mask(b, h0 + g), i, j0, nk, nkp, kbias, row, tmp);
    }
  }
  std::fill(accs, accs + nh * pr.Dvp, 0.0f);
  for (int64_t g = 0; g < nh; ++g) {
    float* srow = srows + g * ld;
    const int64_t bh = b * p.H + h0 + g;
    Packet mx = bcast(-kInf);
    for (int64_t c = 0; c < kendp; c += W) mx = ei::pmax(mx, load(srow + c));
    const float m = ei::predux_max(mx);
    if (m == -kInf) {  // every key masked (or none): out = 0, lse = -inf, as the block kernel
      std::fill(srow, srow + kendp, 0.0f);
      lse[bh * p.L + i] = -kInf;
      scale_of[g] = 0.0f;
      continue;
    }
    const Packet vm = bcast(m);
    Packet sum = bcast(0.0f);
    for (int64_t c = 0; c < kendp; c += W) {
      const Packet e = exp_ps(ei::psub(load(srow + c), vm));
      store(srow + c, e);
      sum = ei::padd(sum, e);
    }
    const float l = ei::predux(sum);
    if (p.dropout_p > 0.0f)
      for (int64_t j = 0; j < kend; ++j) srow[j] *= pr.drop(bh, i, j);
    if (p.bf16) round_block(srow, 1, static_cast<int>(kendp), kendp);
    scale_of[g] = 1.0f / l;
    lse[bh * p.L + i] = m + std::log(l);
  }
  for (int64_t j = 0; j < kend; ++j) {
    for (int64_t g = 0; g < nh; ++g) {
      const float pj = srows[g * ld + j];
      if (pj == 0.0f) continue;
      const float* vj = pr.v.at(b, h0 + g, j);
      float* acc = accs + g * pr.Dvp;
      const Packet pv = bcast(pj);
      for (int64_t e = 0; e < Dvfull; e += W) store(acc + e, ei::pmadd(pv, load(vj + e), load(acc + e)));
      for (int64_t e = Dvfull; e < Dv; ++e) acc[e] += pj * vj[e];
    }
  }
  for (int64_t g = 0; g < nh; ++g) {
    float* o = out.at(b, h0 + g, i);
    const float* acc = accs + g * pr.Dvp;
    const float inv = scale_of[g];
    for (int64_t e = 0; e < Dv; ++e) o[e] = acc[e] * inv;
  }
}

// ---------------------------------------------------------------------------
// Backward, key-block task (query-major scores): dK/dV of one key block, and
// optionally its dQ contributions into dq_head ([L, Dp] of this head).
struct KeyScratch {
  float *kt, *vt, *sb, *pd, *dr, *dp, *dk, *dv, *qpad, *dopad, *kpad, *kbias, *tmp;
  int64_t layout(float* base, const Problem& pr) {
    const AttentionParams& p = pr.p;
    Carve c{base};
    kt = c.take(p.D * kBK);       // [D, kBK]   Kᵀ of the key block, columns >= nk zero
    vt = c.take(p.Dv * kBK);      // [Dv, kBK]  Vᵀ
    sb = c.take(kBQ * kBK);       // [kBQ, kBK] S, then P
    pd = c.take(kBQ * kBK);       // [kBQ, kBK] P ∘ drop (dropout only)
    dr = c.take(kBQ * kBK);       // [kBQ, kBK] drop factors (dropout only)
    dp = c.take(kBQ * kBK);       // [kBQ, kBK] dP = dO Vᵀ, then dS
    dk = c.take(kBK * pr.Dp);     // [kBK, Dp]  dK of the key block
    dv = c.take(kBK * pr.Dvp);    // [kBK, Dvp] dV of the key block
    qpad = c.take(kBQ * pr.Dp);   // padded copies of rows (only when D or Dv % W != 0)
    dopad = c.take(kBQ * pr.Dvp);
    kpad = c.take(kBK * pr.Dp);
    kbias = c.take(kBK);          // [kBK] 0 or -inf per key column
    tmp = c.take(kBK);
    return c.used;
  }
};

struct Grads {
  StridedBHT<float> dq, dk, dv;
  StridedBHT<const float> dout;
  const float* lse;
  const float* dsum;  // [B*H*L] D_i = dO_i · out_i
};

// lse as used by backward: a fully masked row (lse = -inf) gets +inf, so that
// p = exp(s - lse) = 0 without a special case.
inline float lse_for_backward(float x) { return x == -kInf ? kInf : x; }

void backward_key_block(const Problem& pr, const Grads& g, int64_t b, int64_t h, int64_t kb, float* dq_head,
                        const KeyScratch& s) {
  const AttentionParams& p = pr.p;
  const int64_t bh = b * p.H + h, j0 = kb * kBK;
  const int nk = static_cast<int>(std::min<int64_t>(kBK, p.S - j0));
  const int nkp = static_cast<int>(round_up(nk));
  const int D = static_cast<int>(p.D), Dv = static_cast<int>(p.Dv);
  const float* mask = pr.mask(b, h);
  const bool want_dk = g.dk.data != nullptr, want_dv = g.dv.data != nullptr;
  const bool dropout = p.dropout_p > 0.0f;
  const Packet sc = bcast(p.scale);

  pack_transposed(pr.k, b, h, j0, nk, p.D, s.kt, kBK);
  pack_transposed(pr.v, b, h, j0, nk, p.Dv, s.vt, kBK);
  for (int j = 0; j < nkp; ++j)
    s.kbias[j] = (j >= nk || (p.key_padding && p.key_padding[b * p.S + j0 + j])) ? -kInf : 0.0f;
  std::fill(s.dk, s.dk + nk * pr.Dp, 0.0f);
  std::fill(s.dv, s.dv + nk * pr.Dvp, 0.0f);
  const Rows kr = padded_rows(pr.k, b, h, j0, nk, p.D, pr.Dp, s.kpad);

  for (int64_t qb = pr.first_query_block(j0); qb < pr.nqb; ++qb) {
    if (!pr.blocks_meet(j0, nk, qb * kBQ, kBQ)) {  // outside the band: jump to it, or stop
      qb = pr.skip_to(j0, qb * kBQ, kBQ, pr.nqb * kBQ) / kBQ - 1;
      continue;
    }
    if (!pr.layout_meets(qb * kBQ, kBQ, j0, nk)) continue;  // no cell of the block layout
    const int64_t i0 = qb * kBQ;
    const int nq = static_cast<int>(std::min<int64_t>(kBQ, p.L - i0));
    // P = exp(scale·Q Kᵀ + mask - lse)
    block_gemm(nq, nkp, D, pr.q.at(b, h, i0), pr.q.stride_t, 1, s.kt, kBK, s.sb, kBK, false);
    for (int r = 0; r < nq; ++r) {
      float* row = s.sb + r * kBK;
      logits_query_major(pr, mask, i0 + r, j0, nk, nkp, s.kbias, row, s.tmp);
      const Packet l = bcast(lse_for_backward(g.lse[bh * p.L + i0 + r]));
      for (int c = 0; c < nkp; c += W) store(row + c, exp_ps(ei::psub(load(row + c), l)));
    }
    const float* pd = s.sb;
    if (dropout) {
      for (int r = 0; r < nq; ++r) {
        float* d = s.dr + r * kBK;
        for (int c = 0; c < nk; ++c) d[c] = pr.drop(bh, i0 + r, j0 + c);
        std::fill(d + nk, d + nkp, 0.0f);
        for (int c = 0; c < nkp; c += W) store(s.pd + r * kBK + c, ei::pmul(load(s.sb + r * kBK + c), load(d + c)));
      }
      pd = s.pd;
    }
    if (p.bf16) {  // the dV product's operand; dS below uses P in float32
      if (pd == s.sb) std::memcpy(s.pd, s.sb, static_cast<size_t>(nq) * kBK * sizeof(float));
      round_block(s.pd, nq, nkp, kBK);
      pd = s.pd;
    }
    // dV_j += Σ_i (p∘drop)_ij dO_i
    if (want_dv) {
      const Rows dor = padded_rows(g.dout, b, h, i0, nq, p.Dv, pr.Dvp, s.dopad);
      block_gemm(nk, static_cast<int>(pr.Dvp), nq, pd, 1, kBK, dor.p, dor.ld, s.dv, pr.Dvp, true);
    }
    if (!want_dk && !dq_head) continue;
    // dS = P ∘ (drop ∘ dO Vᵀ - D_i) · scale
    block_gemm(nq, nkp, Dv, g.dout.at(b, h, i0), g.dout.stride_t, 1, s.vt, kBK, s.dp, kBK, false);
    for (int r = 0; r < nq; ++r) {
      const Packet di = bcast(g.dsum[bh * p.L + i0 + r]);
      float* dp = s.dp + r * kBK;
      const float* pr_row = s.sb + r * kBK;
      for (int c = 0; c < nkp; c += W) {
        Packet x = load(dp + c);
        if (dropout) x = ei::pmul(x, load(s.dr + r * kBK + c));
        store(dp + c, ei::pmul(ei::pmul(load(pr_row + c), ei::psub(x, di)), sc));
      }
    }
    if (p.bf16) round_block(s.dp, nq, nkp, kBK);
    // dQ_i += Σ_j dS_ij k_j ;  dK_j += Σ_i dS_ij q_i
    if (dq_head)
      block_gemm(nq, static_cast<int>(pr.Dp), nk, s.dp, kBK, 1, kr.p, kr.ld, dq_head + i0 * pr.Dp, pr.Dp, true);
    if (want_dk) {
      const Rows qr = padded_rows(pr.q, b, h, i0, nq, p.D, pr.Dp, s.qpad);
      block_gemm(nk, static_cast<int>(pr.Dp), nq, s.dp, 1, kBK, qr.p, qr.ld, s.dk, pr.Dp, true);
    }
  }
  for (int j = 0; j < nk; ++j) {
    if (want_dk) {
      float* d = g.dk.at(b, h, j0 + j);
      for (int e = 0; e < D; ++e) d[e] += s.dk[j * pr.Dp + e];
    }
    if (want_dv) {
      float* d = g.dv.at(b, h, j0 + j);
      for (int e = 0; e < Dv; ++e) d[e] += s.dv[j * pr.Dvp + e];
    }
  }
}

// ---------------------------------------------------------------------------
// Backward, query-block task (key-major scores): dQ of one query block. Adds
// exactly the same terms in the same order as backward_key_block's dq_head.
struct QueryScratch {
  float *qt, *dot, *st, *dpt, *dq, *kpad, *lse, *dsum, *tmp;
  int64_t layout(float* base, const Problem& pr) {
    const AttentionParams& p = pr.p;
    Carve c{base};
    qt = c.take(p.D * kBQ);     // [D, kBQ]   Qᵀ of the query block, columns >= nq zero
    dot = c.take(p.Dv * kBQ);   // [Dv, kBQ]  dOᵀ
    st = c.take(kBK * kBQ);     // [kBK, kBQ] Sᵀ, then Pᵀ
    dpt = c.take(kBK * kBQ);    // [kBK, kBQ] dPᵀ, then dSᵀ
    dq = c.take(kBQ * pr.Dp);   // [kBQ, Dp]  dQ of the block
    kpad = c.take(kBK * pr.Dp);
    lse = c.take(kBQ);
    dsum = c.take(kBQ);
    tmp = c.take(kBQ);
    return c.used;
  }
};

void backward_query_block(const Problem& pr, const Grads& g, int64_t b, int64_t h, int64_t qb,
                          const QueryScratch& s) {
  const AttentionParams& p = pr.p;
  const int64_t bh = b * p.H + h, i0 = qb * kBQ;
  const int nq = static_cast<int>(std::min<int64_t>(kBQ, p.L - i0));
  const int nqp = static_cast<int>(round_up(nq));
  const int D = static_cast<int>(p.D);
  const float* mask = pr.mask(b, h);
  const bool dropout = p.dropout_p > 0.0f;
  const Packet sc = bcast(p.scale);

  pack_transposed(pr.q, b, h, i0, nq, p.D, s.qt, kBQ);
  pack_transposed(g.dout, b, h, i0, nq, p.Dv, s.dot, kBQ);
  for (int c = 0; c < nqp; ++c) {
    s.lse[c] = c < nq ? lse_for_backward(g.lse[bh * p.L + i0 + c]) : kInf;
    s.dsum[c] = c < nq ? g.dsum[bh * p.L + i0 + c] : 0.0f;
  }
  std::fill(s.dq, s.dq + nq * pr.Dp, 0.0f);

  const int64_t kend = pr.key_end(i0, nq);
  for (int64_t j0 = 0; j0 < kend; j0 += kBK) {
    if (!pr.blocks_meet(i0, nq, j0, kBK)) {  // outside the band: jump to it, or stop
      j0 = pr.skip_to(i0, j0, kBK, kend) - kBK;
      continue;
    }
    if (!pr.layout_meets(i0, nq, j0, kBK)) continue;  // no cell of the block layout
    const int nk = static_cast<int>(std::min<int64_t>(kBK, kend - j0));
    block_gemm(nk, nqp, D, pr.k.at(b, h, j0), pr.k.stride_t, 1, s.qt, kBQ, s.st, kBQ, false);
    block_gemm(nk, nqp, static_cast<int>(p.Dv), pr.v.at(b, h, j0), pr.v.stride_t, 1, s.dot, kBQ, s.dpt, kBQ, false);
    for (int j = 0; j < nk; ++j) {
      float* row = s.st + j * kBQ;
      float* dp = s.dpt + j * kBQ;
      logits_key_major(pr, mask, b, i0, nq, nqp, j0 + j, row, s.tmp);
      if (dropout) {
        for (int c = 0; c < nq; ++c) s.tmp[c] = pr.drop(bh, i0 + c, j0 + j);
        std::fill(s.tmp + nq, s.tmp + nqp, 0.0f);
      }
      for (int c = 0; c < nqp; c += W) {
        const Packet pv = exp_ps(ei::psub(load(row + c), load(s.lse + c)));
        Packet x = load(dp + c);
        if (dropout) x = ei::pmul(x, load(s.tmp + c));
        store(dp + c, ei::pmul(ei::pmul(pv, ei::psub(x, load(s.dsum + c))), sc));
      }
    }
    if (p.bf16) round_block(s.dpt, nk, nqp, kBQ);
    const Rows kr = padded_rows(pr.k, b, h, j0, nk, p.D, pr.Dp, s.kpad);
    block_gemm(nq, static_cast<int>(pr.Dp), nk, s.dpt, 1, kBQ, kr.p, kr.ld, s.dq, pr.Dp, true);
  }
  for (int r = 0; r < nq; ++r) {
    float* d = g.dq.at(b, h, i0 + r);
    for (int e = 0; e < D; ++e) d[e] += s.dq[r * pr.Dp + e];
  }
}

// ---------------------------------------------------------------------------
void check_params(const AttentionParams& p, const char* fn) {
  CF_CHECK_VALUE(p.B >= 0 && p.H >= 0 && p.L >= 0 && p.S >= 0, fn, ": expected sizes B, H, L, S >= 0, got B=", p.B,
                 " H=", p.H, " L=", p.L, " S=", p.S);
  CF_CHECK_VALUE(p.D >= 1, fn, ": expected head dim D >= 1, got ", p.D);
  CF_CHECK_VALUE(p.Dv >= 1, fn, ": expected value dim Dv >= 1, got ", p.Dv);
  CF_CHECK_VALUE(std::isfinite(p.scale), fn, ": expected a finite scale, got ", p.scale);
  CF_CHECK_VALUE(p.dropout_p >= 0.0f && p.dropout_p < 1.0f, fn, ": expected 0 <= dropout_p < 1, got ",
                 p.dropout_p);
  CF_CHECK_VALUE(p.window >= -1, fn, ": expected window >= 0 (or -1 for no band), got ", p.window);
  CF_CHECK_VALUE(p.num_global >= 0, fn, ": expected num_global >= 0, got ", p.num_global);
  if (p.layout) {
    CF_CHECK_VALUE(p.layout_block >= 1, fn, ": expected layout_block >= 1, got ", p.layout_block);
    CF_CHECK_VALUE(p.layout_cols >= (p.S + p.layout_block - 1) / p.layout_block, fn, ": expected layout_cols >= ",
                   (p.S + p.layout_block - 1) / p.layout_block, " (S=", p.S, ", layout_block=", p.layout_block,
                   "), got ", p.layout_cols);
  }
}

void check_operand(const void* data, const char* fn, const char* name) {
  CF_CHECK_VALUE(data != nullptr, fn, ": ", name, " has a null data pointer");
}

}  // namespace

// ---------------------------------------------------------------------------
void attention_forward(StridedBHT<float> out, float* lse, StridedBHT<const float> q, StridedBHT<const float> k,
                       StridedBHT<const float> v, const AttentionParams& params) {
  check_params(params, "attention_forward");
  const AttentionParams p = clamped(params);
  if (p.B == 0 || p.H == 0 || p.L == 0) return;
  check_operand(out.data, "attention_forward", "out");
  check_operand(lse, "attention_forward", "lse");
  check_operand(q.data, "attention_forward", "q");
  if (p.S > 0) {
    check_operand(k.data, "attention_forward", "k");
    check_operand(v.data, "attention_forward", "v");
  }
  const Problem pr(p, q, k, v);
  if (p.L <= kRowQueries) {
    // Tasks of groups of heads: all heads of a row when there are rows
    // enough to keep every thread busy, otherwise fewer heads per task.
    const int nthreads = region_threads();
    int64_t groups = 1;
    while (groups < p.H && p.B * p.L * groups < 2 * nthreads) groups *= 2;
    groups = std::min<int64_t>(groups, p.H);
    const int64_t per = (p.H + groups - 1) / groups, tasks = p.B * p.L * groups;
#pragma omp parallel if (tasks > 1 && p.B * p.H * p.L * p.S * (p.D + p.Dv) >= kParallelMinWork)
    {
      static thread_local Workspace ws;
#pragma omp for schedule(static)
      for (int64_t t = 0; t < tasks; ++t) {
        const int64_t row = t / groups, h0 = t % groups * per;
        if (h0 < p.H) forward_query_rows(pr, out, lse, row / p.L, h0, std::min(p.H, h0 + per), row % p.L, ws);
      }
    }
    return;
  }
  ForwardScratch layout;
  const int64_t per_thread = layout.layout(nullptr, pr);
  const int64_t ntasks = p.B * p.H * pr.nqb;

#pragma omp parallel
  {
    // Each thread's scratch is its own buffer, kept between calls and zeroed
    // here by its thread: one shared allocation per call (above 128 KiB on
    // 2 threads: fresh pages from the kernel at every call) made 2 threads
    // slower than 1 on small problems.
    static thread_local Workspace ws;
    if (static_cast<int64_t>(ws.size()) < per_thread) ws.resize(static_cast<size_t>(per_thread));
    std::fill(ws.begin(), ws.begin() + per_thread, 0.0f);
    ForwardScratch s;
    s.layout(ws.data(), pr);
    // Heaviest (latest, when causal) query blocks first.
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < ntasks; ++t) {
      const int64_t bh = t / pr.nqb, qb = pr.nqb - 1 - t % pr.nqb;
      forward_query_block(pr, out, lse, bh / p.H, bh % p.H, qb, s);
    }
  }
}

void attention_backward(StridedBHT<float> dq, StridedBHT<float> dk, StridedBHT<float> dv,
                        StridedBHT<const float> dout, StridedBHT<const float> q, StridedBHT<const float> k,
                        StridedBHT<const float> v, StridedBHT<const float> out, const float* lse,
                        const AttentionParams& params) {
  check_params(params, "attention_backward");
  const AttentionParams p = clamped(params);
  const bool want_q = dq.data != nullptr, want_kv = dk.data != nullptr || dv.data != nullptr;
  if (p.B == 0 || p.H == 0 || p.L == 0 || p.S == 0 || (!want_q && !want_kv)) return;
  for (auto [ptr, name] : {std::pair<const void*, const char*>{dout.data, "dout"}, {q.data, "q"}, {k.data, "k"},
                           {v.data, "v"}, {out.data, "out"}, {lse, "lse"}})
    check_operand(ptr, "attention_backward", name);

  const Problem pr(p, q, k, v);
  const int64_t BH = p.B * p.H;
  const int nthreads = region_threads();

  // D_i = dO_i · out_i
  std::vector<float> dsum(static_cast<size_t>(BH * p.L));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < BH * p.L; ++r) {
    const int64_t bh = r / p.L, i = r % p.L;
    const float* a = dout.at(bh / p.H, bh % p.H, i);
    const float* o = out.at(bh / p.H, bh % p.H, i);
    float acc = 0.0f;
    for (int64_t e = 0; e < p.Dv; ++e) acc += a[e] * o[e];
    dsum[static_cast<size_t>(r)] = acc;
  }
  const Grads g{dq, dk, dv, dout, lse, dsum.data()};

  // One task per head does the least work (5 block GEMMs instead of 7) but
  // only balances when there are enough heads; otherwise split into passes.
  const bool per_head = want_q && want_kv && (BH % nthreads == 0 || BH >= 4 * nthreads);
  if (per_head) {
    KeyScratch layout;
    const int64_t key_floats = layout.layout(nullptr, pr);
    const int64_t per_thread = key_floats + p.L * pr.Dp;  // + dQ of the head [L, Dp]
    Workspace ws(static_cast<size_t>(per_thread * nthreads), 0.0f);
#pragma omp parallel
    {
      float* base = ws.data() + thread_id() * per_thread;
      KeyScratch s;
      s.layout(base, pr);
      float* dq_head = base + key_floats;
#pragma omp for schedule(dynamic, 1)
      for (int64_t bh = 0; bh < BH; ++bh) {
        const int64_t b = bh / p.H, h = bh % p.H;
        std::fill(dq_head, dq_head + p.L * pr.Dp, 0.0f);
        for (int64_t kb = 0; kb < pr.nkb; ++kb) backward_key_block(pr, g, b, h, kb, dq_head, s);
        for (int64_t i = 0; i < p.L; ++i) {
          float* d = dq.at(b, h, i);
          for (int64_t e = 0; e < p.D; ++e) d[e] += dq_head[i * pr.Dp + e];
        }
      }
    }
    return;
  }
  if (want_kv) {
    KeyScratch layout;
    const int64_t per_thread = layout.layout(nullptr, pr);
    Workspace ws(static_cast<size_t>(per_thread * nthreads), 0.0f);
    const int64_t ntasks = BH * pr.nkb;
#pragma omp parallel
    {
      KeyScratch s;
      s.layout(ws.data() + thread_id() * per_thread, pr);
      // Heaviest (earliest, when causal) key blocks first.
#pragma omp for schedule(dynamic, 1)
      for (int64_t t = 0; t < ntasks; ++t)
        backward_key_block(pr, g, t / pr.nkb / p.H, t / pr.nkb % p.H, t % pr.nkb, nullptr, s);
    }
  }
  if (want_q) {
    QueryScratch layout;
    const int64_t per_thread = layout.layout(nullptr, pr);
    Workspace ws(static_cast<size_t>(per_thread * nthreads), 0.0f);
    const int64_t ntasks = BH * pr.nqb;
#pragma omp parallel
    {
      QueryScratch s;
      s.layout(ws.data() + thread_id() * per_thread, pr);
#pragma omp for schedule(dynamic, 1)
      for (int64_t t = 0; t < ntasks; ++t) {
        const int64_t bh = t / pr.nqb, qb = pr.nqb - 1 - t % pr.nqb;
        backward_query_block(pr, g, bh / p.H, bh % p.H, qb, s);
      }
    }
  }
}

// ---------------------------------------------------------------------------
void attention_forward_reference(StridedBHT<float> out, float* lse, StridedBHT<const float> q,
                                 StridedBHT<const float> k, StridedBHT<const float> v, const AttentionParams& p) {
  check_params(p, "attention_forward_reference");
  const float inv_keep = 1.0f / (1.0f - p.dropout_p);
  std::vector<double> s(static_cast<size_t>(p.S)), acc(static_cast<size_t>(p.Dv));
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h)
      for (int64_t i = 0; i < p.L; ++i) {
        const int64_t bh = b * p.H + h;
        const float* qi = q.at(b, h, i);
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < p.S; ++j) {
          const float* kj = k.at(b, h, j);
          double dot = 0;
          for (int64_t e = 0; e < p.D; ++e) dot += double(qi[e]) * kj[e];
          double x = double(p.scale) * dot;
          if (p.mask) x += p.mask[b * p.mask_stride_b + h * p.mask_stride_h + i * p.S + j];
          const bool off_band = p.window >= 0 && i >= p.num_global && j >= p.num_global &&
                                (i - j > p.window || j - i > p.window);
          const bool off_layout =
              p.layout && !p.layout[(i / p.layout_block) * p.layout_cols + j / p.layout_block];
          if ((p.key_padding && p.key_padding[b * p.S + j]) || (p.is_causal && j > i) || off_band || off_layout)
            x = -std::numeric_limits<double>::infinity();
          s[j] = x;
          mx = std::max(mx, x);
        }
        float* o = out.at(b, h, i);
        if (mx == -std::numeric_limits<double>::infinity()) {
          std::fill(o, o + p.Dv, 0.0f);
          lse[bh * p.L + i] = -kInf;
          continue;
        }
        double sum = 0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < p.S; ++j) {
          const double e = std::exp(s[j] - mx);
          sum += e;
          const bool keep = rng_uniform(p.dropout_key, static_cast<uint64_t>((bh * p.L + i) * p.S + j)) >= p.dropout_p;
          if (!keep) continue;
          const float* vj = v.at(b, h, j);
          for (int64_t e2 = 0; e2 < p.Dv; ++e2) acc[e2] += e * inv_keep * vj[e2];
        }
        for (int64_t e2 = 0; e2 < p.Dv; ++e2) o[e2] = static_cast<float>(acc[e2] / sum);
        lse[bh * p.L + i] = static_cast<float>(mx + std::log(sum));
      }
}

}  // namespace cpuformer
