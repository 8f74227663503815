#include "cpuformer/nn/transformer_layer.hpp"

#include "cpuformer/error.hpp"
#include "cpuformer/ops/activations.hpp"
#include "cpuformer/ops/linear.hpp"
#include "cpuformer/runtime/grad_mode.hpp"
#include "cpuformer/runtime/memory.hpp"

namespace cpuformer {
namespace {

const TransformerLayerOptions& validated(const TransformerLayerOptions& o) {
  CF_CHECK_VALUE(o.d_model >= 1, "d_model must be >= 1, got ", o.d_model);
  CF_CHECK_VALUE(o.nhead >= 1, "nhead must be >= 1, got ", o.nhead);
  CF_CHECK_VALUE(o.d_model % o.nhead == 0, "d_model (", o.d_model, ") must be divisible by nhead (", o.nhead, ")");
  CF_CHECK_VALUE(o.dim_feedforward >= 1, "dim_feedforward must be >= 1, got ", o.dim_feedforward);
  CF_CHECK_VALUE(o.dropout >= 0.0f && o.dropout < 1.0f, "dropout must be in [0, 1), got ", o.dropout);
  CF_CHECK_VALUE(o.activation == "relu" || o.activation == "gelu" || o.activation == "gelu_tanh",
                 "activation must be \"relu\", \"gelu\" or \"gelu_tanh\", got \"", o.activation, "\"");
  CF_CHECK_VALUE(o.layer_norm_eps > 0.0f, "layer_norm_eps must be > 0, got ", o.layer_norm_eps);
  return o;
}

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape());
  residual_forward(out.data(), a.data(), b.data(), a.numel());
  return out;
}

// dst += src, for a tensor the caller owns.
void add_into(Tensor& dst, const Tensor& src) { accumulate(dst.data(), src.data(), dst.numel()); }

}  // namespace

TransformerLayerBase::TransformerLayerBase(const TransformerLayerOptions& opt)
    : opt_(validated(opt)),
      linear1_(opt.d_model, opt.dim_feedforward, opt.bias),
      dropout_(opt.dropout),
      linear2_(opt.dim_feedforward, opt.d_model, opt.bias),
      gelu_(opt.activation == "gelu_tanh" ? GeluApproximate::Tanh : GeluApproximate::None),
      use_gelu_(opt.activation != "relu") {}

void TransformerLayerBase::check_input(const Tensor& x, const char* name) const {
  CF_CHECK_VALUE(x.dim() == 3, name, ": expected a 3-d [batch, seq, ", opt_.d_model, "] array, got shape ",
                 shape_str(x.shape()));
  check_last_dim(x, opt_.d_model, name);
}

Tensor TransformerLayerBase::ff_forward(const Tensor& x) {
  if (!saves_activations() && !(training() && dropout_.p() > 0.0f)) {
    // Nothing to save and nothing to drop: the fused path (bias and
    // activation in the first product's epilogue). Inputs saved by an
    // earlier forward must not outlive this one.
    linear1_.forget();
    linear2_.forget();
    gelu_.forget();
    relu_.forget();
    return ff_inference(x);
  }
  Tensor h = linear1_.forward(x);
  h = use_gelu_ ? gelu_.forward(h) : relu_.forward(h);
  return linear2_.forward(dropout_.forward(h));
}

Tensor TransformerLayerBase::ff_inference(const Tensor& x) {
  Tensor h = Tensor::empty({x.numel() / opt_.d_model, opt_.dim_feedforward});
  const Activation act = !use_gelu_ ? Activation::Relu
                         : gelu_.approximate() == GeluApproximate::Tanh ? Activation::GeluTanh
                                                                        : Activation::Gelu;
  weight_linear(h.data(), x.data(), linear1_.weight(), linear1_.bias() ? linear1_.bias()->value.data() : nullptr,
                x.numel() / opt_.d_model, act);
  Tensor out = Tensor::empty(x.shape());
  weight_linear(out.data(), h.data(), linear2_.weight(), linear2_.bias() ? linear2_.bias()->value.data() : nullptr,
                x.numel() / opt_.d_model);
  return out;
}

