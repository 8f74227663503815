// Performer (FAVOR+); contract in linear_attention.hpp (the Linformer
// projection is in linformer.cpp).
//
// Per (b, h), with F = features (rows phi(x)) and chunks of kC positions:
//   non-causal  KV = Kfᵀ V [m, Dv], z = Kfᵀ 1 [m];  num = Qf KV, den = Qf z, out = num / den
//   causal      for each chunk c (state KV, z rescaled to the chunk's key stabiliser):
//                 A = tril(Qf_c Kf_cᵀ);  num_c = Qf_c KV + A V_c;  den_c = Qf_c z + A 1
//                 KV += Kf_cᵀ V_c;  z += Kf_cᵀ 1
// Backward, with g_i = dO_i / den_i and gd_i = -(dO_i·out_i) / den_i:
//   dQf_c = g_c KVᵀ + gd_c zᵀ + dA Kf_c,   dA = tril(g_c V_cᵀ + gd_c 1ᵀ)        (forward sweep)
//   dKf_c = dAᵀ Qf_c + V_c Rᵀ + 1 Rzᵀ,     dV_c += Aᵀ g_c + Kf_c R              (reverse sweep)
//   where R = Σ over later chunks of Qfᵀ g (Rz: of Qfᵀ gd), rescaled between frames;
//   through the feature map (phi_r = exp(h_r), h_r = w_r·x' - |x'|²/2):
//   dx = sqrt(scale)·(T W - x'·Σ_r T_r),   T = dF ∘ F.
#include "cpuformer/ops/linear_attention.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpuformer/error.hpp"
#include "cpuformer/runtime/threads.hpp"
#include "cpuformer/ops/gemm.hpp"
#include "cpuformer/ops/vec_math.hpp"
#include "cpuformer/runtime/rng.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cpuformer {
namespace {

constexpr int64_t kC = 64;  // causal chunk length
constexpr float kInf = std::numeric_limits<float>::infinity();

double gaussian(uint64_t key, uint64_t index) {
  const uint64_t a = rng_bits(key, 2 * index), b = rng_bits(key, 2 * index + 1);
  const double u1 = (static_cast<double>(a >> 11) + 0.5) * (1.0 / 9007199254740992.0);  // (0, 1)
  const double u2 = static_cast<double>(b >> 11) * (1.0 / 9007199254740992.0);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Feature logits of n rows x (row stride ldx): h [n, m] = x' Wᵀ - |x'|²/2.
void feature_logits(float* h, const float* x, int64_t ldx, int64_t n, const float* w, int64_t m, int64_t D,
                    float scale) {
  gemm(false, true, n, m, D, std::sqrt(scale), x, ldx, w, D, 0.0f, h, m);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * ldx;
    double sq = 0;
    for (int64_t e = 0; e < D; ++e) sq += double(xi[e]) * xi[e];
    const float half = static_cast<float>(0.5 * scale * sq);
    float* hi = h + i * m;
    for (int64_t r = 0; r < m; ++r) hi[r] -= half;
  }
}

// Query features in place: each row minus its own max, exponentiated.
void query_features(float* f, int64_t n, int64_t m) {
  for (int64_t i = 0; i < n; ++i) {
    float* row = f + i * m;
    const float mx = *std::max_element(row, row + m);
#pragma omp simd
    for (int64_t r = 0; r < m; ++r) row[r] = vmath::exp_f(row[r] - mx);
  }
}

// Key rows of a padded position get logits -inf (features 0).
void pad_keys(float* h, int64_t t0, int64_t n, int64_t m, const uint8_t* pad) {
  if (!pad) return;
  for (int64_t i = 0; i < n; ++i)
    if (pad[t0 + i]) std::fill(h + i * m, h + (i + 1) * m, -kInf);
}

float max_of(const float* x, int64_t n) {
  float mx = -kInf;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);  // NaN-skipping max
  return mx;
}

void exp_shift(float* x, int64_t n, float c) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = vmath::exp_f(x[i] - c);
}

// dx (stride lddx) += sqrt(scale)·(T W) - scale·x·Σ_r T_r with T = dF ∘ F (dF overwritten).
void feature_backward(float* dx, int64_t lddx, const float* x, int64_t ldx, int64_t n, const float* f, float* df,
                      const float* w, int64_t m, int64_t D, float scale) {
  for (int64_t i = 0; i < n * m; ++i) df[i] *= f[i];
  gemm(false, false, n, D, m, std::sqrt(scale), df, m, w, D, 1.0f, dx, lddx);
  for (int64_t i = 0; i < n; ++i) {
    double t = 0;
    for (int64_t r = 0; r < m; ++r) t += df[i * m + r];
    const float c = static_cast<float>(scale * t);
    for (int64_t e = 0; e < D; ++e) dx[i * lddx + e] -= c * x[i * ldx + e];
  }
}

