#include "cpuformer/models/vit.hpp"

#include <algorithm>
#include <string>

#include "cpuformer/error.hpp"
#include "cpuformer/ops/cross_entropy.hpp"
#include "cpuformer/ops/linear.hpp"
#include "cpuformer/ops/patches.hpp"

namespace cpuformer {

void ViTConfig::validate() const {
  CF_CHECK_VALUE(image_size >= 1, "ViTConfig.image_size must be >= 1, got ", image_size);
  CF_CHECK_VALUE(patch_size >= 1, "ViTConfig.patch_size must be >= 1, got ", patch_size);
  CF_CHECK_VALUE(image_size % patch_size == 0, "ViTConfig: image_size (", image_size,
                 ") must be divisible by patch_size (", patch_size, ")");
  CF_CHECK_VALUE(num_channels >= 1, "ViTConfig.num_channels must be >= 1, got ", num_channels);
  CF_CHECK_VALUE(num_classes >= 1, "ViTConfig.num_classes must be >= 1, got ", num_classes);
  check_encoder_config("ViTConfig", n_layer, n_head, hidden_size, intermediate_size, dropout, layer_norm_eps,
                       activation);
}

namespace {
TransformerLayerOptions layer_options(const ViTConfig& c) {
  TransformerLayerOptions o;
  o.d_model = c.hidden_size;
  o.nhead = c.n_head;
  o.dim_feedforward = c.intermediate_size;
  o.dropout = c.dropout;
  o.activation = c.activation;
  o.layer_norm_eps = c.layer_norm_eps;
  o.norm_first = true;
  return o;
}
}  // namespace

ViT::ViT(const ViTConfig& cfg)
    : cfg_(validated_stack(cfg, "ViTConfig.n_layer", layer_options)),
      projection_(cfg.num_channels * cfg.patch_size * cfg.patch_size, cfg.hidden_size),
      dropout_(cfg.dropout),
      encoder_(layer_options(cfg), cfg.n_layer, /*final_norm=*/false),
      layernorm_(cfg.hidden_size, cfg.layer_norm_eps),
      classifier_(cfg.hidden_size, cfg.num_classes) {
  cls_token_ = &register_parameter("embeddings.cls_token", {1, 1, cfg.hidden_size});
  position_embeddings_ =
      &register_parameter("embeddings.position_embeddings", {1, 1 + cfg.num_patches(), cfg.hidden_size});
  register_module("embeddings.patch_embeddings.projection", &projection_);
  register_module("embeddings.dropout", &dropout_);  // no parameters; follows train()/eval()
  register_module("encoder", &encoder_);
  register_module("layernorm", &layernorm_);
  register_module("classifier", &classifier_);
  // As BERT/ViT: matrices and the CLS/position embeddings ~ N(0, 0.02),
  // biases 0, LayerNorm weights 1 (the only 1-d non-bias parameters).
  for (auto& p : named_parameters()) {
    const std::string& n = p.first;
    Tensor& v = p.second->value;
    if (n.size() >= 4 && n.compare(n.size() - 4, 4, "bias") == 0)
      v.zero();
    else if (v.dim() >= 2)
      init_normal(v, 0.0f, 0.02f);
  }
}

Tensor ViT::forward(const float* images, int64_t B, int64_t C, int64_t Hi, int64_t Wi) {
  CF_CHECK_VALUE(B >= 1, "images: expected a non-empty batch, got batch size ", B);
  CF_CHECK_VALUE(C == cfg_.num_channels, "images: expected ", cfg_.num_channels, " channels (num_channels), got ", C);
  CF_CHECK_VALUE(Hi == cfg_.image_size && Wi == cfg_.image_size, "images: expected ", cfg_.image_size, "x",
                 cfg_.image_size, " pixels (image_size), got ", Hi, "x", Wi);
  have_forward_ = have_loss_ = false;
  const int64_t P = cfg_.patch_size, Np = cfg_.num_patches(), K = C * P * P, H = cfg_.hidden_size, Tt = 1 + Np;
  patches_ = Tensor::empty({B, Np, K});
  patches_forward(patches_.data(), images, B, C, Hi, Wi, P);
  Tensor emb = Tensor::empty({B, Np, H});
  weight_linear(emb.data(), patches_.data(), projection_.weight(), projection_.bias()->value.data(), B * Np);
  proj_dtype_ = autocast_dtype();
  // x[b, 0] = cls + pos[0]; x[b, 1+n] = emb[b, n] + pos[1+n]                  [B, 1+Np, H]
  Tensor x = Tensor::empty({B, Tt, H});
  const float* cls = cls_token_->value.data();
  const float* pos = position_embeddings_->value.data();
  const float* e = emb.data();
  float* xd = x.data();
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < B * Tt; ++bt) {
    const int64_t b = bt / Tt, t = bt % Tt;
    const float* src = t == 0 ? cls : e + (b * Np + t - 1) * H;
    for (int64_t c = 0; c < H; ++c) xd[bt * H + c] = src[c] + pos[t * H + c];
  }
  const Tensor h = encoder_.forward(dropout_.forward(x));
  Tensor cls_h = Tensor::empty({B, H});  // h[:, 0]
  for (int64_t b = 0; b < B; ++b) std::copy(h.data() + b * Tt * H, h.data() + b * Tt * H + H, cls_h.data() + b * H);
  logits_ = classifier_.forward(layernorm_.forward(cls_h));
  B_ = B;
  have_forward_ = true;
  return logits_;
}

