// Layer norm, activations, softmax and dropout kernels (and their modules)
// against plain scalar references computed in double.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "check.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/nn/activation.hpp"
#include "cpuformer/nn/layer_norm.hpp"
#include "cpuformer/ops/activations.hpp"
#include "cpuformer/ops/dropout.hpp"
#include "cpuformer/ops/cross_entropy.hpp"
#include "cpuformer/ops/layer_norm.hpp"
#include "cpuformer/ops/linear.hpp"
#include "cpuformer/ops/softmax.hpp"
#include "cpuformer/ops/vec_math.hpp"
#include "cpuformer/runtime/rng.hpp"
#include "cpuformer/runtime/threads.hpp"

using namespace cpuformer;

namespace {

std::vector<float> randn_like(int64_t n, uint64_t key, float scale = 1.0f, float shift = 0.0f) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) {
    // sum of 4 uniforms: roughly normal, mean 0, var 1/3
    float s = 0;
    for (int k = 0; k < 4; ++k) s += rng_uniform(key, 4 * i + k) - 0.5f;
    v[i] = shift + scale * s * 1.7320508f;
  }
  return v;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// max |a - e| / max |e|
template <class A>
double rel_err(const A& a, const std::vector<double>& e) {
  double d = 0;
  for (size_t i = 0; i < e.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - e[i]));
  return d / std::max(max_abs(e), 1e-30);
}

// ---- scalar references ----
void ref_layer_norm(std::vector<double>& y, std::vector<double>& dx, std::vector<double>& dw, std::vector<double>& db,
                    const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                    const std::vector<float>& dy, int64_t N, int64_t C, double eps, bool affine) {
  y.assign(N * C, 0);
  dx.assign(N * C, 0);
  dw.assign(C, 0);
  db.assign(C, 0);
  for (int64_t n = 0; n < N; ++n) {
    double m = 0, v = 0;
    for (int64_t c = 0; c < C; ++c) m += x[n * C + c];
    m /= C;
    for (int64_t c = 0; c < C; ++c) v += (x[n * C + c] - m) * (x[n * C + c] - m);
    v /= C;
    const double r = 1.0 / std::sqrt(v + eps);
    std::vector<double> xh(C), g(C);
    double sg = 0, sgx = 0;
    for (int64_t c = 0; c < C; ++c) {
      xh[c] = (x[n * C + c] - m) * r;
      const double wc = affine ? w[c] : 1.0, bc = affine ? b[c] : 0.0;
      y[n * C + c] = xh[c] * wc + bc;
      g[c] = dy[n * C + c] * wc;
      sg += g[c];
      sgx += g[c] * xh[c];
      dw[c] += dy[n * C + c] * xh[c];
      db[c] += dy[n * C + c];
    }
    for (int64_t c = 0; c < C; ++c) dx[n * C + c] = r * (g[c] - sg / C - xh[c] * sgx / C);
  }
}

double ref_gelu(double x, bool tanh_form) {
  if (!tanh_form) return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

}  // namespace

CF_TEST(layer_norm_matches_scalar_reference) {
  const int64_t N = 37, C = 29;
  for (int affine = 0; affine < 2; ++affine) {
    auto x = randn_like(N * C, 1, 2.0f, 3.0f), w = randn_like(C, 2), b = randn_like(C, 3), dy = randn_like(N * C, 4);
    std::vector<double> ry, rdx, rdw, rdb;
    ref_layer_norm(ry, rdx, rdw, rdb, x, w, b, dy, N, C, 1e-5, affine);
    std::vector<float> y(N * C), mean(N), rstd(N);
    const float* wp = affine ? w.data() : nullptr;
    layer_norm_forward(y.data(), mean.data(), rstd.data(), x.data(), wp, affine ? b.data() : nullptr, N, C, 1e-5f);
    CHECK(rel_err(y, ry) < 1e-6);
    // Backward accumulates: start from ones and subtract them afterwards.
    std::vector<float> dx(N * C, 1.0f), dw(C, 1.0f), db(C, 1.0f);
    layer_norm_backward(dx.data(), affine ? dw.data() : nullptr, db.data(), dy.data(), x.data(), wp, mean.data(),
                        rstd.data(), N, C);
    for (auto& v : dx) v -= 1.0f;
    for (auto& v : db) v -= 1.0f;
    CHECK(rel_err(dx, rdx) < 1e-5);
    CHECK(rel_err(db, rdb) < 1e-6);
    if (affine) {
      for (auto& v : dw) v -= 1.0f;
      CHECK(rel_err(dw, rdw) < 1e-5);
    } else {
      CHECK(dw[0] == 1.0f);  // untouched when not wanted
    }
    // layer_norm_stats gives exactly what forward saved; out may alias inp.
    std::vector<float> m2(N), r2(N);
    layer_norm_stats(m2.data(), r2.data(), x.data(), N, C, 1e-5f);
    CHECK(m2 == mean && r2 == rstd);
    std::vector<float> inplace = x;
    layer_norm_forward(inplace.data(), nullptr, nullptr, inplace.data(), wp, affine ? b.data() : nullptr, N, C, 1e-5f);
    CHECK(inplace == y);
  }
}