struct Scratch {
  float *qf, *kf, *df, *g, *gd, *kv, *z, *r, *rz, *num, *den, *a, *da;
  std::vector<float> cs;  // key stabiliser per chunk
  int64_t layout(float* base, const PerformerParams& p) {
    int64_t used = 0;
    auto take = [&](int64_t n) {
      float* ptr = base ? base + used : nullptr;
      used += (n + 15) / 16 * 16;
      return ptr;
    };
    const int64_t n = std::max(p.L, p.S);
    qf = take(p.L * p.m);            // [L, m] query features
    kf = take(p.S * p.m);            // [S, m] key logits, then features
    df = take(n * p.m);              // [max(L,S), m] feature gradients
    g = take(p.L * p.Dv);            // [L, Dv] dO / den
    gd = take(p.L);                  // [L] -(dO·out) / den
    kv = take(p.m * p.Dv);           // [m, Dv] state Σ phi(k) vᵀ
    z = take(p.m);                   // [m]     Σ phi(k)
    r = take(p.m * p.Dv);            // [m, Dv] reverse-sweep state
    rz = take(p.m);
    num = take(std::max(p.L, kC) * p.Dv);  // numerators of a chunk (whole L when non-causal)
    den = take(std::max(p.L, kC));
    a = take(kC * kC);               // [kC, kC] intra-chunk scores
    da = take(kC * kC);
    return used;
  }
};

void check(const PerformerParams& p, const char* fn) {
  CF_CHECK_VALUE(p.B >= 0 && p.H >= 0 && p.L >= 0 && p.S >= 0, fn, ": expected sizes >= 0, got B=", p.B, " H=", p.H,
                 " L=", p.L, " S=", p.S);
  CF_CHECK_VALUE(p.D >= 1 && p.Dv >= 1, fn, ": expected D, Dv >= 1, got D=", p.D, " Dv=", p.Dv);
  CF_CHECK_VALUE(p.m >= 1, fn, ": num_features must be >= 1, got ", p.m);
  CF_CHECK_VALUE(std::isfinite(p.scale) && p.scale > 0.0f, fn, ": expected a finite positive scale, got ", p.scale);
  CF_CHECK_VALUE(!p.is_causal || p.L == p.S, fn, ": causal attention needs L == S, got L=", p.L, " S=", p.S);
}

// out_i = num_i / den_i for rows [i0, i0+n) (den 0 -> out 0); with dout, also g and gd.
void finish_rows(const PerformerParams& p, StridedBHT<float> out, StridedBHT<const float> dout, int64_t b,
                 int64_t h, int64_t i0, int64_t n, const float* num, const float* den, float* g, float* gd) {
  for (int64_t i = 0; i < n; ++i) {
    const float d = den[i];
    const bool live = !(d <= 0.0f);  // an underflowed denominator gives 0; NaN propagates
    const float* nu = num + i * p.Dv;
    if (out.data) {
      float* o = out.at(b, h, i0 + i);
      for (int64_t e = 0; e < p.Dv; ++e) o[e] = live ? nu[e] / d : 0.0f;
    }
    if (g) {
      const float* go = dout.at(b, h, i0 + i);
      float* gi = g + (i0 + i) * p.Dv;
      double dot = 0;
      for (int64_t e = 0; e < p.Dv; ++e) {
        const float o = live ? nu[e] / d : 0.0f;
        dot += double(go[e]) * o;
        gi[e] = live ? go[e] / d : 0.0f;
      }
      gd[i0 + i] = live ? static_cast<float>(-dot / d) : 0.0f;
    }
  }
}

