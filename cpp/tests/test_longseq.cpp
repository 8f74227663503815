// Long-sequence attention: sliding window + global tokens against the scalar
// reference and against full attention with the explicit band mask (forward
// and backward), Performer causal/non-causal consistency and finite
// differences, Linformer projection against plain loops, argument checks.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "bht_buffer.hpp"
#include "check.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/io/checkpoint.hpp"
#include "cpuformer/io/json.hpp"
#include "cpuformer/models/bert.hpp"
#include "cpuformer/models/gpt.hpp"
#include "cpuformer/nn/multihead_attention.hpp"
#include "cpuformer/ops/linear_attention.hpp"
#include "cpuformer/ops/sparse_attention.hpp"
#include "cpuformer/runtime/rng.hpp"

using namespace cpuformer;
using cftest::Buf;
using cftest::max_diff;

CF_TEST(sliding_window_matches_reference_and_explicit_mask) {
  const int64_t B = 2, H = 2, T = 150, D = 9;
  for (bool causal : {false, true})
    for (auto [w, G] : {std::pair<int64_t, int64_t>{0, 0}, {5, 0}, {17, 3}, {64, 70}, {200, 1}}) {
      Buf q(B, H, T, D, 1, 2.0f), k(B, H, T, D, 2), v(B, H, T, D + 2, 3), g(B, H, T, D + 2, 4);
      SlidingWindowParams s;
      s.B = B, s.H = H, s.T = T, s.D = D, s.Dv = D + 2, s.window = w, s.num_global = G, s.is_causal = causal;
      s.scale = 1.0f / std::sqrt(float(D));
      std::vector<uint8_t> pad(static_cast<size_t>(B * T), 0);
      pad[T - 1] = pad[T + 3] = 1;
      s.key_padding = pad.data();
      Buf out(B, H, T, D + 2), ref(B, H, T, D + 2);
      std::vector<float> lse(static_cast<size_t>(B * H * T)), lse_ref(lse.size());
      sliding_window_attention_forward(out.v(), lse.data(), q.c(), k.c(), v.c(), s);
      sliding_window_attention_reference(ref.v(), lse_ref.data(), q.c(), k.c(), v.c(), s);
      CHECK(max_diff(out.d, ref.d) < 2e-5);
      // Full attention with the band as an explicit additive mask.
      std::vector<float> mask(static_cast<size_t>(T * T));
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j)
          mask[i * T + j] = (std::llabs(i - j) <= w || i < G || j < G) ? 0.0f : -std::numeric_limits<float>::infinity();
      AttentionParams p = sliding_window_attention_params(s);
      p.window = -1;
      p.num_global = 0;
      p.mask = mask.data();
      Buf out_m(B, H, T, D + 2);
      std::vector<float> lse_m(lse.size());
      attention_forward(out_m.v(), lse_m.data(), q.c(), k.c(), v.c(), p);
      CHECK(max_diff(out.d, out_m.d) < 1e-5);
      Buf dq(B, H, T, D), dk(B, H, T, D), dv(B, H, T, D + 2), dq_m(B, H, T, D), dk_m(B, H, T, D), dv_m(B, H, T, D + 2);
      sliding_window_attention_backward(dq.v(), dk.v(), dv.v(), g.c(), q.c(), k.c(), v.c(), out.c(), lse.data(), s);
      attention_backward(dq_m.v(), dk_m.v(), dv_m.v(), g.c(), q.c(), k.c(), v.c(), out_m.c(), lse_m.data(), p);
      CHECK(max_diff(dq.d, dq_m.d) < 1e-4);
      CHECK(max_diff(dk.d, dk_m.d) < 1e-4);
      CHECK(max_diff(dv.d, dv_m.d) < 1e-4);
    }
}

CF_TEST(sliding_window_argument_checks) {
  SlidingWindowParams s;
  s.B = s.H = 1, s.T = 4, s.D = s.Dv = 2, s.window = -1;
  CHECK_THROWS(ValueError, sliding_window_attention_params(s));
  s.window = 1, s.num_global = 5;
  CHECK_THROWS(ValueError, sliding_window_attention_params(s));
}

