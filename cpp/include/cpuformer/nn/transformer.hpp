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

class TransformerDecoder : public Module {
 public:
  TransformerDecoder(const TransformerLayerOptions& opt, int64_t num_layers, bool final_norm, float norm_eps = 0.0f);
  Tensor forward(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask = {},
                 const AttentionMask& memory_mask = {});
  std::array<Tensor, 2> backward(const Tensor& dout);  // {dtgt, dmemory}
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }

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
