// Embedding, sinusoidal positional encoding and cross-entropy against scalar
// double-precision references and finite differences.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "check.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/nn/embedding.hpp"
#include "cpuformer/nn/loss.hpp"
#include "cpuformer/ops/cross_entropy.hpp"
#include "cpuformer/ops/embedding.hpp"
#include "cpuformer/runtime/rng.hpp"
#include "cpuformer/runtime/threads.hpp"
#include "cpuformer/tensor.hpp"

using namespace cpuformer;

namespace {

std::vector<float> randn_like(int64_t n, uint64_t key, float scale = 1.0f) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = scale * (2.0f * rng_uniform(key, i) - 1.0f);
  return v;
}

// Double-precision reference: the mean loss with torch's label smoothing.
double ref_cross_entropy(const std::vector<double>& x, const std::vector<int64_t>& t, int64_t N, int64_t C,
                         int64_t ignore, double eps) {
  double total = 0.0;
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (t[n] == ignore) continue;
    double m = -INFINITY;
    for (int64_t c = 0; c < C; ++c) m = std::max(m, x[n * C + c]);
    double s = 0.0;
    for (int64_t c = 0; c < C; ++c) s += std::exp(x[n * C + c] - m);
    const double lse = m + std::log(s);
    double mean_nlp = 0.0;
    for (int64_t c = 0; c < C; ++c) mean_nlp += (lse - x[n * C + c]) / C;
    total += (1.0 - eps) * (lse - x[n * C + t[n]]) + eps * mean_nlp;
    ++count;
  }
  return total / count;
}

}  // namespace

CF_TEST(embedding_forward_gathers_rows) {
  const int64_t V = 7, C = 5, N = 6;
  std::vector<float> w = randn_like(V * C, 1);
  std::vector<int64_t> ids = {3, 0, 6, 3, 3, 1};
  std::vector<float> out(N * C, -1.0f);
  embedding_forward(out.data(), ids.data(), w.data(), N, V, C);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) CHECK(out[n * C + c] == w[ids[n] * C + c]);
}

CF_TEST(embedding_rejects_bad_ids) {
  std::vector<float> w(4 * 2), out(3 * 2), dw(4 * 2, 0.0f);
  std::vector<int64_t> neg = {0, -1, 2}, big = {0, 1, 4};
  CHECK_THROWS(IndexError, embedding_forward(out.data(), neg.data(), w.data(), 3, 4, 2));
  CHECK_THROWS(IndexError, embedding_forward(out.data(), big.data(), w.data(), 3, 4, 2));
  CHECK_THROWS(IndexError, embedding_backward(dw.data(), out.data(), big.data(), 3, 4, 2));
  try {
    embedding_forward(out.data(), big.data(), w.data(), 3, 4, 2);
  } catch (const IndexError& e) {
    const std::string msg = e.what();
    CHECK(msg.find("4") != std::string::npos && msg.find("position 2") != std::string::npos);
  }
  for (float v : dw) CHECK(v == 0.0f);  // nothing written before the throw
}

CF_TEST(embedding_backward_scatter_adds_deterministically) {
  // C large enough for several column chunks; many repeated ids.
  const int64_t V = 5, C = 1000, N = 300;
  std::vector<int64_t> ids(N);
  for (int64_t n = 0; n < N; ++n) ids[n] = (n * 7) % V;
  std::vector<float> g = randn_like(N * C, 2);
  std::vector<double> ref(V * C, 0.5);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) ref[ids[n] * C + c] += g[n * C + c];
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<float> dw(V * C, 0.5f);  // accumulates
    embedding_backward(dw.data(), g.data(), ids.data(), N, V, C);
    double err = 0.0;
    for (int64_t i = 0; i < V * C; ++i) err = std::max(err, std::fabs(dw[i] - ref[i]));
    CHECK(err < 1e-4);
    results.push_back(dw);
  }
  set_num_threads(2);
  CHECK(std::memcmp(results[0].data(), results[1].data(), sizeof(float) * V * C) == 0);
  CHECK(std::memcmp(results[0].data(), results[2].data(), sizeof(float) * V * C) == 0);
}

