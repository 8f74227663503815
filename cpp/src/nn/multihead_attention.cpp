#include "cpuformer/nn/multihead_attention.hpp"
#include "cpuformer/runtime/threads.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpuformer/error.hpp"
#include "cpuformer/runtime/grad_mode.hpp"
#include "cpuformer/ops/gemm.hpp"
#include "cpuformer/ops/linear.hpp"
#include "cpuformer/ops/linear_attention.hpp"
#include "cpuformer/ops/packed_weight.hpp"
#include "cpuformer/runtime/rng.hpp"

namespace cpuformer {

MultiheadAttention::MultiheadAttention(int64_t embed_dim, int64_t num_heads, float dropout, bool bias,
                                       const AttentionVariant& variant)
    : E_(embed_dim), H_(num_heads), D_(0), dropout_(dropout), out_proj_(embed_dim > 0 ? embed_dim : 1,
                                                                        embed_dim > 0 ? embed_dim : 1, bias) {
  CF_CHECK_VALUE(embed_dim >= 1, "MultiheadAttention: embed_dim must be >= 1, got ", embed_dim);
  CF_CHECK_VALUE(num_heads >= 1, "MultiheadAttention: num_heads must be >= 1, got ", num_heads);
  CF_CHECK_VALUE(embed_dim % num_heads == 0, "MultiheadAttention: embed_dim (", embed_dim,
                 ") must be divisible by num_heads (", num_heads, ")");
  CF_CHECK_VALUE(dropout >= 0.0f && dropout < 1.0f, "MultiheadAttention: dropout must be in [0, 1), got ", dropout);
  D_ = E_ / H_;
  // torch: xavier_uniform_ on in_proj_weight, zero biases, out_proj.weight as nn.Linear.
  in_proj_weight_ = &register_parameter("in_proj_weight", {3 * E_, E_}, /*matrix=*/true);
  const float bound = std::sqrt(6.0f / static_cast<float>(E_ + 3 * E_));
  init_uniform(in_proj_weight_->value, -bound, bound);
  if (bias) {
    in_proj_bias_ = &register_parameter("in_proj_bias", {3 * E_});
    out_proj_.bias()->value.zero();
  }
  register_module("out_proj", &out_proj_);
  variant.validate();
  variant_ = variant;
  if (variant.kind == AttentionKind::Performer) {
    features_ = Tensor::empty({variant.num_features, D_});
    performer_features(features_.data(), variant.num_features, D_, variant.seed);
  } else if (variant.kind == AttentionKind::Linformer) {
    // Xavier-uniform, as for a [linformer_k, max_len] linear map along the sequence.
    const float b = std::sqrt(6.0f / static_cast<float>(variant.linformer_k + variant.max_len));
    linformer_e_ = &register_parameter("linformer_e", {variant.linformer_k, variant.max_len});
    linformer_f_ = &register_parameter("linformer_f", {variant.linformer_k, variant.max_len});
    init_uniform(linformer_e_->value, -b, b);
    init_uniform(linformer_f_->value, -b, b);
  }
}

void MultiheadAttention::check_mask(const AttentionMask& m, int64_t B, int64_t L, int64_t S) const {
  if (m.attn_mask.defined()) {
    const Shape& s = m.attn_mask.shape();
    const bool ok2 = s.size() == 2 && s[0] == L && s[1] == S;
    const bool ok3 = s.size() == 3 && s[0] == B * H_ && s[1] == L && s[2] == S;
    CF_CHECK_VALUE(ok2 || ok3, "attn_mask: expected shape [", L, ", ", S, "] or [", B * H_, ", ", L, ", ", S,
                   "] (batch*heads, L, S), got ", shape_str(s));
  }
  if (!m.key_padding.empty())
    CF_CHECK_VALUE(static_cast<int64_t>(m.key_padding.size()) == B * S, "key_padding_mask: expected shape [", B,
                   ", ", S, "], got ", m.key_padding.size(), " elements");
  if (m.key_padding_additive.defined())
    CF_CHECK_VALUE(m.key_padding_additive.shape() == Shape({B, S}), "key_padding_mask: expected shape [", B, ", ",
                   S, "], got ", shape_str(m.key_padding_additive.shape()));
}

AttentionParams MultiheadAttention::head_params(int64_t B, int64_t L, int64_t S) const {
  AttentionParams p;
  p.B = B;
  p.H = H_;
  p.L = L;
  p.S = S;
  p.D = p.Dv = D_;
  p.scale = 1.0f / std::sqrt(static_cast<float>(D_));
  return p;
}

AttentionParams MultiheadAttention::make_params() {
  AttentionParams p = head_params(B_, L_, S_);
  p.is_causal = mask_.is_causal;
  const int64_t LS = L_ * S_;
  const bool per_head = mask_.attn_mask.defined() && mask_.attn_mask.dim() == 3;
  if (mask_.key_padding_additive.defined()) {
    // Fold the additive key padding into one [B, Hm, L, S] mask.
    const int64_t Hm = per_head ? H_ : 1;
    combined_mask_ = Tensor::empty({B_, Hm, L_, S_});
    const float* am = mask_.attn_mask.defined() ? mask_.attn_mask.data() : nullptr;
    const float* kp = mask_.key_padding_additive.data();
    float* cm = combined_mask_.data();
#pragma omp parallel for schedule(static) if (B_ * Hm * LS >= kParallelMinWork)
    for (int64_t bh = 0; bh < B_ * Hm; ++bh) {
      const int64_t b = bh / Hm;
      const float* arow = am ? am + (per_head ? bh * LS : 0) : nullptr;
      float* dst = cm + bh * LS;
      for (int64_t i = 0; i < L_; ++i)
        for (int64_t j = 0; j < S_; ++j) dst[i * S_ + j] = (arow ? arow[i * S_ + j] : 0.0f) + kp[b * S_ + j];
    }
    p.mask = cm;
    p.mask_stride_b = Hm * LS;
    p.mask_stride_h = per_head ? LS : 0;
  } else if (mask_.attn_mask.defined()) {
    combined_mask_ = Tensor();
    p.mask = mask_.attn_mask.data();
    p.mask_stride_b = per_head ? H_ * LS : 0;
    p.mask_stride_h = per_head ? LS : 0;
  }
  if (!mask_.key_padding.empty()) p.key_padding = mask_.key_padding.data();
  if (training() && dropout_ > 0.0f) {
    p.dropout_p = dropout_;
    p.dropout_key = next_key();
  }
  return p;
}

StridedBHT<const float> MultiheadAttention::proj_view(int r) const {
  const int64_t T = r == 0 ? L_ : S_;
  if (packed_) return {proj_[0].data() + r * E_, T * 3 * E_, D_, 3 * E_};
  return {proj_[r].data(), T * E_, D_, E_};
}

Tensor MultiheadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                   const AttentionMask& mask) {
  CF_CHECK_VALUE(query.dim() == 3, "query: expected a 3-d [batch, L, ", E_, "] array, got shape ",
                 shape_str(query.shape()));
  CF_CHECK_VALUE(key.dim() == 3, "key: expected a 3-d [batch, S, ", E_, "] array, got shape ", shape_str(key.shape()));
  CF_CHECK_VALUE(value.dim() == 3, "value: expected a 3-d [batch, S, ", E_, "] array, got shape ",
                 shape_str(value.shape()));
  check_last_dim(query, E_, "query");
  check_last_dim(key, E_, "key");
  check_last_dim(value, E_, "value");
  const int64_t B = query.size(0), L = query.size(1), S = key.size(1);
  CF_CHECK_VALUE(key.size(0) == B && value.size(0) == B, "key/value: expected batch size ", B,
                 " (from query), got ", key.size(0), " and ", value.size(0));
  CF_CHECK_VALUE(value.size(1) == S, "value: expected ", S, " positions (from key), got ", value.size(1));
  check_mask(mask, B, L, S);

  B_ = B;
  L_ = L;
  S_ = S;
  mask_ = mask;
  packed_ = query.data() == key.data() && key.data() == value.data() && query.shape() == key.shape();
  if (variant_.kind != AttentionKind::Full) {
    CF_CHECK_VALUE(packed_, "MultiheadAttention(attention=\"", attention_kind_name(variant_.kind),
                   "\"): only self-attention (query, key and value the same array) is supported");
    check_variant_call(mask);
  }
  const float* bias = in_proj_bias_ ? in_proj_bias_->value.data() : nullptr;
  if (packed_) {
    // qkv [B, L, 3E] = x · in_proj_weightᵀ + in_proj_bias, one GEMM.
    proj_[0] = Tensor::empty({B, L, 3 * E_});
    proj_[1] = proj_[2] = Tensor();
    weight_linear(proj_[0].data(), query.data(), *in_proj_weight_, bias, B * L);
  } else {
    const Tensor* in[3] = {&query, &key, &value};
    for (int r = 0; r < 3; ++r) {
      const int64_t T = r == 0 ? L : S;
      proj_[r] = Tensor::empty({B, T, E_});
      weight_linear(proj_[r].data(), in[r]->data(), *in_proj_weight_, bias, B * T, Activation::None, r * E_, E_);
    }
  }
  dtype_ = autocast_dtype();
  Tensor attn = Tensor::empty({B, L, E_});
  Tensor lse = Tensor::empty({B * H_ * L});
  saved_ = make_params();
  // bf16 score and value products (softmax attention only; Performer and
  // Linformer stay float32): q, k and v are their rounded operands, as the
  // bf16 output of a projection under torch's autocast.
  const bool bf16_attention = dtype_ == DType::BFloat16 && (variant_.kind == AttentionKind::Full ||
                                                            variant_.kind == AttentionKind::SlidingWindow ||
                                                            variant_.kind == AttentionKind::BigBird);
  if (bf16_attention) {
    for (auto& t : proj_)
      if (t.defined()) round_bf16_inplace(t.data(), t.numel());
    saved_.bf16 = true;
  }
  if (variant_.kind == AttentionKind::SlidingWindow) {
    saved_.window = variant_.window;
    saved_.num_global = std::min(variant_.num_global, L);
  }
  if (variant_.kind == AttentionKind::BigBird) set_bigbird_layout(saved_, L, mask_.is_causal);
  if (variant_.kind == AttentionKind::Performer || variant_.kind == AttentionKind::Linformer)
    variant_forward(attn, lse);
  else
    attention_forward({attn.data(), L * E_, D_, E_}, lse.data(), proj_view(0), proj_view(1), proj_view(2), saved_);
  if (saves_activations()) {
    query_ = query;
    key_ = key;
    value_ = value;
    attn_ = attn;
    lse_ = lse;
  } else {  // keep nothing: inference memory is one layer's worth
    query_ = key_ = value_ = attn_ = lse_ = combined_mask_ = kp_ = vp_ = Tensor();
    proj_[0] = proj_[1] = proj_[2] = Tensor();
    mask_ = AttentionMask();
  }
  return out_proj_.forward(attn);
}

