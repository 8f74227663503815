// Attention: fast kernel vs the scalar reference (forward), vs a materialised
// float64 backward and finite differences (backward), dropout consistency,
// thread-count independence, accumulation and argument checks.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "check.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/ops/attention.hpp"
#include "cpuformer/runtime/rng.hpp"
#include "cpuformer/runtime/threads.hpp"

using namespace cpuformer;

namespace {

const double kInfD = std::numeric_limits<double>::infinity();

// Q, K, V, dO and friends stored as [B, T, H*X] (the layout of a projection),
// addressed through StridedBHT like MultiheadAttention does.
struct Operand {
  int64_t B, T, H, X;
  std::vector<float> data;
  Operand(int64_t B_, int64_t T_, int64_t H_, int64_t X_, uint64_t key = 0, float fill = 0.0f)
      : B(B_), T(T_), H(H_), X(X_), data(static_cast<size_t>(B_ * T_ * H_ * X_), fill) {
    if (key)
      for (size_t i = 0; i < data.size(); ++i) data[i] = 2.0f * rng_uniform(key, i) - 1.0f;
  }
  StridedBHT<float> view() { return {data.data(), T * H * X, X, H * X}; }
  StridedBHT<const float> cview() const { return {data.data(), T * H * X, X, H * X}; }
  float& at(int64_t b, int64_t h, int64_t t, int64_t x) { return data[((b * T + t) * H + h) * X + x]; }
  float at(int64_t b, int64_t h, int64_t t, int64_t x) const { return data[((b * T + t) * H + h) * X + x]; }
};

struct Problem {
  AttentionParams p;
  Operand q, k, v;
  std::vector<float> mask;
  std::vector<uint8_t> pad;
  Problem(int64_t B, int64_t H, int64_t L, int64_t S, int64_t D, int64_t Dv)
      : q(B, L, H, D, 11), k(B, S, H, D, 12), v(B, S, H, Dv, 13) {
    p.B = B, p.H = H, p.L = L, p.S = S, p.D = D, p.Dv = Dv;
    p.scale = 1.0f / std::sqrt(float(D));
    // Larger logits than unit-variance inputs give, so the softmax is peaked.
    for (auto& x : q.data) x *= 2.0f;
  }
  // A mask shared by all batches (stride_b = 0), one slice per head, with
  // some -inf entries and some finite offsets.
  void add_mask() {
    mask.assign(static_cast<size_t>(p.H * p.L * p.S), 0.0f);
    for (size_t i = 0; i < mask.size(); ++i) {
      const float u = rng_uniform(21, i);
      mask[i] = u < 0.2f ? -std::numeric_limits<float>::infinity() : (u - 0.5f);
    }
    p.mask = mask.data();
    p.mask_stride_b = 0;
    p.mask_stride_h = p.L * p.S;
  }
  void add_key_padding() {
    pad.assign(static_cast<size_t>(p.B * p.S), 0);
    for (int64_t b = 0; b < p.B; ++b)
      for (int64_t j = 0; j < p.S; ++j) pad[b * p.S + j] = (j % 5 == 3) || (b == 1 && j >= p.S - 7);
    p.key_padding = pad.data();
  }
};

void forward(const Problem& pr, Operand& out, std::vector<float>& lse, bool reference) {
  lse.assign(static_cast<size_t>(pr.p.B * pr.p.H * pr.p.L), 0.0f);
  if (reference)
    attention_forward_reference(out.view(), lse.data(), pr.q.cview(), pr.k.cview(), pr.v.cview(), pr.p);
  else
    attention_forward(out.view(), lse.data(), pr.q.cview(), pr.k.cview(), pr.v.cview(), pr.p);
}

double max_abs(const std::vector<float>& a) {
  double m = 0;
  for (float x : a)
    if (std::isfinite(x)) m = std::max(m, double(std::fabs(x)));
  return m;
}

// max |a - b| / max |b| over finite entries; infinities must match exactly.
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(b[i]) || std::isinf(a[i])) {
      if (a[i] != b[i]) return kInfD;
      continue;
    }
    if (std::isnan(a[i]) || std::isnan(b[i])) return kInfD;
    m = std::max(m, std::fabs(double(a[i]) - b[i]));
  }
  return m / std::max(max_abs(b), 1e-30);
}