Tensor TransformerLayerBase::ff_backward(const Tensor& dout) {
  Tensor d = dropout_.backward(linear2_.backward(dout));
  d = use_gelu_ ? gelu_.backward(d) : relu_.backward(d);
  return linear1_.backward(d);
}

void check_encoder_config(const char* config, int64_t n_layer, int64_t n_head, int64_t hidden_size,
                          int64_t intermediate_size, float dropout, float layer_norm_eps,
                          const std::string& activation) {
  CF_CHECK_VALUE(n_layer >= 1, config, ".n_layer must be >= 1, got ", n_layer);
  CF_CHECK_VALUE(n_head >= 1, config, ".n_head must be >= 1, got ", n_head);
  CF_CHECK_VALUE(hidden_size >= 1, config, ".hidden_size must be >= 1, got ", hidden_size);
  CF_CHECK_VALUE(hidden_size % n_head == 0, config, ": hidden_size (", hidden_size, ") must be divisible by n_head (",
                 n_head, ")");
  CF_CHECK_VALUE(intermediate_size >= 1, config, ".intermediate_size must be >= 1, got ", intermediate_size);
  CF_CHECK_VALUE(dropout >= 0.0f && dropout < 1.0f, config, ".dropout must be in [0, 1), got ", dropout);
  CF_CHECK_VALUE(layer_norm_eps > 0.0f, config, ".layer_norm_eps must be > 0, got ", layer_norm_eps);
  CF_CHECK_VALUE(activation == "gelu" || activation == "gelu_tanh" || activation == "relu", config,
                 ".activation must be \"gelu\", \"gelu_tanh\" or \"relu\", got \"", activation, "\"");
}

void check_layer_stack(const char* what, int64_t num_layers, const TransformerLayerOptions& opt, bool decoder) {
  const int64_t E = opt.d_model, F = opt.dim_feedforward;
  // Self-attention (4 E x E) and the feed-forward pair (2 E x F), plus
  // cross-attention in decoder layers; biases and norms are O(E + F).
  const auto mul = saturating_mul;
  const auto sum = saturating_add;
  int64_t per_layer = sum(mul(decoder ? 8 : 4, mul(E, E)), mul(2, mul(E, F)));
  per_layer = sum(per_layer, mul(16, sum(E, F)));
  if (opt.attention.kind == AttentionKind::Linformer)
    per_layer = sum(per_layer, mul(2, mul(opt.attention.linformer_k, opt.attention.max_len)));
  const int64_t kLayerObjectBytes = 16 << 10;  // modules, names and bookkeeping of one layer
  const int64_t bytes = mul(num_layers, sum(mul(per_layer, int64_t{sizeof(float)}), kLayerObjectBytes));
  const int64_t have = physical_memory_bytes();
  CF_CHECK_VALUE(bytes <= have, what, ": ", num_layers, " layers of width ", E, " (feed-forward ", F,
                 ") need about ", bytes / (1 << 20), " MiB, more than this machine's ", have / (1 << 20),
                 " MiB of memory");
}