CF_TEST(layer_norm_backward_is_thread_count_independent) {
  const int64_t N = 3001, C = 19;
  auto x = randn_like(N * C, 5), w = randn_like(C, 6), dy = randn_like(N * C, 7);
  std::vector<float> mean(N), rstd(N);
  layer_norm_stats(mean.data(), rstd.data(), x.data(), N, C, 1e-5f);
  std::vector<float> dx[2], dw[2], db[2];
  const int before = get_num_threads();
  for (int t = 0; t < 2; ++t) {
    set_num_threads(t + 1);
    dx[t].assign(N * C, 0.0f);
    dw[t].assign(C, 0.0f);
    db[t].assign(C, 0.0f);
    layer_norm_backward(dx[t].data(), dw[t].data(), db[t].data(), dy.data(), x.data(), w.data(), mean.data(),
                        rstd.data(), N, C);
  }
  set_num_threads(before);
  CHECK(dx[0] == dx[1] && dw[0] == dw[1] && db[0] == db[1]);
}

CF_TEST(gelu_and_relu_match_scalar_reference) {
  const int64_t n = 40001;  // above the parallel threshold
  auto x = randn_like(n, 8, 4.0f);
  x[0] = -6.0f;  // tail that 1 + erf would flush to 0
  x[1] = 30.0f;
  x[2] = -30.0f;
  auto dy = randn_like(n, 9);
  for (int t = 0; t < 2; ++t) {
    const bool tf = t == 1;
    const GeluApproximate a = tf ? GeluApproximate::Tanh : GeluApproximate::None;
    std::vector<float> y(n), dx(n, 0.0f);
    gelu_forward(y.data(), x.data(), n, a);
    std::vector<double> ry(n), rdx(n);
    for (int64_t i = 0; i < n; ++i) {
      ry[i] = ref_gelu(x[i], tf);
      const double h = 1e-4 * std::max(1.0, std::fabs(double(x[i])));  // central difference in double
      rdx[i] = dy[i] * (ref_gelu(x[i] + h, tf) - ref_gelu(x[i] - h, tf)) / (2 * h);
    }
    CHECK(rel_err(y, ry) < 1e-6);
    CHECK(y[0] < 0.0f && std::fabs(y[0] - ry[0]) < 1e-5 * std::fabs(ry[0]));
    gelu_backward(dx.data(), dy.data(), x.data(), n, a);
    CHECK(rel_err(dx, rdx) < 1e-5);
    gelu_backward(dx.data(), dy.data(), x.data(), n, a);  // accumulates
    for (auto& v : rdx) v *= 2;
    CHECK(rel_err(dx, rdx) < 1e-5);
    std::vector<float> alias = x;
    gelu_forward(alias.data(), alias.data(), n, a);
    CHECK(alias == y);
  }
  std::vector<float> y(n), dx(n, 0.5f);
  relu_forward(y.data(), x.data(), n);
  relu_backward(dx.data(), dy.data(), x.data(), n);
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) {
    ok &= y[i] == std::max(x[i], 0.0f);
    ok &= dx[i] == 0.5f + (x[i] > 0 ? dy[i] : 0.0f);
  }
  CHECK(ok);
  const float nan = std::nanf("");
  float z;
  relu_forward(&z, &nan, 1);
  CHECK(std::isnan(z));
}

