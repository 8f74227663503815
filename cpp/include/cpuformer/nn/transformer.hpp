// Stacks and the full encoder-decoder, ~ torch.nn.TransformerEncoder /
// TransformerDecoder / Transformer (batch_first=True). Parameter names follow
// torch: layers.<i>.<layer names>, norm.weight/norm.bias (the optional final
// norm); Transformer: encoder.*, decoder.*.
#pragma once
#include <array>
#include <memory>
#include <vector>

#include "cpuformer/nn/layer_norm.hpp"
#include "cpuformer/nn/transformer_layer.hpp"

namespace cpuformer {

class TransformerEncoder : public Module {
 public:
  // num_layers layers built from `opt`; a final LayerNorm when final_norm
  // (eps norm_eps, or opt.layer_norm_eps when norm_eps <= 0).
  TransformerEncoder(const TransformerLayerOptions& opt, int64_t num_layers, bool final_norm, float norm_eps = 0.0f);
  Tensor forward(const Tensor& src, const AttentionMask& mask = {});
  Tensor backward(const Tensor& dout);
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  TransformerEncoderLayer& layer(int64_t i) { return *layers_.at(static_cast<size_t>(i)); }

 private:
  std::vector<std::unique_ptr<TransformerEncoderLayer>> layers_;
  std::unique_ptr<LayerNorm> norm_;
};

// State of a TransformerDecoder's incremental decoding (start_cached, then
// forward_cached once per position). R decoded rows over Bm memory rows,
// R a multiple of Bm: rows b*G .. b*G+G-1 (G = R / Bm) read memory row b.
struct DecoderCache {
  std::vector<KVCache> self_attn;       // per layer: keys/values of the positions fed [R, capacity, d]
  std::vector<KVCache> memory;          // per layer: cross-attention keys/values [Bm, S, d]
  std::vector<uint8_t> memory_padding;  // [Bm, S] (nonzero = padding) or empty
  int64_t capacity = 0;                 // positions each row may feed
  Tensor scratch;                       // reorder's gather buffer, reused across steps
  // Positions fed so far.
  int64_t len() const { return self_attn.empty() ? 0 : self_attn[0].len; }
  // Row r of every self-attention cache becomes the old row src_rows[r]
  // (beam search keeping the best continuations); src_rows holds R indices in
  // [0, R) and should keep each row within its memory group.
  void reorder(const std::vector<int64_t>& src_rows);
};

class TransformerDecoder : public Module {
 public:
  TransformerDecoder(const TransformerLayerOptions& opt, int64_t num_layers, bool final_norm, float norm_eps = 0.0f);
  Tensor forward(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask = {},
                 const AttentionMask& memory_mask = {});
  std::array<Tensor, 2> backward(const Tensor& dout);  // {dtgt, dmemory}
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }

  // Incremental decoding (inference, nothing saved). start_cached projects
  // memory [Bm, S, d] to every layer's cross-attention keys/values once;
  // memory_padding [Bm, S] or empty; capacity = positions to be fed per row.
  DecoderCache start_cached(const Tensor& memory, const std::vector<uint8_t>& memory_padding, int64_t capacity);
  // tgt [R, Tn, d], the next positions of each row (a prefill or one
  // position) -> [R, Tn, d]: forward() with a causal tgt_mask and
  // memory_padding as memory key padding, restricted to the positions fed
  // (final norm included).
  Tensor forward_cached(const Tensor& tgt, DecoderCache& cache);

 private:
  std::vector<std::unique_ptr<TransformerDecoderLayer>> layers_;
  std::unique_ptr<LayerNorm> norm_;
};

class Transformer : public Module {
 public:
  // Final encoder and decoder norms, as torch.nn.Transformer.
  Transformer(const TransformerLayerOptions& opt, int64_t num_encoder_layers, int64_t num_decoder_layers);
  Tensor forward(const Tensor& src, const Tensor& tgt, const AttentionMask& src_mask = {},
                 const AttentionMask& tgt_mask = {}, const AttentionMask& memory_mask = {});
  std::array<Tensor, 2> backward(const Tensor& dout);  // {dsrc, dtgt}
  // Pieces for decoding loops: encode once, decode many times.
  Tensor encode(const Tensor& src, const AttentionMask& src_mask = {}) { return encoder_.forward(src, src_mask); }
  Tensor decode(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask = {},
                const AttentionMask& memory_mask = {}) {
    return decoder_.forward(tgt, memory, tgt_mask, memory_mask);
  }
  TransformerEncoder& encoder() { return encoder_; }
  TransformerDecoder& decoder() { return decoder_; }

 private:
  TransformerEncoder encoder_;
  TransformerDecoder decoder_;
};

}  // namespace cpuformer