TransformerEncoderLayer::TransformerEncoderLayer(const TransformerLayerOptions& opt)
    : TransformerLayerBase(opt),
      self_attn_(opt.d_model, opt.nhead, opt.dropout, opt.bias, opt.attention),
      norm1_(opt.d_model, opt.layer_norm_eps, opt.bias),
      norm2_(opt.d_model, opt.layer_norm_eps, opt.bias),
      dropout1_(opt.dropout),
      dropout2_(opt.dropout) {
  // torch's registration order, so state_dict() lists keys the same way.
  register_module("self_attn", &self_attn_);
  register_module("linear1", &linear1_);
  register_module("dropout", &dropout_);
  register_module("linear2", &linear2_);
  register_module("norm1", &norm1_);
  register_module("norm2", &norm2_);
  register_module("dropout1", &dropout1_);
  register_module("dropout2", &dropout2_);
}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const AttentionMask& mask) {
  check_input(src, "src");
  if (!saves_activations() && !(training() && opt_.dropout > 0.0f)) {
    // Inference: each residual add fused with the LayerNorm that reads it.
    // The norms' forwards are bypassed, so what an earlier forward saved in
    // them must go (a backward now raises, as after any no-grad forward).
    norm1_.forget();
    norm2_.forget();
    if (opt_.norm_first) {
      Tensor x1;
      const Tensor h = norm2_.add_inference(src, self_attn_.forward_self(norm1_.forward(src), mask), &x1);
      return add(x1, ff_forward(h));
    }
    const Tensor x1 = norm1_.add_inference(src, self_attn_.forward_self(src, mask));
    return norm2_.add_inference(x1, ff_forward(x1));
  }
  if (opt_.norm_first) {
    const Tensor x1 = add(src, dropout1_.forward(self_attn_.forward_self(norm1_.forward(src), mask)));
    return add(x1, dropout2_.forward(ff_forward(norm2_.forward(x1))));
  }
  const Tensor x1 = norm1_.forward(add(src, dropout1_.forward(self_attn_.forward_self(src, mask))));
  return norm2_.forward(add(x1, dropout2_.forward(ff_forward(x1))));
}

Tensor TransformerEncoderLayer::backward(const Tensor& dout) {
  check_trainable("TransformerEncoderLayer.backward");
  if (opt_.norm_first) {
    Tensor dx1 = dout.clone();
    add_into(dx1, norm2_.backward(ff_backward(dropout2_.backward(dout))));
    Tensor dsrc = dx1.clone();
    add_into(dsrc, norm1_.backward(self_attn_.backward_self(dropout1_.backward(dx1))));
    return dsrc;
  }
  Tensor dx1 = norm2_.backward(dout);  // grad of x1 + ff(x1): owned, fresh
  const Tensor g = ff_backward(dropout2_.backward(dx1));
  add_into(dx1, g);
  Tensor dsrc = norm1_.backward(dx1);
  const Tensor ga = self_attn_.backward_self(dropout1_.backward(dsrc));
  add_into(dsrc, ga);
  return dsrc;
}

Tensor TransformerEncoderLayer::forward_cached(const Tensor& src, KVCache& cache, int64_t capacity,
                                               const uint8_t* key_padding) {
  check_input(src, "src");
  if (opt_.norm_first) {
    const Tensor x1 = add(src, self_attn_.forward_cached(norm1_.inference(src), cache, capacity, key_padding));
    return add(x1, ff_inference(norm2_.inference(x1)));
  }
  const Tensor x1 = norm1_.inference(add(src, self_attn_.forward_cached(src, cache, capacity, key_padding)));
  return norm2_.inference(add(x1, ff_inference(x1)));
}

TransformerDecoderLayer::TransformerDecoderLayer(const TransformerLayerOptions& opt)
    : TransformerLayerBase(opt),
      self_attn_(opt.d_model, opt.nhead, opt.dropout, opt.bias),
      multihead_attn_(opt.d_model, opt.nhead, opt.dropout, opt.bias),
      norm1_(opt.d_model, opt.layer_norm_eps, opt.bias),
      norm2_(opt.d_model, opt.layer_norm_eps, opt.bias),
      norm3_(opt.d_model, opt.layer_norm_eps, opt.bias),
      dropout1_(opt.dropout),
      dropout2_(opt.dropout),
      dropout3_(opt.dropout) {
  CF_CHECK_VALUE(opt.attention.kind == AttentionKind::Full, "TransformerDecoderLayer: only attention=\"full\" is "
                 "supported, got \"", attention_kind_name(opt.attention.kind), "\"");
  register_module("self_attn", &self_attn_);
  register_module("multihead_attn", &multihead_attn_);
  register_module("linear1", &linear1_);
  register_module("dropout", &dropout_);
  register_module("linear2", &linear2_);
  register_module("norm1", &norm1_);
  register_module("norm2", &norm2_);
  register_module("norm3", &norm3_);
  register_module("dropout1", &dropout1_);
  register_module("dropout2", &dropout2_);
  register_module("dropout3", &dropout3_);
}