// Features of head (b, h): s.qf (query features), s.kf (key features; causal:
// each chunk with its own stabiliser, recorded in s.cs).
void head_features(const PerformerParams& p, StridedBHT<const float> q, StridedBHT<const float> k, const float* w,
                   int64_t b, int64_t h, Scratch& s) {
  const int64_t m = p.m;
  feature_logits(s.qf, q.at(b, h, 0), q.stride_t, p.L, w, m, p.D, p.scale);
  query_features(s.qf, p.L, m);
  feature_logits(s.kf, k.at(b, h, 0), k.stride_t, p.S, w, m, p.D, p.scale);
  pad_keys(s.kf, 0, p.S, m, p.key_padding ? p.key_padding + b * p.S : nullptr);
  if (!p.is_causal) {
    const float c = max_of(s.kf, p.S * m);
    exp_shift(s.kf, p.S * m, c == -kInf ? 0.0f : c);
    return;
  }
  const int64_t nc = (p.S + kC - 1) / kC;
  s.cs.assign(static_cast<size_t>(nc), 0.0f);
  float run = -kInf;
  for (int64_t c = 0; c < nc; ++c) {
    const int64_t t0 = c * kC, n = std::min(kC, p.S - t0);
    run = std::max(run, max_of(s.kf + t0 * m, n * m));
    s.cs[c] = run == -kInf ? 0.0f : run;
    exp_shift(s.kf + t0 * m, n * m, s.cs[c]);
  }
}

// Rescale the state from chunk c-1's stabiliser to chunk c's.
void rescale(float* kv, float* z, int64_t m, int64_t Dv, float factor) {
  if (factor == 1.0f) return;
  for (int64_t i = 0; i < m * Dv; ++i) kv[i] *= factor;
  for (int64_t i = 0; i < m; ++i) z[i] *= factor;
}

// A = tril(Qf_c Kf_cᵀ) for chunk rows [t0, t0+n).
void chunk_scores(const Scratch& s, int64_t m, int64_t t0, int64_t n, float* a) {
  gemm(false, true, n, n, m, 1.0f, s.qf + t0 * m, m, s.kf + t0 * m, m, 0.0f, a, n);
  for (int64_t i = 0; i < n; ++i) std::fill(a + i * n + i + 1, a + (i + 1) * n, 0.0f);
}

// Forward of one head; with dout (backward) also g, gd and dq.
void head_forward(const PerformerParams& p, StridedBHT<float> out, StridedBHT<const float> dout,
                  StridedBHT<float> dq, StridedBHT<const float> q, StridedBHT<const float> k,
                  StridedBHT<const float> v, const float* w, int64_t b, int64_t h, Scratch& s) {
  const int64_t m = p.m, Dv = p.Dv;
  const bool bwd = dout.data != nullptr;
  std::fill(s.kv, s.kv + m * Dv, 0.0f);
  std::fill(s.z, s.z + m, 0.0f);
  if (!p.is_causal) {
    gemm(true, false, m, Dv, p.S, 1.0f, s.kf, m, v.at(b, h, 0), v.stride_t, 0.0f, s.kv, Dv);
    for (int64_t j = 0; j < p.S; ++j)
      for (int64_t r = 0; r < m; ++r) s.z[r] += s.kf[j * m + r];
    gemm(false, false, p.L, Dv, m, 1.0f, s.qf, m, s.kv, Dv, 0.0f, s.num, Dv);
    gemm(false, false, p.L, 1, m, 1.0f, s.qf, m, s.z, 1, 0.0f, s.den, 1);
    finish_rows(p, out, dout, b, h, 0, p.L, s.num, s.den, bwd ? s.g : nullptr, s.gd);
    if (!bwd) return;
    // dQf = g KVᵀ + gd zᵀ
    gemm(false, true, p.L, m, Dv, 1.0f, s.g, Dv, s.kv, Dv, 0.0f, s.df, m);
    for (int64_t i = 0; i < p.L; ++i)
      for (int64_t r = 0; r < m; ++r) s.df[i * m + r] += s.gd[i] * s.z[r];
    feature_backward(dq.at(b, h, 0), dq.stride_t, q.at(b, h, 0), q.stride_t, p.L, s.qf, s.df, w, m, p.D, p.scale);
    return;
  }
  const int64_t nc = (p.S + kC - 1) / kC;
  for (int64_t c = 0; c < nc; ++c) {
    const int64_t t0 = c * kC, n = std::min(kC, p.S - t0);
    if (c > 0) rescale(s.kv, s.z, m, Dv, std::exp(s.cs[c - 1] - s.cs[c]));
    const float* qc = s.qf + t0 * m;
    const float* kc = s.kf + t0 * m;
    const float* vc = v.at(b, h, t0);
    chunk_scores(s, m, t0, n, s.a);
    gemm(false, false, n, Dv, m, 1.0f, qc, m, s.kv, Dv, 0.0f, s.num, Dv);
    gemm(false, false, n, Dv, n, 1.0f, s.a, n, vc, v.stride_t, 1.0f, s.num, Dv);
    gemm(false, false, n, 1, m, 1.0f, qc, m, s.z, 1, 0.0f, s.den, 1);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j <= i; ++j) s.den[i] += s.a[i * n + j];
    finish_rows(p, out, dout, b, h, t0, n, s.num, s.den, bwd ? s.g : nullptr, s.gd);
    if (bwd) {
      // dA = tril(g_c V_cᵀ + gd_c 1ᵀ);  dQf_c = g_c KVᵀ + gd_c zᵀ + dA Kf_c
      const float* gc = s.g + t0 * Dv;
      gemm(false, true, n, n, Dv, 1.0f, gc, Dv, vc, v.stride_t, 0.0f, s.da, n);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) s.da[i * n + j] = j <= i ? s.da[i * n + j] + s.gd[t0 + i] : 0.0f;
      float* dfc = s.df + t0 * m;
      gemm(false, true, n, m, Dv, 1.0f, gc, Dv, s.kv, Dv, 0.0f, dfc, m);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t r = 0; r < m; ++r) dfc[i * m + r] += s.gd[t0 + i] * s.z[r];
      gemm(false, false, n, m, n, 1.0f, s.da, n, kc, m, 1.0f, dfc, m);
    }
    gemm(true, false, m, Dv, n, 1.0f, kc, m, vc, v.stride_t, 1.0f, s.kv, Dv);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t r = 0; r < m; ++r) s.z[r] += kc[j * m + r];
  }
  if (bwd)
    feature_backward(dq.at(b, h, 0), dq.stride_t, q.at(b, h, 0), q.stride_t, p.L, s.qf, s.df, w, m, p.D, p.scale);
}