// Materialised float64 forward + backward, written from the textbook
// formulas (softmax Jacobian with D_i = Σ_j p_ij dp_ij, not the kernel's
// dO·out identity). Returns dq, dk, dv in the operands' layouts.
void naive_backward(const Problem& pr, const Operand& dout, std::vector<double>& dq, std::vector<double>& dk,
                    std::vector<double>& dv) {
  const AttentionParams& p = pr.p;
  dq.assign(pr.q.data.size(), 0.0);
  dk.assign(pr.k.data.size(), 0.0);
  dv.assign(pr.v.data.size(), 0.0);
  const double keep_scale = 1.0 / (1.0 - double(p.dropout_p));
  std::vector<double> P(static_cast<size_t>(p.S)), drop(static_cast<size_t>(p.S)), dP(static_cast<size_t>(p.S));
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h)
      for (int64_t i = 0; i < p.L; ++i) {
        double mx = -kInfD;
        for (int64_t j = 0; j < p.S; ++j) {
          double s = 0;
          for (int64_t e = 0; e < p.D; ++e) s += double(pr.q.at(b, h, i, e)) * pr.k.at(b, h, j, e);
          s *= p.scale;
          if (p.mask) s += p.mask[b * p.mask_stride_b + h * p.mask_stride_h + i * p.S + j];
          if ((p.key_padding && p.key_padding[b * p.S + j]) || (p.is_causal && j > i)) s = -kInfD;
          P[j] = s;
          mx = std::max(mx, s);
        }
        if (mx == -kInfD) continue;  // fully masked row: no gradient
        double sum = 0;
        for (int64_t j = 0; j < p.S; ++j) sum += (P[j] = std::exp(P[j] - mx));
        double Di = 0;
        for (int64_t j = 0; j < p.S; ++j) {
          P[j] /= sum;
          const uint64_t idx = static_cast<uint64_t>(((b * p.H + h) * p.L + i) * p.S + j);
          drop[j] = rng_uniform(p.dropout_key, idx) >= p.dropout_p ? keep_scale : 0.0;
          double g = 0;
          for (int64_t e = 0; e < p.Dv; ++e) g += double(dout.at(b, h, i, e)) * pr.v.at(b, h, j, e);
          dP[j] = g * drop[j];  // d loss / d p_ij
          Di += P[j] * dP[j];
        }
        for (int64_t j = 0; j < p.S; ++j) {
          const double ds = P[j] * (dP[j] - Di) * p.scale;
          for (int64_t e = 0; e < p.Dv; ++e)
            dv[((b * pr.v.T + j) * p.H + h) * p.Dv + e] += P[j] * drop[j] * dout.at(b, h, i, e);
          for (int64_t e = 0; e < p.D; ++e) {
            dq[((b * pr.q.T + i) * p.H + h) * p.D + e] += ds * pr.k.at(b, h, j, e);
            dk[((b * pr.k.T + j) * p.H + h) * p.D + e] += ds * pr.q.at(b, h, i, e);
          }
        }
      }
}

double rel_diff64(const std::vector<float>& a, const std::vector<double>& b) {
  double m = 0, s = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::fabs(a[i] - b[i]));
    s = std::max(s, std::fabs(b[i]));
  }
  return m / s;
}

struct Backward {
  Operand dq, dk, dv, out;
  std::vector<float> lse;
  explicit Backward(const Problem& pr)
      : dq(pr.p.B, pr.p.L, pr.p.H, pr.p.D), dk(pr.p.B, pr.p.S, pr.p.H, pr.p.D), dv(pr.p.B, pr.p.S, pr.p.H, pr.p.Dv),
        out(pr.p.B, pr.p.L, pr.p.H, pr.p.Dv) {}
  void run(const Problem& pr, const Operand& dout, bool want_q = true, bool want_k = true, bool want_v = true) {
    forward(pr, out, lse, false);
    StridedBHT<float> none{};
    attention_backward(want_q ? dq.view() : none, want_k ? dk.view() : none, want_v ? dv.view() : none,
                       dout.cview(), pr.q.cview(), pr.k.cview(), pr.v.cview(), out.cview(), lse.data(), pr.p);
  }
};

