// Private: the flash-attention backward (attention_kernels.hpp), after
// attention_impl_blocks.hpp.
#pragma once
#include "attention_impl_blocks.hpp"
#include "cpuformer/runtime/threads.hpp"

namespace cpuformer {
namespace detail {
namespace {  // internal linkage: one copy per instruction-set object (isa_dispatch.hpp)
namespace attn {

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
// attention_backward after validation (attention.cpp), with at least one of
// dq and (dk, dv) wanted.
void backward(StridedBHT<float> dq, StridedBHT<float> dk, StridedBHT<float> dv, StridedBHT<const float> dout,
              StridedBHT<const float> q, StridedBHT<const float> k, StridedBHT<const float> v,
              StridedBHT<const float> out, const float* lse, const AttentionParams& p) {
  const bool want_q = dq.data != nullptr, want_kv = dk.data != nullptr || dv.data != nullptr;
  const Problem pr(p, q, k, v);
  const int64_t BH = p.B * p.H;
  const int nthreads = region_threads();

  // D_i = dO_i · out_i
  LocalVector<float> dsum(static_cast<size_t>(BH * p.L));
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

}  // namespace attn
}  // namespace
}  // namespace detail
}  // namespace cpuformer
