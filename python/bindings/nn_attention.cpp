// MultiheadAttention and the transformer layers. Masks follow
// torch.nn.MultiheadAttention: boolean True = "may not attend" (turned into
// -inf here), float masks are added to the scores.
#include <pybind11/stl.h>

#include <cstring>
#include <limits>

#include "bindings.hpp"
#include "cpuformer/nn/multihead_attention.hpp"
#include "cpuformer/nn/transformer_layer.hpp"
#include "nn_common.hpp"

namespace cfpy {

using namespace cpuformer;

AttentionMask make_mask(py::handle attn_mask, py::handle key_padding_mask, bool is_causal, const char* attn_name,
                        const char* kpm_name) {
  AttentionMask m;
  m.is_causal = is_causal;
  if (!attn_mask.is_none()) {
    bool is_bool = false;
    py::array a = as_mask(attn_mask, attn_name, &is_bool);
    check_ndim_range(a, 2, 3, attn_name);
    m.attn_mask = Tensor::empty(shape_of(a));
    float* dst = m.attn_mask.data();
    const int64_t n = m.attn_mask.numel();
    if (is_bool) {
      const uint8_t* src = static_cast<const uint8_t*>(a.data());
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i] ? -std::numeric_limits<float>::infinity() : 0.0f;
    } else if (n) {
      std::memcpy(dst, a.data(), sizeof(float) * n);
    }
  }
  if (!key_padding_mask.is_none()) {
    bool is_bool = false;
    py::array a = as_mask(key_padding_mask, kpm_name, &is_bool);
    check_ndim_range(a, 1, 2, kpm_name);  // [B, S], or [S] for unbatched input
    if (is_bool) {
      const uint8_t* src = static_cast<const uint8_t*>(a.data());
      m.key_padding.assign(src, src + a.size());  // the module checks the count against B * S
    } else {
      m.key_padding_additive = Tensor::empty(a.ndim() == 2 ? shape_of(a) : Shape{1, static_cast<int64_t>(a.size())});
      if (a.size()) std::memcpy(m.key_padding_additive.data(), a.data(), sizeof(float) * a.size());
    }
  }
  return m;
}

// Accepts [B, T, E] or unbatched [T, E] (returned unbatched, like torch).
Tensor batched(py::handle x, const char* name, bool* unbatched) {
  Tensor t = to_tensor(x, name);
  *unbatched = t.dim() == 2;
  if (*unbatched) t = t.reshape({1, t.size(0), t.size(1)});
  return t;
}

Tensor unbatch(const Tensor& t, bool unbatched) { return unbatched ? t.reshape({t.size(1), t.size(2)}) : t; }

TransformerLayerOptions layer_options(int64_t d_model, int64_t nhead, int64_t dim_feedforward, float dropout,
                                      const std::string& activation, float layer_norm_eps, bool norm_first,
                                      bool bias) {
  TransformerLayerOptions o;
  o.d_model = d_model;
  o.nhead = nhead;
  o.dim_feedforward = dim_feedforward;
  o.dropout = dropout;
  o.activation = activation;
  o.layer_norm_eps = layer_norm_eps;
  o.norm_first = norm_first;
  o.bias = bias;
  return o;
}

namespace {

// A transformer layer class with its constructor (torch's arguments and
// defaults) and backward; the caller adds forward.
template <class L>
py::class_<L, Module, std::shared_ptr<L>> bind_layer(py::module_& m, const char* name) {
  py::class_<L, Module, std::shared_ptr<L>> cls(m, name);
  cls.def(py::init(layer_factory<L>()), py::arg("d_model"), py::arg("nhead"), py::arg("dim_feedforward") = 2048,
          py::arg("dropout") = 0.1f, py::arg("activation") = "relu", py::arg("layer_norm_eps") = 1e-5f,
          py::arg("norm_first") = false, py::arg("bias") = true)
      .def("backward", &batched_backward<L>);
  return cls;
}

}  // namespace

void bind_nn_attention(py::module_& m) {
  py::class_<MultiheadAttention, Module, std::shared_ptr<MultiheadAttention>>(m, "MultiheadAttention")
      .def(py::init(&make_root<MultiheadAttention, int64_t, int64_t, float, bool>), py::arg("embed_dim"),
           py::arg("num_heads"), py::arg("dropout") = 0.0f, py::arg("bias") = true)
      .def(
          "forward",
          [](MultiheadAttention& self, py::handle query, py::handle key, py::handle value, py::handle key_padding_mask,
             py::handle attn_mask, bool is_causal) {
            bool ub_q = false, ub_k = false, ub_v = false;
            Tensor q = batched(query, "query", &ub_q);
            const bool self_attn = query.is(key) && key.is(value);
            Tensor k = self_attn ? q : batched(key, "key", &ub_k);
            Tensor v = self_attn ? q : batched(value, "value", &ub_v);
            if (!self_attn && (ub_q != ub_k || ub_q != ub_v))
              throw ValueError("query, key and value must all be batched (3-d) or all unbatched (2-d)");
            AttentionMask mask = make_mask(attn_mask, key_padding_mask, is_causal, "attn_mask", "key_padding_mask");
            Tensor out = inference_call(self, [&](MultiheadAttention& m) { return m.forward(q, k, v, mask); });
            return unbatched_numpy(out, ub_q);
          },
          py::arg("query"), py::arg("key"), py::arg("value"), py::arg("key_padding_mask") = py::none(),
          py::arg("attn_mask") = py::none(), py::arg("is_causal") = false)
      .def("backward", &batched_backward<MultiheadAttention>);

  bind_layer<TransformerEncoderLayer>(m, "TransformerEncoderLayer")
      .def(
          "forward",
          [](TransformerEncoderLayer& self, py::handle src, py::handle src_mask, py::handle src_key_padding_mask,
             bool is_causal) {
            return encoder_forward(self, src, src_mask, src_key_padding_mask, is_causal, "src_mask");
          },
          py::arg("src"), py::arg("src_mask") = py::none(), py::arg("src_key_padding_mask") = py::none(),
          py::arg("is_causal") = false);

  bind_layer<TransformerDecoderLayer>(m, "TransformerDecoderLayer")
      .def("forward", &decoder_forward<TransformerDecoderLayer>, py::arg("tgt"), py::arg("memory"),
           py::arg("tgt_mask") = py::none(), py::arg("memory_mask") = py::none(),
           py::arg("tgt_key_padding_mask") = py::none(), py::arg("memory_key_padding_mask") = py::none(),
           py::arg("tgt_is_causal") = false, py::arg("memory_is_causal") = false);
}

}  // namespace cfpy