float ViT::loss(const float* images, const int64_t* labels, int64_t B, int64_t C, int64_t Hi, int64_t Wi) {
  for (int64_t i = 0; i < B; ++i)
    CF_CHECK_INDEX(labels[i] == -100 || (labels[i] >= 0 && labels[i] < cfg_.num_classes), "labels: value ",
                   labels[i], " at position ", i, " is out of range [0, ", cfg_.num_classes, ") (or -100)");
  forward(images, B, C, Hi, Wi);
  labels_.assign(labels, labels + B);
  const float l = cross_entropy_forward(logits_.data(), labels, B, cfg_.num_classes, -100, 0.0f);
  have_loss_ = true;
  return l;
}

void ViT::backward() {
  check_trainable("ViT.backward");
  CF_CHECK_STATE(have_loss_, "ViT.backward() needs a loss: call loss(images, labels) first");
  Tensor dlogits = Tensor::zeros(logits_.shape());
  cross_entropy_backward(dlogits.data(), logits_.data(), labels_.data(), B_, cfg_.num_classes, -100, 0.0f);
  backward_logits(dlogits);
}

void ViT::backward_logits(const Tensor& dlogits) {
  check_trainable("ViT.backward");
  CF_CHECK_STATE(have_forward_, "ViT.backward_logits() needs a forward pass first");
  CF_CHECK_VALUE(dlogits.shape() == Shape({B_, cfg_.num_classes}), "grad_logits: expected shape ",
                 shape_str({B_, cfg_.num_classes}), ", got ", shape_str(dlogits.shape()));
  const int64_t Np = cfg_.num_patches(), Tt = 1 + Np, H = cfg_.hidden_size, B = B_;
  const int64_t K = projection_.in_features();
  const Tensor dcls = layernorm_.backward(classifier_.backward(dlogits));  // [B, H]
  Tensor dh = Tensor::zeros({B, Tt, H});
  for (int64_t b = 0; b < B; ++b) std::copy(dcls.data() + b * H, dcls.data() + (b + 1) * H, dh.data() + b * Tt * H);
  const Tensor dx = dropout_.backward(encoder_.backward(dh));  // [B, 1+Np, H]
  // CLS and position gradients: sums over the batch.
  const float* d = dx.data();
  float* dcls_tok = cls_token_->grad_data();
  float* dpos = position_embeddings_->grad_data();
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < Tt; ++t)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < H; ++c) dpos[t * H + c] += d[(b * Tt + t) * H + c];
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < H; ++c) dcls_tok[c] += d[b * Tt * H + c];
  // Patch projection: demb = dx[:, 1:] (the image gradient is not needed).
  Tensor demb = Tensor::empty({B, Np, H});
  for (int64_t b = 0; b < B; ++b)
    std::copy(d + (b * Tt + 1) * H, d + (b + 1) * Tt * H, demb.data() + b * Np * H);
  linear_backward(nullptr, projection_.weight().grad_data(), projection_.bias()->grad_data(), demb.data(),
                  patches_.data(), projection_.weight().value.data(), B * Np, K, H, proj_dtype_);
}

}  // namespace cpuformer