CF_TEST(performer_causal_last_row_equals_noncausal_and_fd) {
  const int64_t B = 1, H = 2, T = 70, D = 5, m = 24;
  Buf q(B, H, T, D, 5, 0.8f), k(B, H, T, D, 6, 0.8f), v(B, H, T, D, 7), g(B, H, T, D, 8);
  std::vector<float> w(static_cast<size_t>(m * D));
  performer_features(w.data(), m, D, 3);
  PerformerParams p;
  p.B = B, p.H = H, p.L = p.S = T, p.D = p.Dv = D, p.m = m, p.scale = 1.0f / std::sqrt(float(D));
  Buf oc(B, H, T, D), on(B, H, T, D);
  p.is_causal = true;
  performer_attention_forward(oc.v(), q.c(), k.c(), v.c(), w.data(), p);
  p.is_causal = false;
  performer_attention_forward(on.v(), q.c(), k.c(), v.c(), w.data(), p);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t e = 0; e < D; ++e) CHECK_NEAR(oc.d[(h * T + T - 1) * D + e], on.d[(h * T + T - 1) * D + e], 1e-5);
  for (bool causal : {false, true}) {
    p.is_causal = causal;
    Buf dq(B, H, T, D), dk(B, H, T, D), dv(B, H, T, D);
    performer_attention_backward(dq.v(), dk.v(), dv.v(), g.c(), q.c(), k.c(), v.c(), w.data(), p);
    auto loss = [&]() {
      Buf o(B, H, T, D);
      performer_attention_forward(o.v(), q.c(), k.c(), v.c(), w.data(), p);
      double s = 0;
      for (size_t i = 0; i < o.d.size(); ++i) s += double(o.d[i]) * g.d[i];
      return s;
    };
    Buf* xs[3] = {&q, &k, &v};
    Buf* ds[3] = {&dq, &dk, &dv};
    for (int which = 0; which < 3; ++which)
      for (size_t i : {size_t(3), size_t(77), size_t(300), size_t(650)}) {
        float& x = xs[which]->d[i];
        const float old = x, eps = 2e-3f;
        x = old + eps;
        const double lp = loss();
        x = old - eps;
        const double lm = loss();
        x = old;
        const double num = (lp - lm) / (2.0 * eps);
        CHECK_NEAR(ds[which]->d[i], num, 2e-3 + 2e-2 * std::fabs(num));
      }
  }
  p.m = 0;
  Buf o(B, H, T, D);
  CHECK_THROWS(ValueError, performer_attention_forward(o.v(), q.c(), k.c(), v.c(), w.data(), p));
}

CF_TEST(linformer_projection_matches_loops) {
  const int64_t B = 2, T = 11, K = 3, C = 5, N = 14;
  std::vector<float> x(B * T * C), e(K * N), dy(B * K * C);
  for (size_t i = 0; i < x.size(); ++i) x[i] = rng_uniform(1, i) - 0.5f;
  for (size_t i = 0; i < e.size(); ++i) e[i] = rng_uniform(2, i) - 0.5f;
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = rng_uniform(3, i) - 0.5f;
  std::vector<uint8_t> pad(B * T, 0);
  pad[4] = pad[T + 10] = 1;
  std::vector<float> y(B * K * C), dx(B * T * C, 0.5f), de(K * N, 0.25f);
  linformer_project_forward(y.data(), x.data(), C, e.data(), N, B, T, K, C, pad.data());
  linformer_project_backward(dx.data(), C, de.data(), dy.data(), x.data(), C, e.data(), N, B, T, K, C, pad.data());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t r = 0; r < K; ++r)
      for (int64_t c = 0; c < C; ++c) {
        double s = 0;
        for (int64_t t = 0; t < T; ++t)
          if (!pad[b * T + t]) s += double(e[r * N + t]) * x[(b * T + t) * C + c];
        CHECK_NEAR(y[(b * K + r) * C + c], s, 1e-5);
      }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) {
        double s = 0.5;
        if (!pad[b * T + t])
          for (int64_t r = 0; r < K; ++r) s += double(e[r * N + t]) * dy[(b * K + r) * C + c];
        CHECK_NEAR(dx[(b * T + t) * C + c], s, 1e-5);
      }
  for (int64_t r = 0; r < K; ++r)
    for (int64_t t = 0; t < N; ++t) {
      double s = 0.25;
      for (int64_t b = 0; b < B && t < T; ++b)
        if (!pad[b * T + t])
          for (int64_t c = 0; c < C; ++c) s += double(dy[(b * K + r) * C + c]) * x[(b * T + t) * C + c];
      CHECK_NEAR(de[r * N + t], s, 1e-5);
    }
}