// Compares fast and reference forward and the backward against the naive
// float64 backward.
void check_problem(Problem& pr, double fwd_tol = 2e-5, double bwd_tol = 2e-4) {
  Operand out_fast(pr.p.B, pr.p.L, pr.p.H, pr.p.Dv, 0, 7.0f), out_ref(pr.p.B, pr.p.L, pr.p.H, pr.p.Dv, 0, -7.0f);
  std::vector<float> lse_fast, lse_ref;
  forward(pr, out_fast, lse_fast, false);
  forward(pr, out_ref, lse_ref, true);
  const double e_out = rel_diff(out_fast.data, out_ref.data), e_lse = rel_diff(lse_fast, lse_ref);
  if (!(e_out <= fwd_tol) || !(e_lse <= fwd_tol)) std::printf("  forward: out %g lse %g\n", e_out, e_lse);
  CHECK(e_out <= fwd_tol);
  CHECK(e_lse <= fwd_tol);

  Operand dout(pr.p.B, pr.p.L, pr.p.H, pr.p.Dv, 31);
  Backward g(pr);
  g.run(pr, dout);
  std::vector<double> dq, dk, dv;
  naive_backward(pr, dout, dq, dk, dv);
  const double eq = rel_diff64(g.dq.data, dq), ek = rel_diff64(g.dk.data, dk), ev = rel_diff64(g.dv.data, dv);
  if (!(eq <= bwd_tol && ek <= bwd_tol && ev <= bwd_tol)) std::printf("  backward: dq %g dk %g dv %g\n", eq, ek, ev);
  CHECK(eq <= bwd_tol);
  CHECK(ek <= bwd_tol);
  CHECK(ev <= bwd_tol);
  // dq alone and dk/dv alone take the two-pass route (one task per query
  // block, one per key block) whatever the head count.
  Backward only_q(pr), only_kv(pr);
  only_q.run(pr, dout, true, false, false);
  only_kv.run(pr, dout, false, true, true);
  const double eq2 = rel_diff64(only_q.dq.data, dq), ek2 = rel_diff64(only_kv.dk.data, dk),
               ev2 = rel_diff64(only_kv.dv.data, dv);
  if (!(eq2 <= bwd_tol && ek2 <= bwd_tol && ev2 <= bwd_tol))
    std::printf("  two-pass backward: dq %g dk %g dv %g\n", eq2, ek2, ev2);
  CHECK(eq2 <= bwd_tol);
  CHECK(ek2 <= bwd_tol);
  CHECK(ev2 <= bwd_tol);
}

}  // namespace

CF_TEST(odd_shapes_match_reference) {
  Problem pr(2, 3, 13, 17, 8, 5);
  check_problem(pr);
}

CF_TEST(multi_block_shapes_match_reference) {
  Problem a(1, 2, 150, 131, 64, 64);
  check_problem(a);
  Problem b(2, 1, 70, 200, 20, 36);  // D, Dv not multiples of the SIMD width
  check_problem(b);
}

CF_TEST(causal_matches_reference) {
  for (auto [L, S] : {std::pair<int64_t, int64_t>{130, 130}, {100, 170}, {170, 100}, {13, 17}}) {
    Problem pr(2, 2, L, S, 16, 24);
    pr.p.is_causal = true;
    check_problem(pr);
  }
}

CF_TEST(mask_padding_causal_dropout_match_reference) {
  Problem pr(2, 3, 97, 75, 32, 16);
  pr.add_mask();
  check_problem(pr);
  pr.add_key_padding();
  check_problem(pr);
  pr.p.is_causal = true;
  check_problem(pr);
  pr.p.dropout_p = 0.3f;
  pr.p.dropout_key = 99;
  check_problem(pr);
}

CF_TEST(few_query_rows_match_reference) {
  // L <= 2 (one decoding step) takes the query-row forward kernel: every
  // option, short and long key ranges, head sizes off the SIMD width, fully
  // masked rows. (Forward only: the backward kernels do not change with L,
  // and with one visible key dq and dk are exactly 0, where the relative
  // backward check of check_problem means nothing.)
  const auto check_forward = [](Problem& pr, double tol = 2e-5) {
    Operand fast(pr.p.B, pr.p.L, pr.p.H, pr.p.Dv, 0, 7.0f), ref(pr.p.B, pr.p.L, pr.p.H, pr.p.Dv, 0, -7.0f);
    std::vector<float> lf, lr;
    forward(pr, fast, lf, false);
    forward(pr, ref, lr, true);
    const double eo = rel_diff(fast.data, ref.data), el = rel_diff(lf, lr);
    if (!(eo <= tol && el <= 2e-5)) std::printf("  L=%d S=%d D=%d: out %g lse %g\n", int(pr.p.L), int(pr.p.S),
                                                  int(pr.p.D), eo, el);
    CHECK(eo <= tol);
    CHECK(el <= 2e-5);
    for (size_t i = 0; i < lf.size(); ++i) CHECK(std::isinf(lf[i]) == std::isinf(lr[i]));
    return eo;
  };
  for (int64_t L : {1, 2})
    for (auto [S, D, Dv] : {std::array<int64_t, 3>{1, 8, 8}, {70, 64, 64}, {200, 20, 36}, {129, 3, 5}}) {
      Problem pr(3, 2, L, S, D, Dv);
      check_forward(pr);
      pr.add_mask();
      pr.add_key_padding();
      for (int64_t j = 0; j < S; ++j) pr.pad[2 * S + j] = 1;  // batch 2: every key padded
      check_forward(pr);
      pr.p.is_causal = true;
      check_forward(pr);
      pr.p.is_causal = false;
      pr.p.dropout_p = 0.2f;
      pr.p.dropout_key = 7;
      check_forward(pr);
      pr.p.dropout_p = 0.0f;
      // bf16: the probabilities are rounded before the value product (the
      // float32 reference does not round: bf16's 2^-9 apart, and not closer
      // when there is more than one key to weigh).
      pr.p.bf16 = true;
      const double e = check_forward(pr, 5e-3);
      if (S > 1) CHECK(e > 1e-5);
    }
}

