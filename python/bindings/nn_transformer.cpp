// Encoder/decoder stacks and the full Transformer.
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "cpuformer/nn/transformer.hpp"
#include "nn_common.hpp"

namespace cfpy {

using namespace cpuformer;

void bind_nn_transformer(py::module_& m) {
  // Stacks: the layer's eight arguments, then num_layers, final_norm, norm_eps.
  py::class_<TransformerEncoder, Module, std::shared_ptr<TransformerEncoder>>(m, "TransformerEncoder")
      .def(py::init(layer_factory<TransformerEncoder, int64_t, bool, float>()))
      .def("forward",
           [](TransformerEncoder& self, py::handle src, py::handle mask, py::handle kpm, bool is_causal) {
             return encoder_forward(self, src, mask, kpm, is_causal, "mask");
           })
      .def("backward", &batched_backward<TransformerEncoder>);

  py::class_<TransformerDecoder, Module, std::shared_ptr<TransformerDecoder>>(m, "TransformerDecoder")
      .def(py::init(layer_factory<TransformerDecoder, int64_t, bool, float>()))
      .def("forward", &decoder_forward<TransformerDecoder>)
      .def("backward", &batched_backward<TransformerDecoder>);

  // The layer's eight arguments, then num_encoder_layers, num_decoder_layers.
  py::class_<Transformer, Module, std::shared_ptr<Transformer>>(m, "Transformer")
      .def(py::init(layer_factory<Transformer, int64_t, int64_t>()))
      .def("forward",
           [](Transformer& self, py::handle src, py::handle tgt, py::handle src_mask, py::handle tgt_mask,
              py::handle memory_mask, py::handle src_kpm, py::handle tgt_kpm, py::handle mem_kpm,
              bool tgt_is_causal) {
             bool ub_s = false, ub_t = false;
             Tensor s = batched(src, "src", &ub_s);
             Tensor t = batched(tgt, "tgt", &ub_t);
             if (ub_s != ub_t) throw ValueError("src and tgt must both be batched (3-d) or both unbatched (2-d)");
             AttentionMask sm = make_mask(src_mask, src_kpm, false, "src_mask", "src_key_padding_mask");
             AttentionMask tm = make_mask(tgt_mask, tgt_kpm, tgt_is_causal, "tgt_mask", "tgt_key_padding_mask");
             AttentionMask mm = make_mask(memory_mask, mem_kpm, false, "memory_mask", "memory_key_padding_mask");
             Tensor out = locked(self, [&] { return self.forward(s, t, sm, tm, mm); });
             return unbatched_numpy(out, ub_t);
           })
      .def("backward", &batched_backward<Transformer>);
}

}  // namespace cfpy
