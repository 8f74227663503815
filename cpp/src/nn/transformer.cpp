#include "cpuformer/nn/transformer.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "cpuformer/error.hpp"
#include "cpuformer/ops/activations.hpp"
#include "cpuformer/runtime/threads.hpp"

namespace cpuformer {

TransformerEncoder::TransformerEncoder(const TransformerLayerOptions& opt, int64_t num_layers, bool final_norm,
                                        float norm_eps) {
  CF_CHECK_VALUE(num_layers >= 1, "num_layers must be >= 1, got ", num_layers);
  check_layer_stack("num_layers", num_layers, opt, false);
  for (int64_t i = 0; i < num_layers; ++i) {
    layers_.push_back(std::make_unique<TransformerEncoderLayer>(opt));
    register_module("layers." + std::to_string(i), layers_.back().get());
  }
  if (final_norm) {
    norm_ = std::make_unique<LayerNorm>(opt.d_model, norm_eps > 0.0f ? norm_eps : opt.layer_norm_eps, opt.bias);
    register_module("norm", norm_.get());
  }
}

Tensor TransformerEncoder::forward(const Tensor& src, const AttentionMask& mask) {
  Tensor x = src;
  for (auto& l : layers_) x = l->forward(x, mask);
  return norm_ ? norm_->forward(x) : x;
}

Tensor TransformerEncoder::backward(const Tensor& dout) {
  check_trainable("TransformerEncoder.backward");
  Tensor d = norm_ ? norm_->backward(dout) : dout;
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) d = (*it)->backward(d);
  return d;
}

TransformerDecoder::TransformerDecoder(const TransformerLayerOptions& opt, int64_t num_layers, bool final_norm,
                                        float norm_eps) {
  CF_CHECK_VALUE(num_layers >= 1, "num_layers must be >= 1, got ", num_layers);
  check_layer_stack("num_layers", num_layers, opt, true);
  for (int64_t i = 0; i < num_layers; ++i) {
    layers_.push_back(std::make_unique<TransformerDecoderLayer>(opt));
    register_module("layers." + std::to_string(i), layers_.back().get());
  }
  if (final_norm) {
    norm_ = std::make_unique<LayerNorm>(opt.d_model, norm_eps > 0.0f ? norm_eps : opt.layer_norm_eps, opt.bias);
    register_module("norm", norm_.get());
  }
}

Tensor TransformerDecoder::forward(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask,
                                   const AttentionMask& memory_mask) {
  Tensor x = tgt;
  for (auto& l : layers_) x = l->forward(x, memory, tgt_mask, memory_mask);
  return norm_ ? norm_->forward(x) : x;
}

std::array<Tensor, 2> TransformerDecoder::backward(const Tensor& dout) {
  check_trainable("TransformerDecoder.backward");
  Tensor d = norm_ ? norm_->backward(dout) : dout;
  Tensor dmem;
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    std::array<Tensor, 2> g = (*it)->backward(d);
    d = g[0];
    if (!dmem.defined())
      dmem = g[1];
    else
      accumulate(dmem.data(), g[1].data(), dmem.numel());
  }
  return {d, dmem};
}

DecoderCache TransformerDecoder::start_cached(const Tensor& memory, const std::vector<uint8_t>& memory_padding,
                                              int64_t capacity) {
  CF_CHECK_VALUE(memory.dim() == 3 && memory.size(0) >= 1,
                 "memory: expected a non-empty [batch, S, d_model] array, got ", shape_str(memory.shape()));
  const int64_t Bm = memory.size(0), S = memory.size(1);
  CF_CHECK_VALUE(memory_padding.empty() || static_cast<int64_t>(memory_padding.size()) == Bm * S,
                 "memory_key_padding_mask: expected shape [", Bm, ", ", S, "], got ", memory_padding.size(),
                 " elements");
  CF_CHECK_VALUE(capacity >= 1, "capacity must be >= 1, got ", capacity);
  DecoderCache c;
  c.self_attn.resize(layers_.size());
  for (auto& l : layers_) c.memory.push_back(l->memory_kv(memory));
  c.memory_padding = memory_padding;
  c.capacity = capacity;
  return c;
}

Tensor TransformerDecoder::forward_cached(const Tensor& tgt, DecoderCache& cache) {
  CF_CHECK_VALUE(cache.self_attn.size() == layers_.size() && cache.memory.size() == layers_.size(),
                 "DecoderCache: expected one from this decoder's start_cached (", layers_.size(), " layers), got ",
                 cache.self_attn.size());
  Tensor x = tgt;
  for (size_t i = 0; i < layers_.size(); ++i)
    x = layers_[i]->forward_cached(x, cache.self_attn[i], cache.capacity, cache.memory[i], cache.memory_padding);
  return norm_ ? norm_->inference(x) : x;
}

void DecoderCache::reorder(const std::vector<int64_t>& src_rows) {
  const int64_t n = static_cast<int64_t>(src_rows.size());
  bool identity = true;
  for (int64_t r = 0; r < n; ++r) {
    CF_CHECK_INDEX(src_rows[r] >= 0 && src_rows[r] < n, "src_rows: index ", src_rows[r], " at position ", r,
                   " is out of range [0, ", n, ")");
    identity = identity && src_rows[r] == r;
  }
  if (identity) return;
  for (KVCache& c : self_attn) {
    if (!c.k.defined() || c.len == 0) continue;
    const int64_t R = c.k.size(0), cap = c.capacity(), E = c.k.size(2), len = c.len;
    CF_CHECK_VALUE(n == R, "src_rows: expected ", R, " rows (the cache's batch size), got ", n);
    if (!scratch.defined() || scratch.shape() != c.k.shape()) scratch = Tensor::empty(c.k.shape());
    for (Tensor* t : {&c.k, &c.v}) {
      // scratch[r, :len] = t[src_rows[r], :len]; then scratch and t trade buffers.
      const float* from = t->data();
      float* to = scratch.data();
#pragma omp parallel for schedule(static) if (R * len * E >= kParallelMinWork)
      for (int64_t r = 0; r < R; ++r)
        std::copy(from + src_rows[r] * cap * E, from + (src_rows[r] * cap + len) * E, to + r * cap * E);
      std::swap(*t, scratch);
    }
  }
}

Transformer::Transformer(const TransformerLayerOptions& opt, int64_t num_encoder_layers, int64_t num_decoder_layers)
    : encoder_(opt, num_encoder_layers, true), decoder_(opt, num_decoder_layers, true) {
  register_module("encoder", &encoder_);
  register_module("decoder", &decoder_);
}

Tensor Transformer::forward(const Tensor& src, const Tensor& tgt, const AttentionMask& src_mask,
                            const AttentionMask& tgt_mask, const AttentionMask& memory_mask) {
  CF_CHECK_VALUE(src.dim() == 3 && tgt.dim() == 3 && src.size(0) == tgt.size(0),
                 "src and tgt: expected [batch, seq, d_model] arrays with the same batch size, got ",
                 shape_str(src.shape()), " and ", shape_str(tgt.shape()));
  const Tensor memory = encoder_.forward(src, src_mask);
  return decoder_.forward(tgt, memory, tgt_mask, memory_mask);
}

std::array<Tensor, 2> Transformer::backward(const Tensor& dout) {
  check_trainable("Transformer.backward");
  std::array<Tensor, 2> g = decoder_.backward(dout);
  return {encoder_.backward(g[1]), g[0]};
}

}  // namespace cpuformer
