// BERT and ViT: the patch op against its scalar reference and as an exact
// permutation, and model losses' parameter gradients against central finite
// differences (float32 forward, double differences).
#include <cmath>
#include <string>
#include <vector>

#include "check.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/models/bert.hpp"
#include "cpuformer/models/vit.hpp"
#include "cpuformer/ops/patches.hpp"
#include "cpuformer/runtime/rng.hpp"
#include "fixtures.hpp"

using namespace cpuformer;
using cftest::bert_config;
using cftest::fill_matrices_uniform;
using cftest::uniform;
using cftest::vit_config;

namespace {

Parameter& param(Module& m, const std::string& name) {
  for (auto& p : m.named_parameters())
    if (p.first == name) return *p.second;
  throw ValueError("no parameter " + name);
}

// Compares the analytic gradient of `loss` with central differences at a few
// coordinates of each named parameter. Returns the worst relative error.
template <class Loss>
double fd_check(Module& m, Loss loss, const std::vector<std::string>& names, int per_param, double eps) {
  double worst = 0.0;
  uint64_t pick = 0;
  for (const std::string& name : names) {
    Parameter& p = param(m, name);
    for (int k = 0; k < per_param; ++k) {
      const int64_t i = static_cast<int64_t>(rng_bits(99, pick++) % static_cast<uint64_t>(p.value.numel()));
      float* v = p.value.data() + i;
      const float old = *v;
      *v = old + static_cast<float>(eps);
      const double lp = loss();
      *v = old - static_cast<float>(eps);
      const double lm = loss();
      *v = old;
      const double num = (lp - lm) / (2.0 * eps), ana = p.grad_data()[i];
      const double err = std::fabs(num - ana) / std::max(1e-2, std::fabs(num));
      if (err > 3e-2) std::printf("  %s[%lld]: analytic %.6g vs numeric %.6g\n", name.c_str(), (long long)i, ana, num);
      worst = std::max(worst, err);
    }
  }
  return worst;
}

}  // namespace

CF_TEST(patches_match_reference_and_are_a_permutation) {
  const int64_t B = 2, C = 3, Hi = 6, Wi = 8, P = 2, Np = (Hi / P) * (Wi / P), K = C * P * P;
  const std::vector<float> img = uniform(B * C * Hi * Wi, 1);
  std::vector<float> out(B * Np * K, -7.0f), ref(B * Np * K, -8.0f);
  patches_forward(out.data(), img.data(), B, C, Hi, Wi, P);
  patches_forward_reference(ref.data(), img.data(), B, C, Hi, Wi, P);
  for (size_t i = 0; i < out.size(); ++i) CHECK(out[i] == ref[i]);
  // Spot check of the documented layout: batch 1, patch (gy=2, gx=1), channel 2, pixel (1, 0).
  CHECK(out[(1 * Np + 2 * (Wi / P) + 1) * K + (2 * P + 1) * P + 0] ==
        img[((1 * C + 2) * Hi + 2 * P + 1) * Wi + 1 * P + 0]);
  // Backward is the transpose: <patches(x), g> == <x, patches_backward(g)>, and it accumulates.
  const std::vector<float> g = uniform(B * Np * K, 2);
  std::vector<float> dimg(img.size(), 1.0f);
  patches_backward(dimg.data(), g.data(), B, C, Hi, Wi, P);
  double lhs = 0.0, rhs = 0.0;
  for (size_t i = 0; i < out.size(); ++i) lhs += static_cast<double>(out[i]) * g[i];
  for (size_t i = 0; i < img.size(); ++i) rhs += static_cast<double>(img[i]) * (dimg[i] - 1.0f);
  CHECK_NEAR(lhs, rhs, 1e-4);
  std::vector<float> back(img.size(), 0.0f);
  patches_backward(back.data(), out.data(), B, C, Hi, Wi, P);
  for (size_t i = 0; i < img.size(); ++i) CHECK(back[i] == img[i]);
}