Tensor TransformerDecoderLayer::forward(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask,
                                        const AttentionMask& memory_mask) {
  check_input(tgt, "tgt");
  check_input(memory, "memory");
  CF_CHECK_VALUE(memory.size(0) == tgt.size(0), "memory: expected batch size ", tgt.size(0), " (from tgt), got ",
                 memory.size(0));
  if (opt_.norm_first) {
    const Tensor x1 = add(tgt, dropout1_.forward(self_attn_.forward_self(norm1_.forward(tgt), tgt_mask)));
    const Tensor x2 =
        add(x1, dropout2_.forward(multihead_attn_.forward(norm2_.forward(x1), memory, memory, memory_mask)));
    return add(x2, dropout3_.forward(ff_forward(norm3_.forward(x2))));
  }
  const Tensor x1 = norm1_.forward(add(tgt, dropout1_.forward(self_attn_.forward_self(tgt, tgt_mask))));
  const Tensor x2 = norm2_.forward(add(x1, dropout2_.forward(multihead_attn_.forward(x1, memory, memory, memory_mask))));
  return norm3_.forward(add(x2, dropout3_.forward(ff_forward(x2))));
}

std::array<Tensor, 2> TransformerDecoderLayer::backward(const Tensor& dout) {
  check_trainable("TransformerDecoderLayer.backward");
  if (opt_.norm_first) {
    Tensor dx2 = dout.clone();
    add_into(dx2, norm3_.backward(ff_backward(dropout3_.backward(dout))));
    std::array<Tensor, 3> g = multihead_attn_.backward(dropout2_.backward(dx2));
    Tensor dx1 = dx2.clone();
    add_into(dx1, norm2_.backward(g[0]));
    add_into(g[1], g[2]);
    Tensor dtgt = dx1.clone();
    add_into(dtgt, norm1_.backward(self_attn_.backward_self(dropout1_.backward(dx1))));
    return {dtgt, g[1]};
  }
  Tensor dx2 = norm3_.backward(dout);
  const Tensor gf = ff_backward(dropout3_.backward(dx2));
  add_into(dx2, gf);
  Tensor dx1 = norm2_.backward(dx2);
  std::array<Tensor, 3> g = multihead_attn_.backward(dropout2_.backward(dx1));
  add_into(dx1, g[0]);
  add_into(g[1], g[2]);
  Tensor dtgt = norm1_.backward(dx1);
  const Tensor ga = self_attn_.backward_self(dropout1_.backward(dtgt));
  add_into(dtgt, ga);
  return {dtgt, g[1]};
}

KVCache TransformerDecoderLayer::memory_kv(const Tensor& memory) {
  check_input(memory, "memory");
  return multihead_attn_.project_kv(memory);
}

Tensor TransformerDecoderLayer::forward_cached(const Tensor& tgt, KVCache& cache, int64_t capacity,
                                               const KVCache& memory_kv, const std::vector<uint8_t>& memory_padding) {
  check_input(tgt, "tgt");
  // Checked before the self-attention cache takes the new positions.
  const int64_t Bm = memory_kv.k.defined() ? memory_kv.k.size(0) : 0;
  CF_CHECK_VALUE(Bm >= 1 && tgt.size(0) % Bm == 0, "tgt: batch size ", tgt.size(0),
                 " is not a multiple of the memory's batch size ", Bm);
  if (opt_.norm_first) {
    const Tensor x1 = add(tgt, self_attn_.forward_cached(norm1_.inference(tgt), cache, capacity));
    const Tensor x2 = add(x1, multihead_attn_.forward_kv(norm2_.inference(x1), memory_kv, memory_padding));
    return add(x2, ff_inference(norm3_.inference(x2)));
  }
  const Tensor x1 = norm1_.inference(add(tgt, self_attn_.forward_cached(tgt, cache, capacity)));
  const Tensor x2 = norm2_.inference(add(x1, multihead_attn_.forward_kv(x1, memory_kv, memory_padding)));
  return norm3_.inference(add(x2, ff_inference(x2)));
}

}  // namespace cpuformer
