// GPT: the GPT-2 architecture (decoder-only, causal language model).
//   x = drop(wte[idx] + wpe[pos])                      [B, T, C]
//   x = block_l(x) for l < n_layer                     pre-LN, causal self-attention, tanh-GELU 4x MLP
//   logits = ln_f(x) · wteᵀ                            [B, T, V]  (LM head tied to wte)
// Parameter names: wte.weight, wpe.weight, h.<l>.<TransformerEncoderLayer names>, ln_f.weight, ln_f.bias.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "cpuformer/nn/activation.hpp"
#include "cpuformer/nn/embedding.hpp"
#include "cpuformer/nn/layer_norm.hpp"
#include "cpuformer/nn/transformer_layer.hpp"

namespace cpuformer {

struct GPTConfig {
  int64_t vocab_size = 0;
  int64_t block_size = 0;  // maximum sequence length (learned positions)
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_embd = 0;
  float dropout = 0.0f;
  bool bias = true;
  // Options of Hugging Face GPT-2 configs (defaults = GPT-2).
  float layer_norm_eps = 1e-5f;
  std::string activation = "gelu_tanh";  // feed-forward: "gelu_tanh", "gelu" (exact erf) or "relu"
  int64_t n_inner = 0;                   // feed-forward width; 0 = 4 * n_embd
  // Long sequences (README "Long sequences"): "full", "sliding_window", "performer" or
  // "bigbird"; "linformer" is rejected (its sequence projection is not causal).
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
  int64_t ff_width() const { return n_inner > 0 ? n_inner : 4 * n_embd; }
};

struct SamplingOptions {
  float temperature = 1.0f;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // 0 = off
  float top_p = 1.0f;        // 1 = off
  uint64_t seed = 0;
  bool has_seed = false;     // otherwise a key is drawn from the global generator
};

// Options of a generation request beyond sampling (models/generation.hpp).
struct GenerationOptions {
  SamplingOptions sampling;
  // [B*T] prompt mask, 1 = token, 0 = padding; padding only at the start of a
  // row (left padding, as Hugging Face pads decoder-only batches). Positions
  // count from each row's first token and padding is never attended to, so
  // every row generates what it would alone. Empty = no padding.
  std::vector<uint8_t> attention_mask;
  std::vector<int64_t> eos_token_ids;  // a row that emits one of these stops
  int64_t pad_token_id = -1;           // written after a row stops; -1 = eos_token_ids[0]
  float repetition_penalty = 1.0f;     // Hugging Face's: logits of tokens already in the row
                                       // are divided by it when positive, multiplied when negative
  int64_t min_new_tokens = 0;          // eos is suppressed before this many new tokens
};

class GPTGeneration;

class GPT : public Module {
 public:
  explicit GPT(const GPTConfig& cfg);
  const GPTConfig& config() const { return cfg_; }

  // idx [B, T] -> logits [B, T, V]. Caches activations for backward_logits().
  // padding [B*T] (nonzero = padding key, masked out of attention) or empty.
  Tensor forward(const int64_t* idx, int64_t B, int64_t T, const std::vector<uint8_t>& padding = {});
  // Backpropagates dlogits [B, T, V] through the last forward (accumulates).
  void backward_logits(const Tensor& dlogits);
  // Mean cross-entropy of forward(idx) against targets [B, T] (-100 ignored).
  float loss(const int64_t* idx, const int64_t* targets, int64_t B, int64_t T,
             const std::vector<uint8_t>& padding = {});
  // Backpropagates the last loss(). StateError without one.
  void backward();

  // Autoregressive generation with a KV cache: returns [B, T + max_new_tokens]
  // (the prompt followed by the new tokens). Beyond block_size the context is
  // cropped to the last block_size tokens (recomputed once per step then).
  // ValueError, before anything is allocated, when the output ids and the KV
  // cache could not fit in this machine's memory (max_new_tokens = 10^12).
  std::vector<int64_t> generate(const int64_t* idx, int64_t B, int64_t T, int64_t max_new_tokens,
                                const SamplingOptions& opt);
  // With padding masks, stop tokens and penalties (GPTGeneration, which runs
  // one step at a time, says how). Returns [B, T + steps]: steps <
  // max_new_tokens when every row stopped early; *steps_out receives it.
  std::vector<int64_t> generate(const int64_t* idx, int64_t B, int64_t T, int64_t max_new_tokens,
                                const GenerationOptions& opt, int64_t* steps_out = nullptr);

 private:
  friend class GPTGeneration;
  // One incremental forward: tokens and positions [B, n] (per row), appended
  // to the caches (n > 1 only into empty caches); key_padding [B, len + n] or
  // null. Returns the logits of each row's last position [B, V].
  Tensor decode_step(const int64_t* tokens, const int64_t* positions, int64_t B, int64_t n,
                     std::vector<KVCache>& caches, const uint8_t* key_padding);
  void check_ids(const int64_t* idx, int64_t n, const char* what) const;
  void check_generate_memory(int64_t B, int64_t T, int64_t max_new_tokens) const;
  // Last-position logits [B, V] from hidden states [B, Tn, C] (ln_f + tied head).
  Tensor head_last(const Tensor& h);

  GPTConfig cfg_;
  Embedding wte_, wpe_;
  Dropout drop_;
  std::vector<std::unique_ptr<TransformerEncoderLayer>> h_;
  LayerNorm ln_f_;
  AttentionMask causal_;

  // Saved by forward / loss.
  int64_t B_ = 0, T_ = 0;
  Tensor xf_;      // ln_f output [B, T, C]
  DType head_dtype_ = DType::Float32;  // autocast precision of the last forward's LM head
  Tensor logits_;  // [B, T, V]
  std::vector<int64_t> targets_;
  bool have_loss_ = false;
};

// Draws one token per row from logits [B, V] (modified in place); row b
// uses random draw step * B + b of `key`.
void sample_tokens(float* logits, int64_t B, int64_t V, const SamplingOptions& opt, uint64_t key, uint64_t step,
                   int64_t* out);
// One row: greedy (temperature 0) or a draw with random index `draw`.
int64_t sample_row(float* logits, int64_t V, const SamplingOptions& opt, uint64_t key, uint64_t draw);

}  // namespace cpuformer