std::array<Tensor, 3> MultiheadAttention::attention_grads(const Tensor& dattn) {
  std::array<Tensor, 3> d;
  StridedBHT<float> dv[3];
  if (packed_) {
    d[0] = Tensor::zeros({B_, L_, 3 * E_});
    for (int r = 0; r < 3; ++r) dv[r] = {d[0].data() + r * E_, L_ * 3 * E_, D_, 3 * E_};
  } else {
    for (int r = 0; r < 3; ++r) {
      const int64_t T = r == 0 ? L_ : S_;
      d[r] = Tensor::zeros({B_, T, E_});
      dv[r] = {d[r].data(), T * E_, D_, E_};
    }
  }
  if (variant_.kind == AttentionKind::Performer || variant_.kind == AttentionKind::Linformer) {
    variant_grads(dattn, dv);
    return d;
  }
  // dO is an operand of the bf16 products dP = dO·Vᵀ and dV = Pᵀ·dO: rounded
  // in place (the out-projection's backward made it for this call alone).
  if (saved_.bf16) {
    Tensor shared = dattn;  // shares the storage
    round_bf16_inplace(shared.data(), shared.numel());
  }
  attention_backward(dv[0], dv[1], dv[2], {dattn.data(), L_ * E_, D_, E_}, proj_view(0), proj_view(1), proj_view(2),
                     {attn_.data(), L_ * E_, D_, E_}, lse_.data(), saved_);
  return d;
}