CF_TEST(bert_forward_loss_backward_and_finite_differences) {
  manual_seed(5);
  BERTConfig cfg = bert_config(13, 8, 12);
  cfg.dropout = 0.0f;
  BERT m(cfg);
  // Larger weights than BERT's 0.02 init so every path carries a visible gradient.
  fill_matrices_uniform(m, 7, 0.5f);
  const int64_t B = 2, T = 6;
  const std::vector<int64_t> ids = {1, 5, 7, 3, 9, 0, 1, 12, 4, 4, 0, 0};
  const std::vector<int64_t> types = {0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0};
  const std::vector<uint8_t> pad = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1};
  const std::vector<int64_t> labels = {-100, 5, -100, 3, 2, -100, -100, 11, -100, 6, -100, -100};
  const Tensor h = m.forward(ids.data(), types.data(), B, T, pad);
  CHECK(h.shape() == Shape({B, T, 8}));
  const Tensor logits = m.mlm_logits(ids.data(), types.data(), B, T, pad);
  CHECK(logits.shape() == Shape({B, T, 13}));
  auto loss = [&] { return static_cast<double>(m.mlm_loss(ids.data(), labels.data(), types.data(), B, T, pad)); };
  const double l0 = loss();
  CHECK(std::isfinite(l0) && l0 > 0.0);
  m.zero_grad();
  m.backward();
  const double worst = fd_check(m, loss,
                                {"embeddings.word_embeddings.weight", "embeddings.token_type_embeddings.weight",
                                 "embeddings.position_embeddings.weight", "embeddings.LayerNorm.weight",
                                 "encoder.layers.0.self_attn.in_proj_weight", "encoder.layers.1.linear1.weight",
                                 "mlm.dense.weight", "mlm.LayerNorm.bias", "mlm.bias"},
                                4, 1e-2);
  std::printf("  BERT finite differences: worst relative error %.3g\n", worst);
  CHECK(worst < 3e-2);
  // Errors.
  BERT fresh(cfg);
  CHECK_THROWS(StateError, fresh.backward());
  const std::vector<int64_t> bad = {1, 13};
  CHECK_THROWS(IndexError, m.forward(bad.data(), nullptr, 1, 2));
  CHECK_THROWS(IndexError, m.forward(ids.data(), labels.data(), B, T));  // -100 as a token type
  CHECK_THROWS(ValueError, m.forward(std::vector<int64_t>(9, 1).data(), nullptr, 1, 9));
}

CF_TEST(bert_pooler_without_mlm_head_finite_differences) {
  manual_seed(8);
  BERTConfig cfg = bert_config(11, 6, 12);
  cfg.n_layer = 1;
  cfg.dropout = 0.0f;
  cfg.activation = "relu";
  cfg.mlm_head = false;
  cfg.pooler = true;
  BERT m(cfg);
  bool has_mlm = false, has_pooler = false;
  for (auto& p : m.named_parameters()) {
    has_mlm = has_mlm || p.first.rfind("mlm.", 0) == 0;
    has_pooler = has_pooler || p.first == "pooler.dense.weight";
  }
  fill_matrices_uniform(m, 5, 0.5f);
  CHECK(!has_mlm && has_pooler);
  const int64_t B = 2, T = 4, H = 8;
  const std::vector<int64_t> ids = {2, 7, 1, 9, 3, 3, 10, 0};
  const std::vector<uint8_t> pad = {0, 0, 0, 0, 0, 0, 1, 1};
  const std::vector<float> g = uniform(B * H, 21);
  // loss = sum(pooled * g)
  auto loss = [&] {
    const Tensor p = m.pooled_output(ids.data(), nullptr, B, T, pad);
    double s = 0.0;
    for (int64_t i = 0; i < B * H; ++i) s += static_cast<double>(p.data()[i]) * g[i];
    return s;
  };
  const Tensor pooled = m.pooled_output(ids.data(), nullptr, B, T, pad);
  CHECK(pooled.shape() == Shape({B, H}));
  for (int64_t i = 0; i < B * H; ++i) CHECK(std::fabs(pooled.data()[i]) <= 1.0f);  // tanh
  m.zero_grad();
  Tensor dg = Tensor::empty({B, H});
  std::copy(g.begin(), g.end(), dg.data());
  m.backward_pooled(dg);
  const double worst = fd_check(m, loss,
                                {"pooler.dense.weight", "pooler.dense.bias", "encoder.layers.0.linear1.weight",
                                 "embeddings.word_embeddings.weight", "embeddings.LayerNorm.bias"},
                                4, 1e-2);
  std::printf("  BERT pooler finite differences: worst relative error %.3g\n", worst);
  CHECK(worst < 3e-2);
  CHECK_THROWS(StateError, m.mlm_logits(ids.data(), nullptr, B, T));
  BERT fresh(cfg);
  CHECK_THROWS(StateError, fresh.backward_pooled(dg));
  CHECK_THROWS(ValueError, m.backward_pooled(Tensor::zeros({B, H + 1})));
  cfg.activation = "swish";
  CHECK_THROWS(ValueError, BERT{cfg});
}

