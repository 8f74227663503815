// Private: the flash-attention forward (attention_kernels.hpp), after
// attention_impl_blocks.hpp.
#pragma once
#include "attention_impl_blocks.hpp"
#include "cpuformer/runtime/threads.hpp"

namespace cpuformer {
namespace detail {
namespace {  // internal linkage: one copy per instruction-set object (isa_dispatch.hpp)
namespace attn {

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
// attention_forward after validation (attention.cpp): query rows for a
// decoding step, query blocks otherwise.
void forward(StridedBHT<float> out, float* lse, StridedBHT<const float> q, StridedBHT<const float> k,
             StridedBHT<const float> v, const AttentionParams& p) {
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

}  // namespace attn
}  // namespace
}  // namespace detail
}  // namespace cpuformer
