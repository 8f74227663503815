// MultiheadAttention's inference paths: self-attention over a KV cache
// (prefill and one-step decoding, BigBird through its layout row) and
// cross-attention over projected memory. Nothing is saved for backward.
#include <algorithm>
#include <cmath>

#include "cpuformer/error.hpp"
#include "cpuformer/nn/multihead_attention.hpp"
#include "cpuformer/ops/linear.hpp"
#include "cpuformer/ops/linear_attention.hpp"
#include "cpuformer/ops/packed_weight.hpp"
#include "cpuformer/runtime/threads.hpp"

namespace cpuformer {

Tensor MultiheadAttention::forward_cached(const Tensor& x, KVCache& cache, int64_t capacity,
                                          const uint8_t* key_padding) {
  CF_CHECK_VALUE(x.dim() == 3, "x: expected [batch, T, ", E_, "], got ", shape_str(x.shape()));
  check_last_dim(x, E_, "x");
  const int64_t B = x.size(0), Tn = x.size(1);
  CF_CHECK_VALUE(!key_padding || variant_.kind == AttentionKind::Full, "MultiheadAttention(attention=\"",
                 attention_kind_name(variant_.kind), "\"): a padding mask during incremental decoding needs "
                 "attention=\"full\"");
  if (variant_.kind == AttentionKind::SlidingWindow || variant_.kind == AttentionKind::Linformer) {
    CF_CHECK_VALUE(cache.len == 0 || Tn == 1, "KV cache: after the prompt, feed one position at a time (got ", Tn,
                   ")");
    Tensor qkv = Tensor::empty({B, Tn, 3 * E_});
    weight_linear(qkv.data(), x.data(), *in_proj_weight_, in_proj_bias_ ? in_proj_bias_->value.data() : nullptr,
                  B * Tn);
    const Tensor attn = variant_cached(qkv, cache, capacity);
    return out_projection(attn);
  }
  if (!cache.k.defined() || cache.k.size(0) != B || cache.capacity() != capacity) {
    CF_CHECK_VALUE(cache.len == 0, "KV cache: batch size or capacity changed mid-sequence");
    cache.k = Tensor::empty({B, capacity, E_});
    cache.v = Tensor::empty({B, capacity, E_});
  }
  CF_CHECK_VALUE(cache.len == 0 || Tn == 1, "KV cache: after the prompt, feed one position at a time (got ", Tn, ")");
  CF_CHECK_VALUE(cache.len + Tn <= capacity, "KV cache full: ", cache.len, " + ", Tn, " positions > capacity ",
                 capacity);
  // qkv [B, Tn, 3E]; copy k, v rows into the cache at positions len..len+Tn.
  Tensor qkv = Tensor::empty({B, Tn, 3 * E_});
  weight_linear(qkv.data(), x.data(), *in_proj_weight_, in_proj_bias_ ? in_proj_bias_->value.data() : nullptr, B * Tn);
  const int64_t cap = capacity;
#pragma omp parallel for schedule(static) if (B * Tn * E_ >= kParallelMinWork)
  for (int64_t bt = 0; bt < B * Tn; ++bt) {
    const int64_t b = bt / Tn, t = bt % Tn;
    const float* row = qkv.data() + bt * 3 * E_;
    float* kd = cache.k.data() + (b * cap + cache.len + t) * E_;
    float* vd = cache.v.data() + (b * cap + cache.len + t) * E_;
    for (int64_t e = 0; e < E_; ++e) {
      kd[e] = row[E_ + e];
      vd[e] = row[2 * E_ + e];
    }
  }
  const int64_t S = cache.len + Tn;
  AttentionParams p = head_params(B, Tn, S);
  p.is_causal = Tn > 1;  // prefill from an empty cache: top-left causal is exact
  p.key_padding = key_padding;
  std::vector<uint8_t> step_keys;
  if (variant_.kind == AttentionKind::BigBird) {
    if (Tn > 1) {
      set_bigbird_layout(p, Tn, true);
    } else {
      // One step at position S-1: its causal layout row (the same whatever
      // the length) as a key mask shared by the batch rows.
      const int64_t bs = variant_.bigbird.block_size, nb = (S + bs - 1) / bs;
      BigBirdLayoutParams lp = variant_.bigbird;
      lp.is_causal = true;
      std::vector<uint8_t> row(static_cast<size_t>(nb));
      bigbird_layout_row(nb - 1, nb, lp, row.data());
      step_keys.resize(static_cast<size_t>(B * S));
      for (int64_t j = 0; j < S; ++j) step_keys[static_cast<size_t>(j)] = row[static_cast<size_t>(j / bs)] ? 0 : 1;
      for (int64_t b = 1; b < B; ++b) std::copy_n(step_keys.begin(), S, step_keys.begin() + b * S);
      p.key_padding = step_keys.data();
    }
  }
  Tensor attn = Tensor::empty({B, Tn, E_});
  Tensor lse = Tensor::empty({B * H_ * Tn});
  if (variant_.kind == AttentionKind::Performer) {
    // Recomputed from every cached key/value: the last position sees them all,
    // so a one-token step is the non-causal form over the cache.
    PerformerParams pp;
    pp.B = B;
    pp.H = H_;
    pp.L = Tn;
    pp.S = S;
    pp.D = pp.Dv = D_;
    pp.m = variant_.num_features;
    pp.scale = p.scale;
    pp.is_causal = Tn > 1;
    performer_attention_forward({attn.data(), Tn * E_, D_, E_}, {qkv.data(), Tn * 3 * E_, D_, 3 * E_},
                                {cache.k.data(), cap * E_, D_, E_}, {cache.v.data(), cap * E_, D_, E_},
                                features_.data(), pp);
  } else {
    attention_forward({attn.data(), Tn * E_, D_, E_}, lse.data(), {qkv.data(), Tn * 3 * E_, D_, 3 * E_},
                      {cache.k.data(), cap * E_, D_, E_}, {cache.v.data(), cap * E_, D_, E_}, p);
  }
  cache.len = S;
  return out_projection(attn);
}

Tensor MultiheadAttention::out_projection(const Tensor& attn) {
  Tensor out = Tensor::empty(attn.shape());
  weight_linear(out.data(), attn.data(), out_proj_.weight(), out_proj_.bias() ? out_proj_.bias()->value.data() : nullptr,
                attn.numel() / E_);
  return out;
}

KVCache MultiheadAttention::project_kv(const Tensor& memory) {
  CF_CHECK_VALUE(memory.dim() == 3, "memory: expected [batch, S, ", E_, "], got ", shape_str(memory.shape()));
  check_last_dim(memory, E_, "memory");
  CF_CHECK_VALUE(variant_.kind == AttentionKind::Full, "MultiheadAttention.project_kv: only attention=\"full\" is "
                 "supported, got \"", attention_kind_name(variant_.kind), "\"");
  const int64_t Bm = memory.size(0), S = memory.size(1);
  const float* bias = in_proj_bias_ ? in_proj_bias_->value.data() : nullptr;
  KVCache kv;
  kv.k = Tensor::empty({Bm, S, E_});
  kv.v = Tensor::empty({Bm, S, E_});
  // k = memory · W_kᵀ + b_k, v = memory · W_vᵀ + b_v (rows E..2E and 2E..3E of in_proj).
  weight_linear(kv.k.data(), memory.data(), *in_proj_weight_, bias, Bm * S, Activation::None, E_, E_);
  weight_linear(kv.v.data(), memory.data(), *in_proj_weight_, bias, Bm * S, Activation::None, 2 * E_, E_);
  kv.len = S;
  return kv;
}

Tensor MultiheadAttention::forward_kv(const Tensor& query, const KVCache& kv, const std::vector<uint8_t>& key_padding) {
  CF_CHECK_VALUE(query.dim() == 3, "query: expected [batch, L, ", E_, "], got ", shape_str(query.shape()));
  check_last_dim(query, E_, "query");
  CF_CHECK_VALUE(kv.k.defined() && kv.v.defined() && kv.k.dim() == 3 && kv.k.shape() == kv.v.shape() &&
                     kv.k.size(2) == E_ && kv.len >= 0 && kv.len <= kv.capacity(),
                 "forward_kv: kv must hold keys and values from project_kv");
  const int64_t R = query.size(0), L = query.size(1), Bm = kv.k.size(0), S = kv.len, cap = kv.capacity();
  CF_CHECK_VALUE(Bm >= 1 && R % Bm == 0, "query: batch size ", R, " is not a multiple of the memory's batch size ",
                 Bm);
  CF_CHECK_VALUE(key_padding.empty() || static_cast<int64_t>(key_padding.size()) == Bm * S,
                 "key_padding_mask: expected shape [", Bm, ", ", S, "], got ", key_padding.size(), " elements");
  // The G rows of a group are consecutive, so query [R, L, E] is [Bm, G*L, E]:
  // attention with batch Bm and G*L query rows against memory row b.
  const int64_t GL = (R / Bm) * L;
  Tensor q = Tensor::empty({R, L, E_});
  weight_linear(q.data(), query.data(), *in_proj_weight_, in_proj_bias_ ? in_proj_bias_->value.data() : nullptr, R * L,
                Activation::None, 0, E_);
  AttentionParams p = head_params(Bm, GL, S);
  if (!key_padding.empty()) p.key_padding = key_padding.data();
  Tensor attn = Tensor::empty({R, L, E_});
  Tensor lse = Tensor::empty({Bm * H_ * GL});
  attention_forward({attn.data(), GL * E_, D_, E_}, lse.data(), {q.data(), GL * E_, D_, E_},
                    {kv.k.data(), cap * E_, D_, E_}, {kv.v.data(), cap * E_, D_, E_}, p);
  return out_projection(attn);
}

}  // namespace cpuformer
