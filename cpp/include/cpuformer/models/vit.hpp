// ViT: the Vision Transformer (image classification).
//   p = patches(img)                                     [B, Np, K]   K = C·P·P, ops/patches.hpp
//   x = drop([cls; p·Wᵀ + b] + pos)                      [B, 1+Np, H]
//   h = layer_l(x) for l < n_layer                       pre-LN, exact-erf GELU, no mask
//   logits = classifier(LN(h[:, 0]))                     [B, num_classes]
// Parameter names:
//   embeddings.cls_token [1, 1, H], embeddings.position_embeddings [1, 1+Np, H],
//   embeddings.patch_embeddings.projection.{weight [H, K], bias}, encoder.layers.<l>.<TransformerEncoderLayer
//   names>, layernorm.{weight,bias}, classifier.{weight,bias}.
// From Hugging Face ViTForImageClassification: vit.embeddings.* keep their names
// (the conv weight [H, C, P, P] reshapes to [H, K]); in each layer
// attention.attention.{query,key,value} stack into self_attn.in_proj_*,
// attention.output.dense -> self_attn.out_proj, layernorm_before -> norm1,
// layernorm_after -> norm2, intermediate.dense -> linear1, output.dense -> linear2;
// vit.layernorm -> layernorm; classifier keeps its name.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cpuformer/nn/activation.hpp"
#include "cpuformer/nn/layer_norm.hpp"
#include "cpuformer/nn/linear.hpp"
#include "cpuformer/nn/transformer.hpp"

namespace cpuformer {

struct ViTConfig {
  int64_t image_size = 224;  // square images
  int64_t patch_size = 16;   // must divide image_size
  int64_t num_channels = 3;
  int64_t num_classes = 0;
  int64_t hidden_size = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t intermediate_size = 0;
  float dropout = 0.0f;  // embeddings, attention probabilities, residual branches and, as torch's
                         // TransformerEncoderLayer (not Hugging Face), after the feed-forward activation
  float layer_norm_eps = 1e-12f;
  std::string activation = "gelu";  // feed-forward (Hugging Face hidden_act): "gelu" (exact erf), "gelu_tanh", "relu"
  void validate() const;
  int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
};

class ViT : public Module {
 public:
  explicit ViT(const ViTConfig& cfg);
  const ViTConfig& config() const { return cfg_; }

  // images [B, C, Hi, Wi] (C = num_channels, Hi = Wi = image_size) -> logits
  // [B, num_classes]. Caches activations for backward_logits().
  Tensor forward(const float* images, int64_t B, int64_t C, int64_t Hi, int64_t Wi);
  // Mean cross-entropy of forward(images) against labels [B] (-100 ignored).
  float loss(const float* images, const int64_t* labels, int64_t B, int64_t C, int64_t Hi, int64_t Wi);
  // Backpropagates the last loss(). StateError without one.
  void backward();
  // Backpropagates dlogits [B, num_classes] through the last forward (accumulates).
  void backward_logits(const Tensor& dlogits);

 private:
  ViTConfig cfg_;
  Parameter* cls_token_;            // [1, 1, H]
  Parameter* position_embeddings_;  // [1, 1+Np, H]
  Linear projection_;               // K -> H
  Dropout dropout_;
  TransformerEncoder encoder_;
  LayerNorm layernorm_;
  Linear classifier_;

  // Saved by forward / loss.
  int64_t B_ = 0;
  Tensor patches_;  // [B, Np, K]
  DType proj_dtype_ = DType::Float32;  // autocast precision of the last patch projection
  Tensor logits_;   // [B, num_classes]
  std::vector<int64_t> labels_;
  bool have_forward_ = false, have_loss_ = false;
};

}  // namespace cpuformer
