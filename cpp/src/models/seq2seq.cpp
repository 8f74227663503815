#include "cpuformer/models/seq2seq.hpp"
#include "cpuformer/runtime/threads.hpp"

#include <cmath>

#include "cpuformer/error.hpp"
#include "cpuformer/ops/cross_entropy.hpp"
#include "cpuformer/ops/embedding.hpp"

namespace cpuformer {

void Seq2SeqConfig::validate() const {
  CF_CHECK_VALUE(src_vocab_size >= 1, "Seq2SeqConfig.src_vocab_size must be >= 1, got ", src_vocab_size);
  CF_CHECK_VALUE(tgt_vocab_size >= 1, "Seq2SeqConfig.tgt_vocab_size must be >= 1, got ", tgt_vocab_size);
  CF_CHECK_VALUE(max_len >= 1, "Seq2SeqConfig.max_len must be >= 1, got ", max_len);
  CF_CHECK_VALUE(d_model >= 1 && nhead >= 1 && d_model % nhead == 0, "Seq2SeqConfig: d_model (", d_model,
                 ") must be a positive multiple of nhead (", nhead, ")");
}

namespace {
TransformerLayerOptions layer_opts(const Seq2SeqConfig& c);

// The config's own checks, then whether its layer stacks fit in memory.
const Seq2SeqConfig& validated(const Seq2SeqConfig& c) {
  c.validate();
  check_layer_stack("Seq2SeqConfig.num_encoder_layers", c.num_encoder_layers, layer_opts(c));
  check_layer_stack("Seq2SeqConfig.num_decoder_layers", c.num_decoder_layers, layer_opts(c), true);
  return c;
}
TransformerLayerOptions layer_opts(const Seq2SeqConfig& c) {
  TransformerLayerOptions o;
  o.d_model = c.d_model;
  o.nhead = c.nhead;
  o.dim_feedforward = c.dim_feedforward;
  o.dropout = c.dropout;
  o.activation = "relu";
  o.norm_first = false;
  return o;
}
AttentionMask padding_mask(const std::vector<uint8_t>& pad) {
  AttentionMask m;
  m.key_padding = pad;
  return m;
}
}  // namespace

Seq2Seq::Seq2Seq(const Seq2SeqConfig& cfg)
    : cfg_(validated(cfg)),
      src_embed_(cfg.src_vocab_size, cfg.d_model),
      tgt_embed_(cfg.tgt_vocab_size, cfg.d_model),
      transformer_(layer_opts(cfg), cfg.num_encoder_layers, cfg.num_decoder_layers),
      generator_(cfg.d_model, cfg.tgt_vocab_size),
      drop_src_(cfg.dropout),
      drop_tgt_(cfg.dropout) {
  register_module("src_embed", &src_embed_);
  register_module("tgt_embed", &tgt_embed_);
  register_module("transformer", &transformer_);
  register_module("generator", &generator_);
  // No parameters; registered so train()/eval() reach them.
  register_module("drop_src", &drop_src_);
  register_module("drop_tgt", &drop_tgt_);
  // Embeddings ~ N(0, 1/d) so that scaled by sqrt(d) they have unit variance.
  init_normal(src_embed_.weight().value, 0.0f, 1.0f / std::sqrt(static_cast<float>(cfg.d_model)));
  init_normal(tgt_embed_.weight().value, 0.0f, 1.0f / std::sqrt(static_cast<float>(cfg.d_model)));
  pe_ = Tensor::empty({cfg.max_len, cfg.d_model});
  sinusoidal_positional_encoding(pe_.data(), cfg.max_len, cfg.d_model);
}

void Seq2Seq::check_ids(const int64_t* ids, int64_t n, int64_t V, const char* what) const {
  for (int64_t i = 0; i < n; ++i)
    CF_CHECK_INDEX(ids[i] >= 0 && ids[i] < V, what, ": token id ", ids[i], " at flat position ", i,
                   " is out of range [0, ", V, ")");
}

Tensor Seq2Seq::embed(Embedding& emb, const int64_t* ids, int64_t B, int64_t T, bool save) {
  const int64_t d = cfg_.d_model;
  Tensor x;
  if (save) {
    x = emb.forward(ids, {B, T});
  } else {
    x = Tensor::empty({B, T, d});
    weight_lookup(x.data(), emb.weight(), ids, B * T);
  }
  const float scale = std::sqrt(static_cast<float>(d));
  float* xd = x.data();
  const float* pe = pe_.data();
#pragma omp parallel for schedule(static) if (B * T * d >= kParallelMinWork)
  for (int64_t bt = 0; bt < B * T; ++bt)
    for (int64_t c = 0; c < d; ++c) xd[bt * d + c] = xd[bt * d + c] * scale + pe[(bt % T) * d + c];
  return x;
}

void Seq2Seq::embed_backward(Embedding& emb, const Tensor& dx) {
  Tensor scaled = dx.clone();
  const float scale = std::sqrt(static_cast<float>(cfg_.d_model));
  for (int64_t i = 0; i < scaled.numel(); ++i) scaled.data()[i] *= scale;
  emb.backward(scaled);
}

Tensor Seq2Seq::forward(const int64_t* src, int64_t B, int64_t S, const int64_t* tgt_in, int64_t T,
                        const std::vector<uint8_t>& src_padding) {
  CF_CHECK_VALUE(B >= 1 && S >= 1 && T >= 1, "src/tgt: expected non-empty [batch, seq] arrays");
  CF_CHECK_VALUE(S <= cfg_.max_len, "src: length ", S, " exceeds max_len ", cfg_.max_len);
  CF_CHECK_VALUE(T <= cfg_.max_len, "tgt: length ", T, " exceeds max_len ", cfg_.max_len);
  CF_CHECK_VALUE(src_padding.empty() || static_cast<int64_t>(src_padding.size()) == B * S,
                 "src_key_padding_mask: expected shape [", B, ", ", S, "]");
  check_ids(src, B * S, cfg_.src_vocab_size, "src");
  check_ids(tgt_in, B * T, cfg_.tgt_vocab_size, "tgt");
  have_loss_ = false;
  const Tensor xs = drop_src_.forward(embed(src_embed_, src, B, S, true));
  const Tensor xt = drop_tgt_.forward(embed(tgt_embed_, tgt_in, B, T, true));
  AttentionMask causal;
  causal.is_causal = true;
  const AttentionMask pad = padding_mask(src_padding);
  const Tensor h = transformer_.forward(xs, xt, pad, causal, pad);
  logits_ = generator_.forward(h);
  B_ = B;
  T_ = T;
  return logits_;
}

float Seq2Seq::loss(const int64_t* src, int64_t B, int64_t S, const int64_t* tgt_in, const int64_t* tgt_out,
                    int64_t T, const std::vector<uint8_t>& src_padding) {
  for (int64_t i = 0; i < B * T; ++i)
    CF_CHECK_INDEX(tgt_out[i] == -100 || (tgt_out[i] >= 0 && tgt_out[i] < cfg_.tgt_vocab_size), "tgt_out: value ",
                   tgt_out[i], " at flat position ", i, " is out of range [0, ", cfg_.tgt_vocab_size, ") (or -100)");
  forward(src, B, S, tgt_in, T, src_padding);
  targets_.assign(tgt_out, tgt_out + B * T);
  const float l = cross_entropy_forward(logits_.data(), tgt_out, B * T, cfg_.tgt_vocab_size, -100, 0.0f);
  have_loss_ = true;
  return l;
}

void Seq2Seq::backward() {
  check_trainable("Seq2Seq.backward");
  CF_CHECK_STATE(have_loss_, "Seq2Seq.backward() needs a loss: call loss(src, tgt_in, tgt_out) first");
  Tensor dlogits = Tensor::empty(logits_.shape());
  cross_entropy_backward(dlogits.data(), logits_.data(), targets_.data(), B_ * T_, cfg_.tgt_vocab_size, -100, 0.0f,
                         1.0f, /*accumulate=*/false);
  const std::array<Tensor, 2> g = transformer_.backward(generator_.backward(dlogits));
  embed_backward(src_embed_, drop_src_.backward(g[0]));
  embed_backward(tgt_embed_, drop_tgt_.backward(g[1]));
}

}  // namespace cpuformer