CF_TEST(dropout_forward_backward_consistent) {
  Problem pr(2, 2, 70, 90, 16, 16);
  pr.p.dropout_p = 0.25f;
  pr.p.dropout_key = 1234;
  check_problem(pr);
  // Dropout actually changes the output, and a different key changes it again.
  Operand a(2, 70, 2, 16), b2(2, 70, 2, 16), c(2, 70, 2, 16);
  std::vector<float> la, lb, lc;
  forward(pr, a, la, false);
  pr.p.dropout_key = 4321;
  forward(pr, b2, lb, false);
  pr.p.dropout_p = 0.0f;
  forward(pr, c, lc, false);
  CHECK(rel_diff(a.data, b2.data) > 1e-2);
  CHECK(rel_diff(a.data, c.data) > 1e-2);
  CHECK(rel_diff(la, lc) == 0.0);  // lse is taken before dropout
}

CF_TEST(fully_masked_rows_give_zero_and_no_nan) {
  Problem pr(2, 2, 20, 30, 8, 8);
  pr.add_key_padding();
  for (int64_t j = 0; j < pr.p.S; ++j) pr.pad[1 * pr.p.S + j] = 1;  // batch 1: every key padded
  pr.add_mask();
  for (int64_t j = 0; j < pr.p.S; ++j) pr.mask[0 * pr.p.L * pr.p.S + 4 * pr.p.S + j] = -INFINITY;  // head 0, row 4
  check_problem(pr);
  Operand dout(2, 20, 2, 8, 31);
  Backward g(pr);
  g.run(pr, dout);
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t i = 0; i < 20; ++i) {
      CHECK(std::isinf(g.lse[(1 * 2 + h) * 20 + i]) && g.lse[(1 * 2 + h) * 20 + i] < 0);
      for (int64_t e = 0; e < 8; ++e) {
        CHECK(g.out.at(1, h, i, e) == 0.0f);
        CHECK(g.dq.at(1, h, i, e) == 0.0f);
      }
    }
  for (int64_t b = 0; b < 2; ++b) CHECK(g.out.at(b, 0, 4, 0) == 0.0f && g.dq.at(b, 0, 4, 0) == 0.0f);
  for (float x : g.dk.data) CHECK(std::isfinite(x));
  for (float x : g.dv.data) CHECK(std::isfinite(x));
}

CF_TEST(no_keys_gives_zero_output) {
  Problem pr(1, 2, 5, 0, 4, 3);
  Operand out(1, 5, 2, 3, 0, 9.0f);
  std::vector<float> lse;
  forward(pr, out, lse, false);
  for (float x : out.data) CHECK(x == 0.0f);
  for (float x : lse) CHECK(std::isinf(x) && x < 0);
}

