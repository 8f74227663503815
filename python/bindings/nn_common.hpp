// Helpers shared by the nn binding files.
#pragma once
#include <memory>

#include <mutex>

#include "convert.hpp"
#include "cpuformer/nn/module.hpp"
#include "cpuformer/nn/transformer_layer.hpp"

namespace cfpy {

using cpuformer::AttentionMask;
using cpuformer::TransformerLayerOptions;

// Constructs a module that is the root of its own parameter tree and moves
// its parameters into flat buffers.
template <class M, class... Args>
std::shared_ptr<M> make_root(Args... args) {
  std::shared_ptr<M> p;
  {
    py::gil_scoped_release nogil;
    p = std::make_shared<M>(args...);
    p->flatten_parameters();
  }
  return p;
}

// One tensor in, one tensor out, GIL released around the C++ call.
template <class M, class F>
py::array_t<float> call1(M& self, F fn, py::handle x, const char* name) {
  Tensor t = to_tensor(x, name);
  Tensor y;
  {
    py::gil_scoped_release nogil;
    std::lock_guard<std::mutex> guard(self.call_mutex());
    y = (self.*fn)(t);
  }
  return to_numpy(y);
}

// Mask arguments in torch.nn.MultiheadAttention form -> AttentionMask
// (nn_attention.cpp): boolean True = not allowed, floats are added.
AttentionMask make_mask(py::handle attn_mask, py::handle key_padding_mask, bool is_causal, const char* attn_name,
                        const char* kpm_name);
// [B, T, E] or unbatched [T, E] (reshaped to [1, T, E]; *unbatched set).
Tensor batched(py::handle x, const char* name, bool* unbatched);
Tensor unbatch(const Tensor& t, bool unbatched);
TransformerLayerOptions layer_options(int64_t d_model, int64_t nhead, int64_t dim_feedforward, float dropout,
                                      const std::string& activation, float layer_norm_eps, bool norm_first,
                                      bool bias);

// Modules registered from other files.
void bind_nn_layers(py::module_& m);  // nn_layers.cpp: LayerNorm, Dropout, ReLU, GELU
void bind_nn_attention(py::module_& m);  // nn_attention.cpp: MultiheadAttention, Transformer*Layer
void bind_nn_embed_loss(py::module_& m);  // nn_embed_loss.cpp: Embedding, CrossEntropyLoss
void bind_nn_transformer(py::module_& m);  // nn_transformer.cpp: TransformerEncoder/Decoder, Transformer

}  // namespace cfpy
