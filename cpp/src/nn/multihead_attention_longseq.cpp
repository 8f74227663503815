// MultiheadAttention's long-sequence variants (AttentionVariant): Performer and
// Linformer forward/backward, and the sliding-window KV cache. The sliding
// window's forward/backward is the flash kernel with the band set (see
// multihead_attention.cpp and ops/sparse_attention.hpp).
#include <algorithm>
#include <cmath>

#include "cpuformer/error.hpp"
#include "cpuformer/nn/multihead_attention.hpp"
#include "cpuformer/ops/linear_attention.hpp"
#include "cpuformer/runtime/threads.hpp"

namespace cpuformer {

void AttentionVariant::validate() const {
  switch (kind) {
    case AttentionKind::Full:
      break;
    case AttentionKind::SlidingWindow:
      CF_CHECK_VALUE(window >= 0, "attention_window must be >= 0, got ", window);
      CF_CHECK_VALUE(num_global >= 0, "num_global must be >= 0, got ", num_global);
      break;
    case AttentionKind::Performer:
      CF_CHECK_VALUE(num_features >= 1, "num_features must be >= 1, got ", num_features);
      break;
    case AttentionKind::Linformer:
      CF_CHECK_VALUE(linformer_k >= 1, "linformer_k must be >= 1, got ", linformer_k);
      CF_CHECK_VALUE(max_len >= 1, "linformer: the maximum sequence length must be >= 1, got ", max_len);
      break;
    case AttentionKind::BigBird:
      check_bigbird_layout_params(bigbird, "bigbird");
      break;
  }
}

AttentionKind parse_attention_kind(const std::string& name, const char* what) {
  if (name == "full") return AttentionKind::Full;
  if (name == "sliding_window") return AttentionKind::SlidingWindow;
  if (name == "performer") return AttentionKind::Performer;
  if (name == "linformer") return AttentionKind::Linformer;
  if (name == "bigbird") return AttentionKind::BigBird;
  throw ValueError(str_cat(what, " must be \"full\", \"sliding_window\", \"performer\", \"linformer\" or \"bigbird\", "
                           "got \"", name, "\""));
}

const char* attention_kind_name(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::SlidingWindow: return "sliding_window";
    case AttentionKind::Performer: return "performer";
    case AttentionKind::Linformer: return "linformer";
    case AttentionKind::BigBird: return "bigbird";
    default: return "full";
  }
}

BigBirdLayoutParams bigbird_settings(int64_t block_size, int64_t num_window_blocks, int64_t num_global_blocks,
                                     int64_t num_random_blocks, int64_t seed) {
  BigBirdLayoutParams b;
  b.block_size = block_size;
  b.num_window_blocks = num_window_blocks;
  b.num_global_blocks = num_global_blocks;
  b.num_random_blocks = num_random_blocks;
  b.seed = static_cast<uint64_t>(seed);
  b.strict = false;
  return b;
}

AttentionVariant make_attention_variant(const std::string& attention, int64_t attention_window, int64_t num_global,
                                        int64_t num_features, int64_t linformer_k, int64_t max_len,
                                        const BigBirdLayoutParams& bigbird) {
  AttentionVariant v;
  v.kind = parse_attention_kind(attention);
  v.window = attention_window;
  v.num_global = num_global;
  v.num_features = num_features;
  v.linformer_k = linformer_k;
  v.max_len = max_len;
  v.bigbird = bigbird;
  v.bigbird.strict = false;
  check_bigbird_layout_params(v.bigbird, "bigbird");
  // Every field is checked (not only the chosen kind's) so that a config is valid or not as a whole.
  CF_CHECK_VALUE(attention_window >= 0, "attention_window must be >= 0, got ", attention_window);
  CF_CHECK_VALUE(num_global >= 0, "num_global must be >= 0, got ", num_global);
  CF_CHECK_VALUE(num_features >= 1, "num_features must be >= 1, got ", num_features);
  CF_CHECK_VALUE(linformer_k >= 1, "linformer_k must be >= 1, got ", linformer_k);
  v.validate();
  return v;
}