std::array<Tensor, 3> MultiheadAttention::backward(const Tensor& dout) {
  check_trainable("MultiheadAttention.backward");
  CF_CHECK_STATE(attn_.defined(), "MultiheadAttention.backward called before forward (or after a forward under no_grad)");
  CF_CHECK_VALUE(dout.shape() == Shape({B_, L_, E_}), "MultiheadAttention.backward: grad_output: expected shape ",
                 shape_str({B_, L_, E_}), ", got ", shape_str(dout.shape()));
  const Tensor dattn = out_proj_.backward(dout);
  const std::array<Tensor, 3> dproj = attention_grads(dattn);
  const float* W = in_proj_weight_->value.data();
  float* dW = in_proj_weight_->grad_data();
  float* db = in_proj_bias_ ? in_proj_bias_->grad_data() : nullptr;
  std::array<Tensor, 3> dinp;
  if (packed_) {
    const int64_t N = B_ * L_;
    linear_backward(nullptr, dW, db, dproj[0].data(), query_.data(), W, N, E_, 3 * E_, dtype_);
    for (int r = 0; r < 3; ++r) {
      dinp[r] = Tensor::empty({B_, L_, E_});
      // dx_r [N,E] = dqkv[:, rE:(r+1)E] · W_r
      if (dtype_ == DType::BFloat16)
        gemm_bf16(false, false, N, E_, E_, 1.0f, dproj[0].data() + r * E_, 3 * E_, W + r * E_ * E_, E_, 0.0f,
                  dinp[r].data(), E_);
      else
        gemm(false, false, N, E_, E_, 1.0f, dproj[0].data() + r * E_, 3 * E_, W + r * E_ * E_, E_, 0.0f,
             dinp[r].data(), E_);
    }
  } else {
    const Tensor* in[3] = {&query_, &key_, &value_};
    for (int r = 0; r < 3; ++r) {
      const int64_t T = r == 0 ? L_ : S_;
      dinp[r] = Tensor::empty(in[r]->shape());
      linear_backward(dinp[r].data(), dW + r * E_ * E_, db ? db + r * E_ : nullptr, dproj[r].data(), in[r]->data(),
                      W + r * E_ * E_, B_ * T, E_, E_, dtype_, /*accumulate_dinp=*/false);
    }
  }
  return dinp;
}