// dK and dV of one head, after head_forward(backward) filled g and gd.
void head_key_grads(const PerformerParams& p, StridedBHT<float> dk, StridedBHT<float> dv, StridedBHT<const float> k,
                    StridedBHT<const float> v, const float* w, int64_t b, int64_t h, Scratch& s) {
  const int64_t m = p.m, Dv = p.Dv;
  if (!p.is_causal) {
    // R = dKV = Qfᵀ g;  Rz = dz = Qfᵀ gd;  dKf = V Rᵀ + 1 Rzᵀ;  dV += Kf R
    gemm(true, false, m, Dv, p.L, 1.0f, s.qf, m, s.g, Dv, 0.0f, s.r, Dv);
    gemm(true, false, m, 1, p.L, 1.0f, s.qf, m, s.gd, 1, 0.0f, s.rz, 1);
    gemm(false, true, p.S, m, Dv, 1.0f, v.at(b, h, 0), v.stride_t, s.r, Dv, 0.0f, s.df, m);
    for (int64_t j = 0; j < p.S; ++j)
      for (int64_t r = 0; r < m; ++r) s.df[j * m + r] += s.rz[r];
    gemm(false, false, p.S, Dv, m, 1.0f, s.kf, m, s.r, Dv, 1.0f, dv.at(b, h, 0), dv.stride_t);
    feature_backward(dk.at(b, h, 0), dk.stride_t, k.at(b, h, 0), k.stride_t, p.S, s.kf, s.df, w, m, p.D, p.scale);
    return;
  }
  std::fill(s.r, s.r + m * Dv, 0.0f);
  std::fill(s.rz, s.rz + m, 0.0f);
  const int64_t nc = (p.S + kC - 1) / kC;
  for (int64_t c = nc - 1; c >= 0; --c) {
    const int64_t t0 = c * kC, n = std::min(kC, p.S - t0);
    if (c < nc - 1) rescale(s.r, s.rz, m, Dv, std::exp(s.cs[c] - s.cs[c + 1]));
    const float* qc = s.qf + t0 * m;
    const float* kc = s.kf + t0 * m;
    const float* vc = v.at(b, h, t0);
    const float* gc = s.g + t0 * Dv;
    chunk_scores(s, m, t0, n, s.a);
    gemm(false, true, n, n, Dv, 1.0f, gc, Dv, vc, v.stride_t, 0.0f, s.da, n);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) s.da[i * n + j] = j <= i ? s.da[i * n + j] + s.gd[t0 + i] : 0.0f;
    // dKf_c = dAᵀ Qf_c + V_c Rᵀ + 1 Rzᵀ
    float* dfc = s.df + t0 * m;
    gemm(true, false, n, m, n, 1.0f, s.da, n, qc, m, 0.0f, dfc, m);
    gemm(false, true, n, m, Dv, 1.0f, vc, v.stride_t, s.r, Dv, 1.0f, dfc, m);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t r = 0; r < m; ++r) dfc[j * m + r] += s.rz[r];
    // dV_c += Aᵀ g_c + Kf_c R
    float* dvc = dv.at(b, h, t0);
    gemm(true, false, n, Dv, n, 1.0f, s.a, n, gc, Dv, 1.0f, dvc, dv.stride_t);
    gemm(false, false, n, Dv, m, 1.0f, kc, m, s.r, Dv, 1.0f, dvc, dv.stride_t);
    // R += Qf_cᵀ g_c;  Rz += Qf_cᵀ gd_c
    gemm(true, false, m, Dv, n, 1.0f, qc, m, gc, Dv, 1.0f, s.r, Dv);
    gemm(true, false, m, 1, n, 1.0f, qc, m, s.gd + t0, 1, 1.0f, s.rz, 1);
  }
  feature_backward(dk.at(b, h, 0), dk.stride_t, k.at(b, h, 0), k.stride_t, p.S, s.kf, s.df, w, m, p.D, p.scale);
}