void MultiheadAttention::set_bigbird_layout(AttentionParams& p, int64_t T, bool causal) {
  if (layout_T_ != T || layout_causal_ != causal) {
    BigBirdLayoutParams lp = variant_.bigbird;
    lp.is_causal = causal;
    layout_ = bigbird_layout(T, lp);
    layout_T_ = T;
    layout_causal_ = causal;
  }
  p.layout = layout_.data();
  p.layout_block = variant_.bigbird.block_size;
  p.layout_cols = (T + p.layout_block - 1) / p.layout_block;
}

void MultiheadAttention::check_variant_call(const AttentionMask& m) const {
  const char* name = attention_kind_name(variant_.kind);
  CF_CHECK_VALUE(!m.attn_mask.defined(), "MultiheadAttention(attention=\"", name,
                 "\"): attn_mask is not supported (only is_causal and a boolean key padding mask)");
  CF_CHECK_VALUE(!m.key_padding_additive.defined(), "MultiheadAttention(attention=\"", name,
                 "\"): a float key_padding_mask is not supported; pass a boolean one");
  if (variant_.kind == AttentionKind::Linformer) {
    CF_CHECK_VALUE(!m.is_causal, "MultiheadAttention(attention=\"linformer\"): is_causal is not supported: the "
                   "sequence projection mixes every position (Linformer is for encoders)");
    CF_CHECK_VALUE(S_ <= variant_.max_len, "MultiheadAttention(attention=\"linformer\"): sequence length ", S_,
                   " exceeds the projection's max_len ", variant_.max_len);
  }
}

namespace {
PerformerParams performer_params(int64_t B, int64_t H, int64_t L, int64_t S, int64_t D, const AttentionVariant& v,
                                 bool is_causal, const uint8_t* padding) {
  PerformerParams p;
  p.B = B;
  p.H = H;
  p.L = L;
  p.S = S;
  p.D = p.Dv = D;
  p.m = v.num_features;
  p.scale = 1.0f / std::sqrt(static_cast<float>(D));
  p.is_causal = is_causal;
  p.key_padding = padding;
  return p;
}
}  // namespace

void MultiheadAttention::variant_forward(Tensor& attn, Tensor& lse) {
  const uint8_t* pad = mask_.key_padding.empty() ? nullptr : mask_.key_padding.data();
  const StridedBHT<float> out{attn.data(), L_ * E_, D_, E_};
  if (variant_.kind == AttentionKind::Performer) {
    performer_attention_forward(out, proj_view(0), proj_view(1), proj_view(2), features_.data(),
                                performer_params(B_, H_, L_, S_, D_, variant_, mask_.is_causal, pad));
    return;
  }
  // Linformer: kp/vp [B, K, E] = E/F[:, :S] · k/v (padded keys left out), then full attention over K rows.
  const int64_t K = variant_.linformer_k, N = variant_.max_len;
  kp_ = Tensor::empty({B_, K, E_});
  vp_ = Tensor::empty({B_, K, E_});
  const float* qkv = proj_[0].data();
  linformer_project_forward(kp_.data(), qkv + E_, 3 * E_, linformer_e_->value.data(), N, B_, S_, K, E_, pad);
  linformer_project_forward(vp_.data(), qkv + 2 * E_, 3 * E_, linformer_f_->value.data(), N, B_, S_, K, E_, pad);
  saved_.S = K;
  saved_.is_causal = false;
  saved_.key_padding = nullptr;
  attention_forward(out, lse.data(), proj_view(0), {kp_.data(), K * E_, D_, E_}, {vp_.data(), K * E_, D_, E_},
                    saved_);
}