CF_TEST(residual_and_accumulate) {
  const int64_t n = 50000;
  auto a = randn_like(n, 10), b = randn_like(n, 11);
  std::vector<float> out(n);
  residual_forward(out.data(), a.data(), b.data(), n);
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) ok &= out[i] == a[i] + b[i];
  std::vector<float> acc = out;
  accumulate(acc.data(), a.data(), n);
  for (int64_t i = 0; i < n; ++i) ok &= acc[i] == out[i] + a[i];
  std::vector<float> alias = a;
  residual_forward(alias.data(), alias.data(), b.data(), n);  // out aliases a
  ok &= alias == out;
  CHECK(ok);
}

// The fused residual + LayerNorm of the inference path is bitwise the
// residual add followed by layer_norm_forward, with and without the sum
// written out, with or without affine terms, serial and threaded sizes.
CF_TEST(add_layer_norm_equals_residual_then_layer_norm) {
  for (int64_t N : {3, 300}) {
    const int64_t C = 96;
    auto a = randn_like(N * C, 20), b = randn_like(N * C, 21), w = randn_like(C, 22), bias = randn_like(C, 23);
    for (int affine = 0; affine < 2; ++affine) {
      const float* pw = affine ? w.data() : nullptr;
      const float* pb = affine ? bias.data() : nullptr;
      std::vector<float> s(N * C), want(N * C), mean(N), rstd(N);
      residual_forward(s.data(), a.data(), b.data(), N * C);
      layer_norm_forward(want.data(), mean.data(), rstd.data(), s.data(), pw, pb, N, C, 1e-5f);
      std::vector<float> got(N * C), sum(N * C);
      add_layer_norm_forward(got.data(), sum.data(), a.data(), b.data(), pw, pb, N, C, 1e-5f);
      CHECK(got == want && sum == s);
      std::vector<float> alias = a;  // out aliases a, no sum
      add_layer_norm_forward(alias.data(), nullptr, alias.data(), b.data(), pw, pb, N, C, 1e-5f);
      CHECK(alias == want);
    }
  }
}

CF_TEST(vec_math_exp_and_normal_cdf_accuracy) {
  // exp_f: <= 2 ulp on a dense sample of the normal range, right limits outside.
  double worst_ulp = 0;
  for (float x = -87.0f; x <= 88.7f; x += 7.3e-4f) {
    const double want = std::exp(double(x));
    const float wf = static_cast<float>(want);
    const double ulp = double(std::nextafter(wf, INFINITY)) - wf;
    worst_ulp = std::max(worst_ulp, std::fabs(vmath::exp_f(x) - want) / ulp);
  }
  std::printf("  exp_f max error %.3f ulp\n", worst_ulp);
  CHECK(worst_ulp <= 2.0);
  CHECK(vmath::exp_f(0.0f) == 1.0f);
  CHECK(vmath::exp_f(-INFINITY) == 0.0f && vmath::exp_f(-200.0f) == 0.0f);
  CHECK(std::isinf(vmath::exp_f(89.0f)) && std::isinf(vmath::exp_f(INFINITY)));
  CHECK(std::isnan(vmath::exp_f(std::nanf(""))));
  CHECK_NEAR(vmath::exp_f(-100.0f), std::exp(-100.0), 2 * 1.401298464e-45);  // subnormal result
  // normal_cdf: relative error <= 5e-7 wherever Φ(x) is a normal float.
  double worst = 0;
  for (float x = -14.0f; x <= 14.0f; x += 1.7e-4f) {
    float e;
    const double c = vmath::normal_cdf(x, &e);
    const double want = 0.5 * std::erfc(-double(x) / std::sqrt(2.0)), want_e = std::exp(-0.5 * double(x) * x);
    if (want < 1e-37) continue;
    worst = std::max(worst, std::fabs(c - want) / want);
    if (want_e > 1e-37) worst = std::max(worst, std::fabs(e - want_e) / want_e);
  }
  std::printf("  normal_cdf max relative error %.3g\n", worst);
  CHECK(worst <= 5e-7);
  float e;
  CHECK(vmath::normal_cdf(INFINITY, &e) == 1.0f && vmath::normal_cdf(-INFINITY, &e) == 0.0f);
  CHECK(std::isnan(vmath::normal_cdf(std::nanf(""), &e)));
}