CF_TEST(backward_matches_finite_differences) {
  // Independent of every float64 formula above: central differences of
  // sum(out * g) through the fast forward.
  Problem pr(1, 2, 9, 11, 6, 5);
  pr.add_mask();
  pr.p.is_causal = true;
  Operand dout(1, 9, 2, 5, 31);
  Backward g(pr);
  g.run(pr, dout);
  auto loss = [&]() {
    Operand out(1, 9, 2, 5);
    std::vector<float> lse;
    forward(pr, out, lse, true);
    double s = 0;
    for (size_t i = 0; i < out.data.size(); ++i) s += double(out.data[i]) * dout.data[i];
    return s;
  };
  const float eps = 1e-2f;
  double worst = 0;
  for (auto [x, dx] : {std::pair<Operand*, Operand*>{&pr.q, &g.dq}, {&pr.k, &g.dk}, {&pr.v, &g.dv}}) {
    double scale = 0, err = 0;
    for (size_t i = 0; i < x->data.size(); ++i) {
      const float old = x->data[i];
      x->data[i] = old + eps;
      const double fp = loss();
      x->data[i] = old - eps;
      const double fm = loss();
      x->data[i] = old;
      const double num = (fp - fm) / (2 * eps);
      scale = std::max(scale, std::fabs(num));
      err = std::max(err, std::fabs(num - dx->data[i]));
    }
    worst = std::max(worst, err / scale);
  }
  if (!(worst < 2e-3)) std::printf("  finite differences: rel err %g\n", worst);
  CHECK(worst < 2e-3);
}

CF_TEST(results_do_not_depend_on_thread_count) {
  // B*H = 3 runs backward in one task per head with 1 thread and in two
  // passes with 2 threads: the gradients must be bitwise identical.
  Problem pr(1, 3, 150, 140, 16, 8);
  pr.add_mask();
  pr.p.dropout_p = 0.1f;
  pr.p.dropout_key = 5;
  Operand dout(1, 150, 3, 8, 31);
  const int saved = get_num_threads();
  set_num_threads(1);
  Backward one(pr);
  one.run(pr, dout);
  set_num_threads(2);
  Backward two(pr);
  two.run(pr, dout);
  set_num_threads(saved);
  CHECK(one.out.data == two.out.data);
  CHECK(one.dq.data == two.dq.data);
  CHECK(one.dk.data == two.dk.data);
  CHECK(one.dv.data == two.dv.data);
}

CF_TEST(backward_accumulates_and_skips_null_gradients) {
  Problem pr(2, 2, 40, 50, 8, 8);
  pr.p.is_causal = true;
  Operand dout(2, 40, 2, 8, 31);
  Backward once(pr), twice(pr), only_q(pr), only_kv(pr);
  once.run(pr, dout);
  twice.run(pr, dout);
  twice.run(pr, dout);
  for (size_t i = 0; i < once.dq.data.size(); ++i) CHECK_NEAR(twice.dq.data[i], 2 * once.dq.data[i], 1e-5);
  for (size_t i = 0; i < once.dk.data.size(); ++i) CHECK_NEAR(twice.dk.data[i], 2 * once.dk.data[i], 1e-5);
  for (size_t i = 0; i < once.dv.data.size(); ++i) CHECK_NEAR(twice.dv.data[i], 2 * once.dv.data[i], 1e-5);
  only_q.run(pr, dout, true, false, false);
  only_kv.run(pr, dout, false, true, true);
  CHECK(only_q.dq.data == once.dq.data);
  CHECK(only_kv.dk.data == once.dk.data && only_kv.dv.data == once.dv.data);
  CHECK(max_abs(only_q.dk.data) == 0.0 && max_abs(only_kv.dq.data) == 0.0);
}

CF_TEST(bad_params_throw) {
  Problem pr(1, 1, 4, 4, 4, 4);
  Operand out(1, 4, 1, 4);
  std::vector<float> lse(4);
  auto run = [&](AttentionParams p) {
    attention_forward(out.view(), lse.data(), pr.q.cview(), pr.k.cview(), pr.v.cview(), p);
  };
  AttentionParams p = pr.p;
  p.D = 0;
  CHECK_THROWS(ValueError, run(p));
  p = pr.p;
  p.Dv = -1;
  CHECK_THROWS(ValueError, run(p));
  p = pr.p;
  p.L = -2;
  CHECK_THROWS(ValueError, run(p));
  p = pr.p;
  p.dropout_p = 1.0f;
  CHECK_THROWS(ValueError, run(p));
  p = pr.p;
  p.dropout_p = -0.1f;
  CHECK_THROWS(ValueError, run(p));
  p = pr.p;
  p.scale = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS(ValueError, run(p));
  p = pr.p;
  CHECK_THROWS(ValueError, attention_forward(out.view(), nullptr, pr.q.cview(), pr.k.cview(), pr.v.cview(), p));
  bool message_names_value = false;
  try {
    p.D = 0;
    run(p);
  } catch (const ValueError& e) {
    message_names_value = std::strstr(e.what(), "D >= 1, got 0") != nullptr;
  }
  CHECK(message_names_value);
}

CF_TEST_MAIN()
