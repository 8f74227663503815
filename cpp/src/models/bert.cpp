#include "cpuformer/models/bert.hpp"

#include <algorithm>
#include <string>

#include "cpuformer/error.hpp"
#include "cpuformer/ops/activations.hpp"
#include "cpuformer/ops/cross_entropy.hpp"
#include "cpuformer/ops/linear.hpp"

namespace cpuformer {

void BERTConfig::validate() const {
  CF_CHECK_VALUE(vocab_size >= 1, "BERTConfig.vocab_size must be >= 1, got ", vocab_size);
  CF_CHECK_VALUE(max_position_embeddings >= 1, "BERTConfig.max_position_embeddings must be >= 1, got ",
                 max_position_embeddings);
  CF_CHECK_VALUE(type_vocab_size >= 1, "BERTConfig.type_vocab_size must be >= 1, got ", type_vocab_size);
  check_encoder_config("BERTConfig", n_layer, n_head, hidden_size, intermediate_size, dropout, layer_norm_eps,
                       activation);
  make_attention_variant(attention, attention_window, num_global, num_features, linformer_k,
                         max_position_embeddings, bigbird());
}

namespace {
TransformerLayerOptions layer_options(const BERTConfig& c) {
  TransformerLayerOptions o;
  o.d_model = c.hidden_size;
  o.nhead = c.n_head;
  o.dim_feedforward = c.intermediate_size;
  o.dropout = c.dropout;
  o.activation = c.activation;
  o.layer_norm_eps = c.layer_norm_eps;
  o.norm_first = false;
  o.attention = make_attention_variant(c.attention, c.attention_window, c.num_global, c.num_features, c.linformer_k,
                                       c.max_position_embeddings, c.bigbird());
  return o;
}

void check_range(const int64_t* ids, int64_t n, int64_t hi, const char* what, const char* bound) {
  for (int64_t i = 0; i < n; ++i)
    CF_CHECK_INDEX(ids[i] >= 0 && ids[i] < hi, what, ": id ", ids[i], " at flat position ", i,
                   " is out of range [0, ", hi, ") (", bound, ")");
}
}  // namespace

BertMLMHead::BertMLMHead(int64_t hidden, int64_t vocab, float eps, const std::string& activation)
    : dense_(hidden, hidden),
      gelu_(activation == "gelu_tanh" ? GeluApproximate::Tanh : GeluApproximate::None),
      use_gelu_(activation != "relu"),
      layer_norm_(hidden, eps) {
  register_module("dense", &dense_);
  register_module("LayerNorm", &layer_norm_);
  bias_ = &register_parameter("bias", {vocab});  // zeros
}

Tensor BertMLMHead::forward(const Tensor& h) {
  const Tensor z = dense_.forward(h);
  return layer_norm_.forward(use_gelu_ ? gelu_.forward(z) : relu_.forward(z));
}

Tensor BertMLMHead::backward(const Tensor& dout) {
  const Tensor d = layer_norm_.backward(dout);
  return dense_.backward(use_gelu_ ? gelu_.backward(d) : relu_.backward(d));
}

BERT::BERT(const BERTConfig& cfg)
    : cfg_(validated_stack(cfg, "BERTConfig.n_layer", layer_options)),
      word_embeddings_(cfg.vocab_size, cfg.hidden_size),
      position_embeddings_(cfg.max_position_embeddings, cfg.hidden_size),
      token_type_embeddings_(cfg.type_vocab_size, cfg.hidden_size),
      emb_layer_norm_(cfg.hidden_size, cfg.layer_norm_eps),
      emb_dropout_(cfg.dropout),
      encoder_(layer_options(cfg), cfg.n_layer, /*final_norm=*/false),
      mlm_(cfg.hidden_size, cfg.vocab_size, cfg.layer_norm_eps, cfg.activation),
      pooler_dense_(cfg.hidden_size, cfg.hidden_size) {
  register_module("embeddings.word_embeddings", &word_embeddings_);
  register_module("embeddings.position_embeddings", &position_embeddings_);
  register_module("embeddings.token_type_embeddings", &token_type_embeddings_);
  register_module("embeddings.LayerNorm", &emb_layer_norm_);
  register_module("embeddings.dropout", &emb_dropout_);  // no parameters; follows train()/eval()
  register_module("encoder", &encoder_);
  if (cfg.mlm_head) register_module("mlm", &mlm_);
  if (cfg.pooler) register_module("pooler.dense", &pooler_dense_);
  // BERT initialisation: every matrix (embeddings, projections) ~ N(0, 0.02),
  // every bias 0, LayerNorm weights 1 (the only 1-d non-bias parameters).
  for (auto& p : named_parameters()) {
    const std::string& n = p.first;
    Tensor& v = p.second->value;
    if (n.size() >= 4 && n.compare(n.size() - 4, 4, "bias") == 0)
      v.zero();
    else if (v.dim() >= 2)
      init_normal(v, 0.0f, 0.02f);
  }
}

void BERT::check_inputs(const int64_t* input_ids, const int64_t* token_type_ids, int64_t B, int64_t T,
                        const std::vector<uint8_t>& padding) const {
  CF_CHECK_VALUE(B >= 1 && T >= 1, "input_ids: expected a non-empty [batch, seq] array, got [", B, ", ", T, "]");
  CF_CHECK_VALUE(T <= cfg_.max_position_embeddings, "input_ids: sequence length ", T,
                 " exceeds max_position_embeddings ", cfg_.max_position_embeddings);
  CF_CHECK_VALUE(padding.empty() || static_cast<int64_t>(padding.size()) == B * T,
                 "attention_mask: expected shape [", B, ", ", T, "], got ", padding.size(), " elements");
  check_range(input_ids, B * T, cfg_.vocab_size, "input_ids", "vocab_size");
  if (token_type_ids) check_range(token_type_ids, B * T, cfg_.type_vocab_size, "token_type_ids", "type_vocab_size");
}

Tensor BERT::forward(const int64_t* input_ids, const int64_t* token_type_ids, int64_t B, int64_t T,
                     const std::vector<uint8_t>& padding) {
  check_inputs(input_ids, token_type_ids, B, T, padding);
  have_forward_ = have_head_ = have_loss_ = have_pooled_ = false;
  const int64_t N = B * T, H = cfg_.hidden_size;
  std::vector<int64_t> pos(static_cast<size_t>(N)), types;
  for (int64_t i = 0; i < N; ++i) pos[i] = i % T;
  if (!token_type_ids) {
    types.assign(static_cast<size_t>(N), 0);
    token_type_ids = types.data();
  }
  // x = word[ids] + pos[t] + type[tt]                                      [B, T, H]
  Tensor x = word_embeddings_.forward(input_ids, {B, T});
  const Tensor pe = position_embeddings_.forward(pos.data(), {B, T});
  const Tensor te = token_type_embeddings_.forward(token_type_ids, {B, T});
  residual_forward(x.data(), x.data(), pe.data(), N * H);
  residual_forward(x.data(), x.data(), te.data(), N * H);
  x = emb_dropout_.forward(emb_layer_norm_.forward(x));
  AttentionMask mask;
  mask.key_padding = padding;
  Tensor h = encoder_.forward(x, mask);
  B_ = B;
  T_ = T;
  have_forward_ = true;
  return h;
}

Tensor BERT::head_forward(const Tensor& h) {
  const int64_t N = B_ * T_, V = cfg_.vocab_size;
  mlm_y_ = mlm_.forward(h);  // [B, T, H]
  logits_ = Tensor::empty({B_, T_, V});
  weight_linear(logits_.data(), mlm_y_.data(), word_embeddings_.weight(), mlm_.bias().value.data(), N);
  head_dtype_ = autocast_dtype();
  have_head_ = true;
  return logits_;
}

Tensor BERT::mlm_logits(const int64_t* input_ids, const int64_t* token_type_ids, int64_t B, int64_t T,
                        const std::vector<uint8_t>& padding) {
  CF_CHECK_STATE(cfg_.mlm_head, "this BERT has no MLM head (config.mlm_head is false): use forward() or "
                 "pooled_output()");
  return head_forward(forward(input_ids, token_type_ids, B, T, padding));
}

Tensor BERT::pooled_output(const int64_t* input_ids, const int64_t* token_type_ids, int64_t B, int64_t T,
                           const std::vector<uint8_t>& padding) {
  CF_CHECK_STATE(cfg_.pooler, "this BERT has no pooler (config.pooler is false): use forward() and pool the "
                 "hidden states yourself");
  const Tensor h = forward(input_ids, token_type_ids, B, T, padding);
  const int64_t H = cfg_.hidden_size;
  Tensor cls = Tensor::empty({B, H});  // h[:, 0]
  for (int64_t b = 0; b < B; ++b) std::copy(h.data() + b * T * H, h.data() + b * T * H + H, cls.data() + b * H);
  pooled_ = pooler_dense_.forward(cls);
  tanh_forward(pooled_.data(), pooled_.data(), B * H);
  have_pooled_ = true;
  return pooled_;
}

float BERT::mlm_loss(const int64_t* input_ids, const int64_t* labels, const int64_t* token_type_ids, int64_t B,
                     int64_t T, const std::vector<uint8_t>& padding) {
  for (int64_t i = 0; i < B * T; ++i)
    CF_CHECK_INDEX(labels[i] == -100 || (labels[i] >= 0 && labels[i] < cfg_.vocab_size), "labels: value ",
                   labels[i], " at flat position ", i, " is out of range [0, ", cfg_.vocab_size, ") (or -100)");
  mlm_logits(input_ids, token_type_ids, B, T, padding);
  labels_.assign(labels, labels + B * T);
  const float l = cross_entropy_forward(logits_.data(), labels, B * T, cfg_.vocab_size, -100, 0.0f);
  have_loss_ = true;
  return l;
}

void BERT::backward() {
  check_trainable("BERT.backward");
  CF_CHECK_STATE(have_loss_, "BERT.backward() needs a loss: call mlm_loss(input_ids, labels) first");
  Tensor dlogits = Tensor::empty(logits_.shape());
  cross_entropy_backward(dlogits.data(), logits_.data(), labels_.data(), B_ * T_, cfg_.vocab_size, -100, 0.0f, 1.0f,
                         /*accumulate=*/false);
  backward_logits(dlogits);
}

void BERT::backward_logits(const Tensor& dlogits) {
  check_trainable("BERT.backward");
  CF_CHECK_STATE(have_head_, "BERT.backward_logits() needs the logits of mlm_logits() or mlm_loss() first");
  CF_CHECK_VALUE(dlogits.shape() == Shape({B_, T_, cfg_.vocab_size}), "grad_logits: expected shape ",
                 shape_str({B_, T_, cfg_.vocab_size}), ", got ", shape_str(dlogits.shape()));
  const int64_t N = B_ * T_, H = cfg_.hidden_size, V = cfg_.vocab_size;
  Tensor dy = Tensor::empty({B_, T_, H});
  linear_backward(dy.data(), word_embeddings_.weight().grad_data(), mlm_.bias().grad_data(), dlogits.data(),
                  mlm_y_.data(), word_embeddings_.weight().value.data(), N, H, V, head_dtype_,
                  /*accumulate_dinp=*/false);
  backward_hidden(mlm_.backward(dy));
}

void BERT::backward_pooled(const Tensor& dpooled) {
  check_trainable("BERT.backward");
  CF_CHECK_STATE(have_pooled_, "BERT.backward_pooled() needs the output of pooled_output() first");
  const int64_t H = cfg_.hidden_size;
  CF_CHECK_VALUE(dpooled.shape() == Shape({B_, H}), "grad_pooled: expected shape ", shape_str({B_, H}), ", got ",
                 shape_str(dpooled.shape()));
  Tensor dz = Tensor::zeros({B_, H});
  tanh_backward(dz.data(), dpooled.data(), pooled_.data(), B_ * H);
  const Tensor dcls = pooler_dense_.backward(dz);
  Tensor dh = Tensor::zeros({B_, T_, H});
  for (int64_t b = 0; b < B_; ++b)
    std::copy(dcls.data() + b * H, dcls.data() + (b + 1) * H, dh.data() + b * T_ * H);
  backward_hidden(dh);
}

void BERT::backward_hidden(const Tensor& dhidden) {
  check_trainable("BERT.backward");
  CF_CHECK_STATE(have_forward_, "BERT.backward_hidden() needs a forward pass first");
  CF_CHECK_VALUE(dhidden.shape() == Shape({B_, T_, cfg_.hidden_size}), "grad_hidden: expected shape ",
                 shape_str({B_, T_, cfg_.hidden_size}), ", got ", shape_str(dhidden.shape()));
  Tensor d = emb_layer_norm_.backward(emb_dropout_.backward(encoder_.backward(dhidden)));
  word_embeddings_.backward(d);
  position_embeddings_.backward(d);
  token_type_embeddings_.backward(d);
}

}  // namespace cpuformer