CF_TEST(gelu_fast_kernels_match_libm_references) {
  const int64_t n = 100001;
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = -15.0f + 30.0f * float(i) / float(n - 1);
  auto dy = randn_like(n, 17);
  for (int t = 0; t < 2; ++t) {
    const GeluApproximate a = t ? GeluApproximate::Tanh : GeluApproximate::None;
    std::vector<float> y(n), yr(n), dx(n, 0.0f), dxr(n, 0.0f);
    gelu_forward(y.data(), x.data(), n, a);
    gelu_forward_reference(yr.data(), x.data(), n, a);
    gelu_backward(dx.data(), dy.data(), x.data(), n, a);
    gelu_backward_reference(dxr.data(), dy.data(), x.data(), n, a);
    double worst = 0, worst_d = 0;
    for (int64_t i = 0; i < n; ++i) {
      // Elementwise relative error; the tanh form's tail is limited by the
      // float rounding of its argument u(x), amplified ~x².
      const double bound = t ? 1e-6 + 3e-7 * double(x[i]) * x[i] : 1e-6;
      if (std::fabs(yr[i]) > 1e-37) worst = std::max(worst, std::fabs(y[i] - yr[i]) / std::fabs(yr[i]) / bound);
      worst_d = std::max(worst_d, std::fabs(dx[i] - dxr[i]) / (std::fabs(dy[i]) + 1e-30));
    }
    std::printf("  gelu %s: forward error / bound %.3f, backward max |error|/|dout| %.3g\n", t ? "tanh" : "none",
                worst, worst_d);
    CHECK(worst <= 1.0);
    CHECK(worst_d <= 5e-7);
  }
}

CF_TEST(softmax_matches_scalar_reference_on_every_layout) {
  // [outer, dim, inner] with inner = 1, small, and wider than one strip.
  const int64_t layouts[][3] = {{5, 17, 1}, {3, 7, 13}, {2, 5, 130}, {1, 9, 1}, {40, 600, 1}};
  for (const auto& L : layouts) {
    const int64_t O = L[0], D = L[1], I = L[2], n = O * D * I;
    auto x = randn_like(n, 12, 5.0f), dy = randn_like(n, 13);
    std::vector<double> ry(n), rdx(n);
    for (int64_t o = 0; o < O; ++o)
      for (int64_t j = 0; j < I; ++j) {
        auto at = [&](int64_t d) { return (o * D + d) * I + j; };
        double mx = -INFINITY, s = 0, sdy = 0;
        for (int64_t d = 0; d < D; ++d) mx = std::max(mx, double(x[at(d)]));
        for (int64_t d = 0; d < D; ++d) s += std::exp(x[at(d)] - mx);
        for (int64_t d = 0; d < D; ++d) ry[at(d)] = std::exp(x[at(d)] - mx) / s;
        for (int64_t d = 0; d < D; ++d) sdy += dy[at(d)] * ry[at(d)];
        for (int64_t d = 0; d < D; ++d) rdx[at(d)] = ry[at(d)] * (dy[at(d)] - sdy);
      }
    std::vector<float> y(n), dx(n, 0.0f);
    softmax_forward(y.data(), x.data(), O, D, I);
    std::printf("  softmax [%ld,%ld,%ld] rel err %.3g\n", (long)O, (long)D, (long)I, rel_err(y, ry));
    CHECK(rel_err(y, ry) < 1e-6);
    softmax_backward(dx.data(), dy.data(), y.data(), O, D, I);
    CHECK(rel_err(dx, rdx) < 1e-5);
    std::vector<float> alias = x;
    softmax_forward(alias.data(), alias.data(), O, D, I);
    CHECK(alias == y);
  }
  // Large logits stay finite; -inf entries get exactly 0.
  float big[3] = {1000.0f, 999.0f, -INFINITY}, y[3];
  softmax_forward(y, big, 1, 3, 1);
  CHECK_NEAR(y[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-7);
  CHECK(y[2] == 0.0f);
}

CF_TEST(dropout_mask_is_a_function_of_key_and_index) {
  const int64_t n = 100003;
  const float p = 0.3f;
  auto x = randn_like(n, 14, 1.0f, 5.0f);
  std::vector<float> y1(n), y2(n), dx(n, 0.0f);
  const int before = get_num_threads();
  set_num_threads(1);
  dropout_forward(y1.data(), x.data(), n, p, 42);
  set_num_threads(2);
  dropout_forward(y2.data(), x.data(), n, p, 42);
  set_num_threads(before);
  CHECK(y1 == y2);
  int64_t dropped = 0;
  bool ok = true;
  const float scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = rng_uniform(42, i) >= p;
    dropped += !keep;
    ok &= y1[i] == (keep ? x[i] * scale : 0.0f);
  }
  CHECK(ok);
  CHECK_NEAR(double(dropped) / n, p, 5 * std::sqrt(p * (1 - p) / n));
  dropout_backward(dx.data(), x.data(), n, p, 42);  // same mask as forward
  CHECK(dx == y1);
  std::vector<float> other(n);
  dropout_forward(other.data(), x.data(), n, p, 43);
  CHECK(other != y1);
}