CF_TEST(vit_forward_loss_backward_and_finite_differences) {
  manual_seed(6);
  const ViTConfig cfg = vit_config(4, 2, 2, 3, 2, 12);
  ViT m(cfg);
  fill_matrices_uniform(m, 3, 0.5f);
  const int64_t B = 3;
  const std::vector<float> images = uniform(B * 2 * 4 * 4, 11);
  const std::vector<int64_t> labels = {2, 0, 1};
  const Tensor logits = m.forward(images.data(), B, 2, 4, 4);
  CHECK(logits.shape() == Shape({B, 3}));
  auto loss = [&] { return static_cast<double>(m.loss(images.data(), labels.data(), B, 2, 4, 4)); };
  CHECK(std::isfinite(loss()));
  m.zero_grad();
  m.backward();
  const double worst = fd_check(m, loss,
                                {"embeddings.cls_token", "embeddings.position_embeddings",
                                 "embeddings.patch_embeddings.projection.weight",
                                 "embeddings.patch_embeddings.projection.bias", "encoder.layers.0.norm1.weight",
                                 "encoder.layers.1.self_attn.out_proj.weight", "layernorm.weight", "classifier.bias"},
                                4, 1e-2);
  std::printf("  ViT finite differences: worst relative error %.3g\n", worst);
  CHECK(worst < 3e-2);
  ViT fresh(cfg);
  CHECK_THROWS(StateError, fresh.backward());
  CHECK_THROWS(ValueError, m.forward(images.data(), 1, 3, 4, 4));  // wrong channel count
  CHECK_THROWS(ValueError, m.forward(images.data(), 1, 2, 4, 2));  // wrong size
  const std::vector<int64_t> bad = {0, 3, 1};
  CHECK_THROWS(IndexError, m.loss(images.data(), bad.data(), B, 2, 4, 4));
  ViTConfig odd = cfg;
  odd.image_size = 5;
  CHECK_THROWS(ValueError, ViT{odd});
}


CF_TEST(absurd_layer_counts_fail_before_building) {
  // 10^9 layers would take hours to build and exhaust memory; the configs refuse them up front.
  BERTConfig b;
  b.vocab_size = 5;
  b.max_position_embeddings = 4;
  b.type_vocab_size = 1;
  b.n_layer = 1000000000;
  b.n_head = 1;
  b.hidden_size = 2;
  b.intermediate_size = 2;
  CHECK_THROWS(ValueError, BERT{b});
  ViTConfig v;
  v.image_size = 4;
  v.patch_size = 2;
  v.num_channels = 1;
  v.num_classes = 2;
  v.hidden_size = 2;
  v.n_layer = int64_t{1} << 62;  // the size estimate saturates instead of overflowing
  v.n_head = 1;
  v.intermediate_size = 2;
  CHECK_THROWS(ValueError, ViT{v});
  v.n_layer = 2;
  ViT ok(v);
  CHECK(ok.num_parameters() > 0);
}

CF_TEST_MAIN()
