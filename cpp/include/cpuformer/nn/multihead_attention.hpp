// MultiheadAttention ~ torch.nn.MultiheadAttention(embed_dim, num_heads,
// dropout, bias, batch_first=True). Parameters (torch names): in_proj_weight
// [3E, E], in_proj_bias [3E], out_proj.weight [E, E], out_proj.bias [E].
//
// B batch, L query length, S key length, E embed dim, H heads, D = E / H.
// Q/K/V projections stay in [B, T, E] (or packed [B, T, 3E]) layout; the
// attention kernel reads heads through strides, so nothing is transposed.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "cpuformer/nn/linear.hpp"
#include "cpuformer/nn/module.hpp"
#include "cpuformer/ops/attention.hpp"
#include "cpuformer/ops/bigbird_attention.hpp"

namespace cpuformer {

struct AttentionMask {
  // Additive float mask, [L, S] (shared by every batch and head) or
  // [B*H, L, S]; -inf disallows a pair. Undefined tensor = none.
  Tensor attn_mask;
  // Key padding [B, S], either boolean (nonzero = padding, masked out) ...
  std::vector<uint8_t> key_padding;
  // ... or additive float [B, S].
  Tensor key_padding_additive;
  // Query i may attend key j only when j <= i.
  bool is_causal = false;
};

// Which attention a self-attention module computes (see ops/sparse_attention.hpp
// and ops/linear_attention.hpp; README "Long sequences").
//   Full          exact softmax attention (flash kernel), O(T²·D)
//   SlidingWindow exact attention within |i - j| <= window plus num_global global tokens, O(T·window·D)
//   Performer     FAVOR+ random-feature approximation (num_features), O(T·num_features·D); no attention dropout
//   Linformer     keys/values projected along the sequence to linformer_k rows by learned
//                 linformer_e / linformer_f [linformer_k, max_len] (shared by the heads of a layer);
//                 encoder-only (rejects is_causal), sequences up to max_len
//   BigBird       exact attention under a BigBird block layout (window, global and seeded
//                 random blocks, ops/bigbird_attention.hpp), recomputed for each length T from
//                 `bigbird` (not strict: short sequences take the random blocks they have);
//                 O(T·(w+g+r)·block·D)
enum class AttentionKind { Full, SlidingWindow, Performer, Linformer, BigBird };
struct AttentionVariant {
  AttentionKind kind = AttentionKind::Full;
  int64_t window = 256;
  int64_t num_global = 0;
  int64_t num_features = 256;
  uint64_t seed = 0;  // Performer random features
  int64_t linformer_k = 256;
  int64_t max_len = 0;
  BigBirdLayoutParams bigbird = [] {
    BigBirdLayoutParams b;
    b.strict = false;
    return b;
  }();
  void validate() const;
};
// "full", "sliding_window", "performer", "linformer", "bigbird" (ValueError otherwise).
AttentionKind parse_attention_kind(const std::string& name, const char* what = "attention");
const char* attention_kind_name(AttentionKind kind);
// The variant a model config asks for (validated; ValueError naming the fields).
// A model's BigBird settings (not strict; the seed's bits as given).
BigBirdLayoutParams bigbird_settings(int64_t block_size, int64_t num_window_blocks, int64_t num_global_blocks,
                                     int64_t num_random_blocks, int64_t seed);
// `bigbird`'s counts are checked whatever the kind; its strict flag is ignored (models are not strict).
AttentionVariant make_attention_variant(const std::string& attention, int64_t attention_window, int64_t num_global,
                                        int64_t num_features, int64_t linformer_k, int64_t max_len,
                                        const BigBirdLayoutParams& bigbird = {});

// Keys and values of past positions for incremental decoding.
// SlidingWindow keeps only num_global + window + 1 slots: the global
// positions, then a ring of the last window + 1 positions (len still counts
// every position fed).
struct KVCache {
  Tensor k, v;            // [B, capacity, E]
  int64_t len = 0;        // positions filled
  int64_t capacity() const { return k.defined() ? k.size(1) : 0; }
};

class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, float dropout = 0.0f, bool bias = true,
                     const AttentionVariant& variant = {});

  // General form: query [B, L, E], key [B, S, E], value [B, S, E] -> [B, L, E].
  // When query, key and value are the same tensor the three projections run
  // as one packed GEMM.
  Tensor forward(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionMask& mask = {});
  // Gradients w.r.t. query, key and value (separately, even when they were
  // the same tensor: the caller sums them). Accumulates parameter gradients.
  std::array<Tensor, 3> backward(const Tensor& dout);

  // Self-attention x [B, T, E]: forward(x, x, x) whose backward returns the
  // summed input gradient in one GEMM.
  Tensor forward_self(const Tensor& x, const AttentionMask& mask = {}) { return forward(x, x, x, mask); }
  Tensor backward_self(const Tensor& dout);

  // Inference with a KV cache: x [B, Tn, E] holds the next Tn positions;
  // their keys/values are appended to `cache` (allocated on first use with
  // `capacity` positions) and they attend to every cached position causally.
  // Either the cache is empty (prefill) or Tn == 1 (one decoding step).
  // No dropout, nothing saved for backward. key_padding, if not null, is
  // [B, len + Tn] (nonzero = that cached or new position is padding, masked
  // out as a key); attention="full" only (ValueError otherwise).
  Tensor forward_cached(const Tensor& x, KVCache& cache, int64_t capacity, const uint8_t* key_padding = nullptr);

  // Cross-attention inference over a fixed memory (encoder-decoder decoding).
  // project_kv: keys and values of memory [Bm, S, E] as a full KVCache
  // (len = capacity = S), computed once per source. forward_kv: query
  // [R, L, E], R a multiple of Bm, attends to them; the G = R / Bm
  // consecutive rows r = b*G .. b*G+G-1 (the beams of source b) use memory
  // row b. key_padding [Bm, S] (nonzero = padding) or empty. Full attention
  // only; no dropout, nothing saved for backward.
  KVCache project_kv(const Tensor& memory);
  Tensor forward_kv(const Tensor& query, const KVCache& kv, const std::vector<uint8_t>& key_padding = {});

  int64_t embed_dim() const { return E_; }
  int64_t num_heads() const { return H_; }
  float dropout() const { return dropout_; }
  const AttentionVariant& variant() const { return variant_; }

 private:
  // Non-full variants (multihead_attention_longseq.cpp): self-attention only.
  void check_variant_call(const AttentionMask& m) const;
  void variant_forward(Tensor& attn, Tensor& lse);          // proj_ -> attn [B,L,E]
  void variant_grads(const Tensor& dattn, StridedBHT<float>* d);  // -> d[0..2] (+ linformer grads)
  Tensor variant_cached(const Tensor& qkv, KVCache& cache, int64_t capacity);  // -> attn [B,Tn,E]

  void check_mask(const AttentionMask& m, int64_t B, int64_t L, int64_t S) const;
  // out_proj on attn [..., E] for the inference paths (nothing saved).
  Tensor out_projection(const Tensor& attn);
  AttentionParams make_params();  // from mask_ and the saved sizes
  // Batch, heads, lengths, head sizes and the 1/sqrt(D) scale; no mask.
  AttentionParams head_params(int64_t B, int64_t L, int64_t S) const;
  // Attention backward into fresh gradient buffers laid out like proj_.
  // After a bf16 forward it rounds dattn (a buffer of this call) in place.
  std::array<Tensor, 3> attention_grads(const Tensor& dattn);
  StridedBHT<const float> proj_view(int r) const;

  int64_t E_, H_, D_;
  float dropout_;
  Parameter* in_proj_weight_;
  Parameter* in_proj_bias_ = nullptr;
  Linear out_proj_;

  // Saved by forward.
  bool packed_ = false;
  int64_t B_ = 0, L_ = 0, S_ = 0;
  Tensor query_, key_, value_;  // inputs
  Tensor proj_[3];              // q, k, v projections [B,T,E]; packed: proj_[0] = qkv [B,T,3E]
  Tensor attn_, lse_;           // [B,L,E], [B*H*L]
  AttentionMask mask_;          // copy of the caller's mask (backward needs it)
  Tensor combined_mask_;        // attn_mask + additive key padding, when the latter is given
  AttentionParams saved_{};
  DType dtype_ = DType::Float32;  // autocast precision of the last forward

  AttentionVariant variant_;
  Tensor features_;                  // Performer W [num_features, D]
  Parameter* linformer_e_ = nullptr;  // [linformer_k, max_len]
  Parameter* linformer_f_ = nullptr;
  Tensor kp_, vp_;                   // Linformer projected keys/values [B, linformer_k, E]
  // BigBird: the layout of the last length (and causality) seen, which saved_ points into.
  std::vector<uint8_t> layout_;
  int64_t layout_T_ = -1;
  bool layout_causal_ = false;
  // Sets p's layout fields for T positions (recomputing layout_ when T or causality changed).
  void set_bigbird_layout(AttentionParams& p, int64_t T, bool causal);
};

}  // namespace cpuformer