Tensor MultiheadAttention::backward_self(const Tensor& dout) {
  check_trainable("MultiheadAttention.backward");
  CF_CHECK_STATE(attn_.defined(), "MultiheadAttention.backward called before forward (or after a forward under no_grad)");
  if (!packed_) {
    std::array<Tensor, 3> g = backward(dout);
    CF_CHECK_VALUE(g[0].shape() == g[1].shape(), "backward_self: the last forward was not self-attention");
    float* d = g[0].data();
    const float* a = g[1].data();
    const float* b = g[2].data();
    for (int64_t i = 0; i < g[0].numel(); ++i) d[i] += a[i] + b[i];
    return g[0];
  }
  CF_CHECK_VALUE(dout.shape() == Shape({B_, L_, E_}), "MultiheadAttention.backward: grad_output: expected shape ",
                 shape_str({B_, L_, E_}), ", got ", shape_str(dout.shape()));
  const Tensor dattn = out_proj_.backward(dout);
  const std::array<Tensor, 3> dproj = attention_grads(dattn);
  Tensor dx = Tensor::empty({B_, L_, E_});
  linear_backward(dx.data(), in_proj_weight_->grad_data(), in_proj_bias_ ? in_proj_bias_->grad_data() : nullptr,
                  dproj[0].data(), query_.data(), in_proj_weight_->value.data(), B_ * L_, E_, 3 * E_, dtype_,
                  /*accumulate_dinp=*/false);
  return dx;
}

}  // namespace cpuformer
