// TransformerEncoderLayer / TransformerDecoderLayer ~ the torch.nn modules of
// the same names with batch_first=True: same submodule and parameter names,
// post-LN (the original paper) or pre-LN (norm_first, as GPT-2), ReLU or
// exact GELU feed-forward, dropout after attention, inside the FFN and after it.
//
//   post-LN: x = norm1(x + dropout1(self_attn(x)));  x = norm2(x + dropout2(ff(x)))
//   pre-LN:  x = x + dropout1(self_attn(norm1(x)));  x = x + dropout2(ff(norm2(x)))
//   ff(x) = linear2(dropout(act(linear1(x))))
// The decoder adds cross-attention (multihead_attn) over `memory` between the two.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "cpuformer/nn/activation.hpp"
#include "cpuformer/nn/layer_norm.hpp"
#include "cpuformer/nn/linear.hpp"
#include "cpuformer/nn/multihead_attention.hpp"

namespace cpuformer {

struct TransformerLayerOptions {
  int64_t d_model = 512;
  int64_t nhead = 8;
  int64_t dim_feedforward = 2048;
  float dropout = 0.1f;
  std::string activation = "relu";  // "relu", "gelu" (exact erf) or "gelu_tanh" (GPT-2)
  float layer_norm_eps = 1e-5f;
  bool norm_first = false;
  bool bias = true;
  AttentionVariant attention;  // self-attention of encoder layers (decoder layers: full only)
};

// Feed-forward sub-block and settings shared by both layer kinds.
class TransformerLayerBase : public Module {
 public:
  const TransformerLayerOptions& options() const { return opt_; }

 protected:
  explicit TransformerLayerBase(const TransformerLayerOptions& opt);
  // linear2(dropout(act(linear1(x))))
  Tensor ff_forward(const Tensor& x);
  Tensor ff_inference(const Tensor& x);  // no dropout, nothing saved
  Tensor ff_backward(const Tensor& dout);
  void check_input(const Tensor& x, const char* name) const;

  TransformerLayerOptions opt_;
  Linear linear1_;
  Dropout dropout_;
  Linear linear2_;
  ReLU relu_;
  GELU gelu_;
  bool use_gelu_;
};

class TransformerEncoderLayer : public TransformerLayerBase {
 public:
  explicit TransformerEncoderLayer(const TransformerLayerOptions& opt);
  // src [B, T, d_model] -> [B, T, d_model]
  Tensor forward(const Tensor& src, const AttentionMask& src_mask = {});
  Tensor backward(const Tensor& dout);  // -> dsrc
  // Causal self-attention inference over a KV cache (see
  // MultiheadAttention::forward_cached, with its optional key padding);
  // dropout off, nothing saved.
  Tensor forward_cached(const Tensor& src, KVCache& cache, int64_t capacity, const uint8_t* key_padding = nullptr);

 private:
  MultiheadAttention self_attn_;
  LayerNorm norm1_, norm2_;
  Dropout dropout1_, dropout2_;
};

class TransformerDecoderLayer : public TransformerLayerBase {
 public:
  explicit TransformerDecoderLayer(const TransformerLayerOptions& opt);
  // tgt [B, T, d_model], memory [B, S, d_model] -> [B, T, d_model]
  Tensor forward(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask = {},
                 const AttentionMask& memory_mask = {});
  std::array<Tensor, 2> backward(const Tensor& dout);  // -> {dtgt, dmemory}

  // Incremental decoding (inference: dropout off, nothing saved).
  // memory_kv: this layer's cross-attention keys/values of memory [Bm, S, d_model],
  // computed once per source (MultiheadAttention::project_kv).
  KVCache memory_kv(const Tensor& memory);
  // tgt [R, Tn, d_model]: the next Tn positions of R rows (a prefill into an
  // empty cache, or one position). Causal self-attention over `cache` (see
  // MultiheadAttention::forward_cached), then cross-attention of row r to
  // memory_kv row r / (R / Bm) with memory_padding [Bm, S] (nonzero = padding)
  // or empty. Equals forward() with a causal tgt_mask and that key padding,
  // restricted to the positions fed.
  Tensor forward_cached(const Tensor& tgt, KVCache& cache, int64_t capacity, const KVCache& memory_kv,
                        const std::vector<uint8_t>& memory_padding = {});

 private:
  MultiheadAttention self_attn_, multihead_attn_;
  LayerNorm norm1_, norm2_, norm3_;
  Dropout dropout1_, dropout2_, dropout3_;
};

// ValueError unless `num_layers` layers built with `opt` (decoder layers, with
// cross-attention, when `decoder`) fit in this machine's physical memory, as
// estimated from their parameter count plus a fixed cost per layer object.
// Called before a stack is built: otherwise an absurd depth (a hostile
// config.json with 10^9 layers) runs for hours before running out of memory.
// `what` names the setting in the message ("GPTConfig.n_layer").
void check_layer_stack(const char* what, int64_t num_layers, const TransformerLayerOptions& opt, bool decoder = false);

// The encoder-stack fields BERTConfig and ViTConfig share (same names in both):
// n_layer, n_head >= 1, hidden_size >= 1 and divisible by n_head,
// intermediate_size >= 1, dropout in [0, 1), layer_norm_eps > 0 and activation
// "gelu", "gelu_tanh" or "relu". ValueError messages start with `config`.
void check_encoder_config(const char* config, int64_t n_layer, int64_t n_head, int64_t hidden_size,
                          int64_t intermediate_size, float dropout, float layer_norm_eps,
                          const std::string& activation);

// For a model's member initialisers: config.validate(), then check_layer_stack
// for its config.n_layer layers of make_options(config); returns config.
template <class Config, class MakeOptions>
const Config& validated_stack(const Config& config, const char* what, MakeOptions make_options) {
  config.validate();
  check_layer_stack(what, config.n_layer, make_options(config));
  return config;
}

}  // namespace cpuformer