CF_TEST(configs_record_the_attention_variant) {
  const char* base = R"({"vocab_size": 5, "block_size": 4, "n_layer": 1, "n_head": 1, "n_embd": 8)";
  // A config written before the fields existed: full attention.
  GPTConfig g = gpt_config_from_json(Json::parse(std::string(base) + "}"));
  CHECK(g.attention == "full" && g.attention_window == 256 && g.num_global == 0 && g.num_features == 256);
  g.attention = "sliding_window";
  g.attention_window = 3;
  g.num_global = 1;
  const GPTConfig r = gpt_config_from_json(gpt_config_to_json(g));
  CHECK(r.attention == "sliding_window" && r.attention_window == 3 && r.num_global == 1);
  CHECK_THROWS(ValueError, gpt_config_from_json(Json::parse(std::string(base) + R"(, "attention": "linformer"})")));
  CHECK_THROWS(ValueError, gpt_config_from_json(Json::parse(std::string(base) + R"(, "attention": 3})")));
  CHECK_THROWS(ValueError, gpt_config_from_json(Json::parse(std::string(base) + R"(, "num_features": 0})")));
  BERTConfig b = bert_config_from_json(Json::parse(
      R"({"vocab_size": 5, "max_position_embeddings": 6, "type_vocab_size": 1, "n_layer": 1, "n_head": 2,
          "hidden_size": 4, "intermediate_size": 8, "attention": "linformer", "linformer_k": 2})"));
  CHECK(b.attention == "linformer" && b.linformer_k == 2);
  BERT model(b);
  bool found = false;
  for (const auto& p : model.named_parameters())
    found = found || (p.first == "encoder.layers.0.self_attn.linformer_e" && p.second->value.shape() == Shape({2, 6}));
  CHECK(found);
}

CF_TEST(sliding_window_kv_cache_keeps_only_the_window) {
  AttentionVariant var;
  var.kind = AttentionKind::SlidingWindow;
  var.window = 3;
  var.num_global = 2;
  MultiheadAttention mha(8, 2, 0.0f, true, var);
  mha.eval();
  const int64_t T = 20;
  Tensor x = Tensor::empty({1, T, 8});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = rng_uniform(9, static_cast<uint64_t>(i)) - 0.5f;
  AttentionMask causal;
  causal.is_causal = true;
  const Tensor full = mha.forward_self(x, causal);
  KVCache cache;
  Tensor first = Tensor::empty({1, 5, 8});
  std::copy(x.data(), x.data() + 5 * 8, first.data());
  Tensor y = mha.forward_cached(first, cache, 64);
  CHECK(cache.capacity() == 2 + 3 + 1);
  double err = 0;
  for (int64_t i = 0; i < 5 * 8; ++i) err = std::max(err, std::fabs(double(y.data()[i]) - full.data()[i]));
  for (int64_t t = 5; t < T; ++t) {
    Tensor step = Tensor::empty({1, 1, 8});
    std::copy(x.data() + t * 8, x.data() + (t + 1) * 8, step.data());
    y = mha.forward_cached(step, cache, 64);
    for (int64_t e = 0; e < 8; ++e) err = std::max(err, std::fabs(double(y.data()[e]) - full.data()[t * 8 + e]));
  }
  CHECK(err < 1e-5);
  CHECK(cache.len == T && cache.capacity() == 6);
}

CF_TEST_MAIN()