CF_TEST(sinusoidal_encoding_matches_formula) {
  for (int64_t C : {1, 6, 7, 64}) {
    const int64_t T = 50, off = 3;
    std::vector<float> pe(T * C);
    sinusoidal_positional_encoding(pe.data(), T, C, off);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t i2 = c - (c % 2);
        const double a = (t + off) / std::pow(10000.0, double(i2) / double(C));
        const double ref = (c % 2) ? std::cos(a) : std::sin(a);
        CHECK(pe[t * C + c] == static_cast<float>(ref));
      }
  }
  float dummy = 0;
  CHECK_THROWS(ValueError, sinusoidal_positional_encoding(&dummy, -1, 4));
  CHECK_THROWS(ValueError, sinusoidal_positional_encoding(&dummy, 1, 0));
  sinusoidal_positional_encoding(&dummy, 0, 4);  // empty is fine
}

CF_TEST(cross_entropy_matches_double_reference) {
  const int64_t N = 37, C = 1100;  // C spans several exp blocks
  std::vector<float> x = randn_like(N * C, 3, 4.0f);
  std::vector<double> xd(x.begin(), x.end());
  std::vector<int64_t> t(N);
  for (int64_t n = 0; n < N; ++n) t[n] = (n % 5 == 0) ? -100 : (n * 131) % C;
  for (float eps : {0.0f, 0.1f, 1.0f}) {
    const double ref = ref_cross_entropy(xd, t, N, C, -100, eps);
    const float got = cross_entropy_forward(x.data(), t.data(), N, C, -100, eps);
    CHECK_NEAR(got, ref, 1e-6 * std::fabs(ref));
  }
  // Bitwise identical for any thread count.
  set_num_threads(1);
  const float a = cross_entropy_forward(x.data(), t.data(), N, C, -100, 0.1f);
  set_num_threads(3);
  const float b = cross_entropy_forward(x.data(), t.data(), N, C, -100, 0.1f);
  set_num_threads(2);
  CHECK(a == b);
}

CF_TEST(cross_entropy_backward_matches_finite_differences) {
  const int64_t N = 6, C = 9;
  std::vector<float> x = randn_like(N * C, 4, 2.0f);
  std::vector<int64_t> t = {1, 8, 7, 0, 5, 2};
  t[3] = 3;  // custom ignore index below
  for (float eps : {0.0f, 0.25f}) {
    std::vector<float> d(N * C, 1.0f);  // accumulates onto 1
    cross_entropy_backward(d.data(), x.data(), t.data(), N, C, 3, eps, 2.0f);
    std::vector<double> xd(x.begin(), x.end());
    double max_err = 0.0;
    for (int64_t i = 0; i < N * C; ++i) {
      const double h = 1e-5, old = xd[i];
      xd[i] = old + h;
      const double fp = ref_cross_entropy(xd, t, N, C, 3, eps);
      xd[i] = old - h;
      const double fm = ref_cross_entropy(xd, t, N, C, 3, eps);
      xd[i] = old;
      const double num = 2.0 * (fp - fm) / (2 * h);
      max_err = std::max(max_err, std::fabs((d[i] - 1.0) - num));
    }
    CHECK(max_err < 1e-6);
    for (int64_t c = 0; c < C; ++c) CHECK(d[3 * C + c] == 1.0f);  // ignored row untouched
  }
}