CF_TEST(layer_norm_module) {
  LayerNorm ln(6, 1e-5f);
  ln.flatten_parameters();
  auto params = ln.named_parameters();
  CHECK(params.size() == 2 && params[0].first == "weight" && params[1].first == "bias");
  CHECK(params[0].second->value.data()[3] == 1.0f && params[1].second->value.data()[3] == 0.0f);
  Tensor x = Tensor::empty({2, 3, 6});
  auto xv = randn_like(36, 15);
  std::copy(xv.begin(), xv.end(), x.data());
  Tensor y = ln.forward(x);
  double m = 0;
  for (int c = 0; c < 6; ++c) m += y.data()[c];
  CHECK_NEAR(m, 0.0, 1e-5);
  Tensor g = Tensor::empty({2, 3, 6});
  g.fill(1.0f);
  Tensor dx = ln.backward(g);
  CHECK(dx.shape() == x.shape());
  CHECK_NEAR(dx.data()[0], 0.0, 1e-5);  // constant upstream gradient: dx = 0
  CHECK_NEAR(params[1].second->grad_data()[0], 6.0, 1e-6);
  CHECK_THROWS(ValueError, ln.forward(Tensor::zeros({2, 5})));
  CHECK_THROWS(ValueError, ln.backward(Tensor::zeros({6, 6})));
  CHECK_THROWS(ValueError, LayerNorm(0));
  CHECK_THROWS(ValueError, LayerNorm(4, 0.0f));
  LayerNorm fresh(6);
  CHECK_THROWS(StateError, fresh.backward(g));
}