template <class Fn>
void for_each_head(const PerformerParams& p, Fn fn) {
  Scratch layout;
  const int64_t per_thread = layout.layout(nullptr, p);
  const int64_t BH = p.B * p.H;
  const int nt = static_cast<int>(std::min<int64_t>(region_threads(), BH));
  std::vector<float> ws(static_cast<size_t>(per_thread * nt));
#pragma omp parallel num_threads(nt)
  {
    Scratch s;
    s.layout(ws.data() + thread_id() * per_thread, p);
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < BH; ++bh) fn(bh / p.H, bh % p.H, s);
  }
}

}  // namespace

void performer_features(float* w, int64_t m, int64_t D, uint64_t seed) {
  CF_CHECK_VALUE(m >= 1, "performer_features: num_features must be >= 1, got ", m);
  CF_CHECK_VALUE(D >= 1, "performer_features: head dim must be >= 1, got ", D);
  const uint64_t key = rng_bits(seed, 0x464156u);  // "FAV"
  uint64_t idx = 0;
  for (int64_t r0 = 0; r0 < m; r0 += D) {
    Eigen::MatrixXd g(D, D);
    for (int64_t i = 0; i < D; ++i)
      for (int64_t j = 0; j < D; ++j) g(i, j) = gaussian(key, idx++);
    // Q with the signs that make R's diagonal positive: Haar-distributed, so each
    // row is uniform on the sphere (Householder's own signs are not).
    const Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
    Eigen::MatrixXd qm = qr.householderQ();
    for (int64_t j = 0; j < D; ++j)
      if (qr.matrixQR()(j, j) < 0) qm.col(j) = -qm.col(j);
    for (int64_t r = r0; r < std::min(m, r0 + D); ++r) {
      double sq = 0;
      for (int64_t e = 0; e < D; ++e) {
        const double x = gaussian(key, idx++);
        sq += x * x;
      }
      const double norm = std::sqrt(sq);
      for (int64_t e = 0; e < D; ++e) w[r * D + e] = static_cast<float>(qm(e, r - r0) * norm);  // columns of Q
    }
  }
}

void performer_attention_forward(StridedBHT<float> out, StridedBHT<const float> q, StridedBHT<const float> k,
                                 StridedBHT<const float> v, const float* w, const PerformerParams& p) {
  check(p, "performer_attention_forward");
  if (p.B == 0 || p.H == 0 || p.L == 0) return;
  CF_CHECK_VALUE(out.data && q.data && w && (p.S == 0 || (k.data && v.data)),
                 "performer_attention_forward: null operand");
  for_each_head(p, [&](int64_t b, int64_t h, Scratch& s) {
    head_features(p, q, k, w, b, h, s);
    head_forward(p, out, {}, {}, q, k, v, w, b, h, s);
  });
}

void performer_attention_backward(StridedBHT<float> dq, StridedBHT<float> dk, StridedBHT<float> dv,
                                  StridedBHT<const float> dout, StridedBHT<const float> q,
                                  StridedBHT<const float> k, StridedBHT<const float> v, const float* w,
                                  const PerformerParams& p) {
  check(p, "performer_attention_backward");
  if (p.B == 0 || p.H == 0 || p.L == 0 || p.S == 0) return;
  CF_CHECK_VALUE(dq.data && dk.data && dv.data && dout.data && q.data && k.data && v.data && w,
                 "performer_attention_backward: null operand");
  for_each_head(p, [&](int64_t b, int64_t h, Scratch& s) {
    head_features(p, q, k, w, b, h, s);
    head_forward(p, {}, dout, dq, q, k, v, w, b, h, s);
    head_key_grads(p, dk, dv, k, v, w, b, h, s);
  });
}

}  // namespace cpuformer