void MultiheadAttention::variant_grads(const Tensor& dattn, StridedBHT<float>* d) {
  const uint8_t* pad = mask_.key_padding.empty() ? nullptr : mask_.key_padding.data();
  const StridedBHT<const float> dout{dattn.data(), L_ * E_, D_, E_};
  if (variant_.kind == AttentionKind::Performer) {
    performer_attention_backward(d[0], d[1], d[2], dout, proj_view(0), proj_view(1), proj_view(2), features_.data(),
                                 performer_params(B_, H_, L_, S_, D_, variant_, mask_.is_causal, pad));
    return;
  }
  const int64_t K = variant_.linformer_k, N = variant_.max_len;
  Tensor dkp = Tensor::zeros({B_, K, E_}), dvp = Tensor::zeros({B_, K, E_});
  attention_backward(d[0], {dkp.data(), K * E_, D_, E_}, {dvp.data(), K * E_, D_, E_}, dout, proj_view(0),
                     {kp_.data(), K * E_, D_, E_}, {vp_.data(), K * E_, D_, E_}, {attn_.data(), L_ * E_, D_, E_},
                     lse_.data(), saved_);
  const float* qkv = proj_[0].data();
  linformer_project_backward(d[1].data, d[1].stride_t, linformer_e_->grad_data(), dkp.data(), qkv + E_, 3 * E_,
                             linformer_e_->value.data(), N, B_, S_, K, E_, pad);
  linformer_project_backward(d[2].data, d[2].stride_t, linformer_f_->grad_data(), dvp.data(), qkv + 2 * E_, 3 * E_,
                             linformer_f_->value.data(), N, B_, S_, K, E_, pad);
}

// Sliding window: slots [0, G) hold the global positions, slots [G, G + w + 1)
// a ring of the last w + 1 later positions (slot G + (t - G) % (w + 1)). The
// softmax does not care about key order, so one decoding step attends to
// every filled slot with no mask.
Tensor MultiheadAttention::variant_cached(const Tensor& qkv, KVCache& cache, int64_t capacity) {
  CF_CHECK_VALUE(variant_.kind == AttentionKind::SlidingWindow, "MultiheadAttention(attention=\"",
                 attention_kind_name(variant_.kind), "\"): incremental decoding is not supported");
  const int64_t B = qkv.size(0), Tn = qkv.size(1);
  const int64_t G = variant_.num_global, ring = variant_.window + 1;
  const int64_t slots = std::min(capacity, G + ring);
  if (!cache.k.defined() || cache.k.size(0) != B || cache.capacity() != slots) {
    CF_CHECK_VALUE(cache.len == 0, "KV cache: batch size or capacity changed mid-sequence");
    cache.k = Tensor::empty({B, slots, E_});
    cache.v = Tensor::empty({B, slots, E_});
  }
  CF_CHECK_VALUE(cache.len + Tn <= capacity, "KV cache full: ", cache.len, " + ", Tn, " positions > capacity ",
                 capacity);
  Tensor attn = Tensor::empty({B, Tn, E_});
  Tensor lse = Tensor::empty({B * H_ * Tn});
  AttentionParams p = head_params(B, 0, 0);  // lengths set below
  if (cache.len == 0) {  // prefill: banded causal attention over the prompt itself
    p.L = p.S = Tn;
    p.is_causal = true;
    p.window = variant_.window;
    p.num_global = std::min(G, Tn);
    attention_forward({attn.data(), Tn * E_, D_, E_}, lse.data(), {qkv.data(), Tn * 3 * E_, D_, 3 * E_},
                      {qkv.data() + E_, Tn * 3 * E_, D_, 3 * E_}, {qkv.data() + 2 * E_, Tn * 3 * E_, D_, 3 * E_}, p);
  }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t) {  // in order: the ring keeps the latest positions
      const int64_t pos = cache.len + t, slot = pos < G ? pos : G + (pos - G) % ring;
      const float* row = qkv.data() + (b * Tn + t) * 3 * E_;
      std::copy(row + E_, row + 2 * E_, cache.k.data() + (b * slots + slot) * E_);
      std::copy(row + 2 * E_, row + 3 * E_, cache.v.data() + (b * slots + slot) * E_);
    }
  if (cache.len > 0) {  // one step: the query at position len sees every filled slot
    const int64_t n = cache.len + 1;
    p.L = 1;
    p.S = std::min(n, G) + std::clamp<int64_t>(n - G, 0, ring);
    attention_forward({attn.data(), E_, D_, E_}, lse.data(), {qkv.data(), 3 * E_, D_, 3 * E_},
                      {cache.k.data(), slots * E_, D_, E_}, {cache.v.data(), slots * E_, D_, E_}, p);
  }
  cache.len += Tn;
  return attn;
}

}  // namespace cpuformer