CF_TEST(activation_modules) {
  CHECK(parse_gelu_approximate("none") == GeluApproximate::None);
  CHECK(parse_gelu_approximate("tanh") == GeluApproximate::Tanh);
  CHECK_THROWS(ValueError, parse_gelu_approximate("Tanh"));
  Tensor x = Tensor::empty({4, 5});
  auto xv = randn_like(20, 16);
  std::copy(xv.begin(), xv.end(), x.data());
  Tensor g = Tensor::empty({4, 5});
  g.fill(1.0f);

  GELU gelu(GeluApproximate::Tanh);
  CHECK_THROWS(StateError, gelu.backward(g));
  Tensor y = gelu.forward(x);
  CHECK_NEAR(y.data()[7], ref_gelu(x.data()[7], true), 1e-6);
  CHECK_THROWS(ValueError, gelu.backward(Tensor::zeros({5, 4})));
  ReLU relu;
  CHECK_THROWS(StateError, relu.backward(g));
  relu.forward(x);
  Tensor dr = relu.backward(g);
  CHECK(dr.data()[3] == (x.data()[3] > 0 ? 1.0f : 0.0f));

  CHECK_THROWS(ValueError, Dropout(1.0f));
  CHECK_THROWS(ValueError, Dropout(-0.5f));
  Dropout drop(0.5f);
  CHECK_THROWS(StateError, drop.backward(g));
  Tensor big = Tensor::empty({1000});
  big.fill(2.0f);
  Tensor yd = drop.forward(big);
  int zeros = 0;
  for (int i = 0; i < 1000; ++i) zeros += yd.data()[i] == 0.0f;
  CHECK(zeros > 400 && zeros < 600);
  Tensor gd = Tensor::empty({1000});
  gd.fill(1.0f);
  Tensor dd = drop.backward(gd);
  bool same_mask = true;
  for (int i = 0; i < 1000; ++i) same_mask &= (dd.data()[i] == 0.0f) == (yd.data()[i] == 0.0f);
  CHECK(same_mask && dd.data()[0] * 2.0f == yd.data()[0] * 1.0f);
  drop.eval();
  Tensor ye = drop.forward(big);
  CHECK(ye.data() == big.data());  // identity, no copy
  CHECK(drop.backward(gd).data() == gd.data());
}

// The write (accumulate = false) forms of the backward ops the modules use
// on fresh, uninitialised buffers: equal to accumulating onto zeros, and
// never reading the buffer (it starts as NaN here).
CF_TEST(backward_ops_write_without_reading) {
  const int64_t N = 7, C = 300, I = 40;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x(N * C), g(N * C), w(C * I), xi(N * I);
  for (int64_t i = 0; i < N * C; ++i) {
    x[i] = 3.0f * (rng_uniform(41, i) - 0.5f);
    g[i] = rng_uniform(42, i) - 0.5f;
  }
  for (int64_t i = 0; i < C * I; ++i) w[i] = rng_uniform(43, i) - 0.5f;
  for (int64_t i = 0; i < N * I; ++i) xi[i] = rng_uniform(44, i) - 0.5f;
  // tol: relative; 0 = bit-identical. (Eigen's row expressions in the
  // cross-entropy peel by the destination's alignment, so an element may take
  // the scalar exp on one buffer and the vector exp on the other: 1 ulp.)
  auto same = [&](auto&& run, double tol = 0.0) {  // run(buffer, accumulate)
    std::vector<float> a(N * C, 0.0f), b(N * C, nan);
    run(a.data(), true);
    run(b.data(), false);
    bool eq = true;
    for (int64_t i = 0; i < N * C; ++i)
      eq = eq && (a[i] == b[i] || std::abs(a[i] - b[i]) <= tol * std::abs(a[i]));
    CHECK(eq);
  };
  same([&](float* d, bool acc) { relu_backward(d, g.data(), x.data(), N * C, acc); });
  for (GeluApproximate ap : {GeluApproximate::None, GeluApproximate::Tanh})
    same([&](float* d, bool acc) { gelu_backward(d, g.data(), x.data(), N * C, ap, acc); });
  const std::vector<int64_t> target = {3, -100, 0, 299, -100, 7, 150};
  same([&](float* d, bool acc) {
    cross_entropy_backward(d, x.data(), target.data(), N, C, -100, 0.1f, 0.5f, acc);
  }, 3e-7);
  // dinp [N, C] from dout [N, I] and weight [I, C] (a Linear C -> I)
  same([&](float* d, bool acc) {
    linear_backward(d, nullptr, nullptr, xi.data(), x.data(), w.data(), N, C, I, DType::Float32, acc);
  });
  same([&](float* d, bool acc) {
    linear_backward(d, nullptr, nullptr, xi.data(), x.data(), w.data(), N, C, I, DType::BFloat16, acc);
  });
  std::vector<int64_t> none(N, -100);  // every row ignored: zeros, not NaN
  std::vector<float> d(N * C, nan);
  cross_entropy_backward(d.data(), x.data(), none.data(), N, C, -100, 0.0f, 1.0f, false);
  CHECK(std::all_of(d.begin(), d.end(), [](float v) { return v == 0.0f; }));
}

CF_TEST_MAIN()