CF_TEST(cross_entropy_large_logits_and_edge_cases) {
  const int64_t N = 4, C = 3;
  std::vector<float> x = {1e4f, 0.0f, -1e4f, 1e4f, 1e4f, 1e4f, -1e4f, 1e4f, 1e4f - 1.0f, 0.0f, 0.0f, 0.0f};
  std::vector<int64_t> t = {0, 2, 2, 1};
  std::vector<double> xd(x.begin(), x.end());
  const double ref = ref_cross_entropy(xd, t, N, C, -100, 0.0);
  const float got = cross_entropy_forward(x.data(), t.data(), N, C, -100, 0.0f);
  CHECK(std::isfinite(got));
  CHECK_NEAR(got, ref, 1e-6 * ref);
  std::vector<float> d(N * C, 0.0f);
  cross_entropy_backward(d.data(), x.data(), t.data(), N, C, -100, 0.0f);
  for (float v : d) CHECK(std::isfinite(v));
  // Row sums of the gradient are zero.
  for (int64_t n = 0; n < N; ++n) CHECK_NEAR(d[n * C] + d[n * C + 1] + d[n * C + 2], 0.0, 1e-7);
  // Every row ignored: NaN like torch, no gradient.
  std::vector<int64_t> all_ignored(N, -100);
  CHECK(std::isnan(cross_entropy_forward(x.data(), all_ignored.data(), N, C, -100, 0.0f)));
  std::vector<float> z(N * C, 0.0f);
  cross_entropy_backward(z.data(), x.data(), all_ignored.data(), N, C, -100, 0.0f);
  for (float v : z) CHECK(v == 0.0f);
  // Bad targets and smoothing.
  std::vector<int64_t> bad = {0, 3, 1, 1}, neg = {0, 1, -1, 1};
  CHECK_THROWS(IndexError, cross_entropy_forward(x.data(), bad.data(), N, C, -100, 0.0f));
  CHECK_THROWS(IndexError, cross_entropy_forward(x.data(), neg.data(), N, C, -100, 0.0f));
  CHECK_THROWS(IndexError, cross_entropy_backward(z.data(), x.data(), bad.data(), N, C, -100, 0.0f));
  CHECK_THROWS(ValueError, cross_entropy_forward(x.data(), t.data(), N, C, -100, 1.5f));
  CHECK_THROWS(ValueError, cross_entropy_forward(x.data(), t.data(), N, C, -100, std::nanf("")));
  try {
    cross_entropy_forward(x.data(), bad.data(), N, C, -100, 0.0f);
  } catch (const IndexError& e) {
    const std::string msg = e.what();
    CHECK(msg.find("target 3") != std::string::npos && msg.find("row 1") != std::string::npos);
  }
}

CF_TEST(embedding_module) {
  manual_seed(5);
  Embedding emb(10, 4);
  emb.flatten_parameters();
  CHECK(emb.num_parameters() == 40);
  CHECK(emb.named_parameters().at(0).first == "weight");
  double mean = 0, var = 0;
  const float* w = emb.weight().value.data();
  for (int i = 0; i < 40; ++i) mean += w[i] / 40.0;
  for (int i = 0; i < 40; ++i) var += (w[i] - mean) * (w[i] - mean) / 40.0;
  CHECK(std::fabs(mean) < 0.6 && var > 0.3 && var < 2.5);  // N(0, 1)
  CHECK_THROWS(StateError, emb.backward(Tensor::zeros({2, 4})));
  std::vector<int64_t> ids = {9, 0, 9};
  Tensor y = emb.forward(ids.data(), {3});
  CHECK(y.shape() == Shape({3, 4}));
  for (int c = 0; c < 4; ++c) CHECK(y.data()[c] == w[9 * 4 + c]);
  Tensor g = Tensor::empty({3, 4});
  g.fill(1.0f);
  emb.backward(g);
  emb.backward(g);  // accumulates
  CHECK(emb.weight().grad_data()[9 * 4] == 4.0f && emb.weight().grad_data()[0] == 2.0f &&
        emb.weight().grad_data()[4] == 0.0f);
  CHECK_THROWS(ValueError, emb.backward(Tensor::zeros({3, 5})));
  std::vector<int64_t> bad = {10};
  CHECK_THROWS(IndexError, emb.forward(bad.data(), {1}));
  CHECK_THROWS(ValueError, Embedding(0, 3));
  CHECK_THROWS(ValueError, Embedding(3, 0));
}

CF_TEST(cross_entropy_module) {
  CrossEntropyLoss crit(-1, 0.1f);
  CHECK_THROWS(StateError, crit.backward());
  CHECK_THROWS(ValueError, CrossEntropyLoss(-100, -0.1f));
  Tensor x = Tensor::empty({3, 4});
  for (int i = 0; i < 12; ++i) x.data()[i] = 0.3f * i - 1.0f;
  std::vector<int64_t> t = {2, -1, 0};
  const float loss = crit.forward(x, t.data(), 3);
  CHECK_NEAR(loss, cross_entropy_forward(x.data(), t.data(), 3, 4, -1, 0.1f), 0.0);
  Tensor d = crit.backward(3.0f);
  std::vector<float> ref(12, 0.0f);
  cross_entropy_backward(ref.data(), x.data(), t.data(), 3, 4, -1, 0.1f, 3.0f);
  for (int i = 0; i < 12; ++i) CHECK(d.data()[i] == ref[i]);
  CHECK_THROWS(ValueError, crit.forward(x, t.data(), 2));
}

CF_TEST_MAIN()
