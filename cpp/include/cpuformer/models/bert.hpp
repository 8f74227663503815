// BERT: bidirectional encoder with a masked-language-model head.
//   x = drop(LN(word[ids] + pos[t] + type[tt]))         [B, T, H]
//   h = layer_l(x) for l < n_layer                       post-LN, exact-erf GELU, key padding mask
//   logits = LN(gelu(dense(h))) · wordᵀ + bias           [B, T, V]  (decoder tied to word embeddings)
//   pooled = tanh(pooler.dense(h[:, 0]))                 [B, H]     (only with config.pooler)
// Parameter names:
//   embeddings.{word_embeddings,position_embeddings,token_type_embeddings}.weight,
//   embeddings.LayerNorm.{weight,bias}, encoder.layers.<l>.<TransformerEncoderLayer names>,
//   mlm.dense.{weight,bias}, mlm.LayerNorm.{weight,bias}, mlm.bias (only with config.mlm_head),
//   pooler.dense.{weight,bias} (only with config.pooler).
// From Hugging Face BertForMaskedLM: bert.embeddings.* keep their names; in each
// encoder layer attention.self.{query,key,value} stack (in that order) into
// self_attn.in_proj_{weight,bias}, attention.output.dense -> self_attn.out_proj,
// attention.output.LayerNorm -> norm1, intermediate.dense -> linear1,
// output.dense -> linear2, output.LayerNorm -> norm2; cls.predictions.transform.*
// -> mlm.*, cls.predictions.bias -> mlm.bias (the decoder weight is tied);
// bert.pooler.dense -> pooler.dense.
// Padding positions still get hidden states (they attend to the real tokens),
// as in Hugging Face. A sequence that is padding throughout has no key to
// attend to: its attention outputs are 0 (Hugging Face would attend uniformly).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cpuformer/nn/activation.hpp"
#include "cpuformer/nn/embedding.hpp"
#include "cpuformer/nn/layer_norm.hpp"
#include "cpuformer/nn/linear.hpp"
#include "cpuformer/nn/transformer.hpp"

namespace cpuformer {

struct BERTConfig {
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  float dropout = 0.1f;  // embeddings, attention probabilities, residual branches and, as torch's
                         // TransformerEncoderLayer (not Hugging Face), after the feed-forward activation
  float layer_norm_eps = 1e-12f;
  // Options of Hugging Face BERT configs (defaults = the layout above).
  std::string activation = "gelu";  // feed-forward and MLM transform: "gelu" (exact erf), "gelu_tanh" or "relu"
  bool mlm_head = true;             // the MLM head (BertForMaskedLM); false = a bare encoder (BertModel)
  bool pooler = false;              // the pooler tanh(dense(h[:, 0])) (BertModel)
  // Long sequences (README "Long sequences"): "full", "sliding_window", "performer" or
  // "linformer" (projections of max_position_embeddings columns, shared by a layer's heads)
  // or "bigbird".
  std::string attention = "full";
  int64_t attention_window = 256, num_global = 0, num_features = 256, linformer_k = 256;
  // attention="bigbird" (ops/bigbird_attention.hpp): block size (GPT's block_size is the
  // context, hence the prefix), window, global and random blocks per query block, and the
  // seed of the random blocks (the layout is a function of these and the length).
  int64_t bigbird_block_size = 64, num_window_blocks = 3, num_global_blocks = 2, num_random_blocks = 3;
  int64_t bigbird_seed = 0;
  BigBirdLayoutParams bigbird() const {
    return bigbird_settings(bigbird_block_size, num_window_blocks, num_global_blocks, num_random_blocks, bigbird_seed);
  }
  void validate() const;
};

// The MLM transform: y = LayerNorm(gelu(dense(h))); the decoder (tied word
// embeddings + `bias`) is applied by BERT, which owns the embedding matrix.
class BertMLMHead : public Module {
 public:
  BertMLMHead(int64_t hidden, int64_t vocab, float eps, const std::string& activation);
  Tensor forward(const Tensor& h);       // [B, T, H] -> [B, T, H]
  Tensor backward(const Tensor& dout);  // -> dh
  Parameter& bias() { return *bias_; }

 private:
  Linear dense_;
  GELU gelu_;
  ReLU relu_;
  bool use_gelu_;
  LayerNorm layer_norm_;
  Parameter* bias_;  // [V]
};

class BERT : public Module {
 public:
  explicit BERT(const BERTConfig& cfg);
  const BERTConfig& config() const { return cfg_; }

  // input_ids [B, T]; token_type_ids [B, T] or null (all type 0); padding
  // [B*T] with nonzero = padding key (masked out of attention), or empty.
  // Returns the last hidden state [B, T, H] and caches for backward_hidden().
  Tensor forward(const int64_t* input_ids, const int64_t* token_type_ids, int64_t B, int64_t T,
                 const std::vector<uint8_t>& padding = {});
  // forward + MLM head: logits [B, T, V].
  Tensor mlm_logits(const int64_t* input_ids, const int64_t* token_type_ids, int64_t B, int64_t T,
                    const std::vector<uint8_t>& padding = {});
  // forward + pooler: tanh(dense(h[:, 0])) [B, H]. StateError without config.pooler.
  Tensor pooled_output(const int64_t* input_ids, const int64_t* token_type_ids, int64_t B, int64_t T,
                       const std::vector<uint8_t>& padding = {});
  // Mean cross-entropy of mlm_logits against labels [B, T] (-100 ignored).
  float mlm_loss(const int64_t* input_ids, const int64_t* labels, const int64_t* token_type_ids, int64_t B,
                 int64_t T, const std::vector<uint8_t>& padding = {});
  // Backpropagates the last mlm_loss(). StateError without one.
  void backward();
  // Backpropagates dhidden [B, T, H] through the last forward (any of the three calls above).
  void backward_hidden(const Tensor& dhidden);
  // Backpropagates dlogits [B, T, V] through the last mlm_logits()/mlm_loss().
  void backward_logits(const Tensor& dlogits);
  // Backpropagates dpooled [B, H] through the last pooled_output().
  void backward_pooled(const Tensor& dpooled);

 private:
  void check_inputs(const int64_t* input_ids, const int64_t* token_type_ids, int64_t B, int64_t T,
                    const std::vector<uint8_t>& padding) const;
  Tensor head_forward(const Tensor& h);

  BERTConfig cfg_;
  Embedding word_embeddings_, position_embeddings_, token_type_embeddings_;
  LayerNorm emb_layer_norm_;
  Dropout emb_dropout_;
  TransformerEncoder encoder_;
  BertMLMHead mlm_;
  Linear pooler_dense_;

  // Saved by forward / mlm_logits / mlm_loss.
  int64_t B_ = 0, T_ = 0;
  bool have_forward_ = false, have_head_ = false, have_loss_ = false, have_pooled_ = false;
  Tensor mlm_y_;   // head transform output [B, T, H]
  DType head_dtype_ = DType::Float32;  // autocast precision of the last head forward
  Tensor logits_;  // [B, T, V]
  Tensor pooled_;  // [B, H]
  std::vector<int64_t> labels_;
};

}  // namespace cpuformer
