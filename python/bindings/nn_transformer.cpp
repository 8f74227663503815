// Encoder/decoder stacks and the full Transformer.
#include <pybind11/stl.h>

#include <mutex>

#include "bindings.hpp"
#include "cpuformer/nn/transformer.hpp"
#include "nn_common.hpp"

namespace cfpy {

using namespace cpuformer;

namespace {
#define CF_LAYER_ARGS                                                                                            \
  int64_t d_model, int64_t nhead, int64_t dim_feedforward, float dropout, const std::string &activation,       \
      float layer_norm_eps, bool norm_first, bool bias
#define CF_LAYER_OPTS layer_options(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, norm_first, bias)
}  // namespace

void bind_nn_transformer(py::module_& m) {
  py::class_<TransformerEncoder, Module, std::shared_ptr<TransformerEncoder>>(m, "TransformerEncoder")
      .def(py::init([](CF_LAYER_ARGS, int64_t num_layers, bool final_norm, float norm_eps) {
        return make_root<TransformerEncoder>(CF_LAYER_OPTS, num_layers, final_norm, norm_eps);
      }))
      .def("forward",
           [](TransformerEncoder& self, py::handle src, py::handle mask, py::handle kpm, bool is_causal) {
             bool ub = false;
             Tensor x = batched(src, "src", &ub);
             AttentionMask am = make_mask(mask, kpm, is_causal, "mask", "src_key_padding_mask");
             Tensor out;
             {
               py::gil_scoped_release nogil;
               std::lock_guard<std::mutex> guard(self.call_mutex());
               out = self.forward(x, am);
             }
             return to_numpy(unbatch(out, ub));
           })
      .def("backward", [](TransformerEncoder& self, py::handle g) {
        bool ub = false;
        Tensor t = batched(g, "grad_output", &ub);
        Tensor d;
        {
          py::gil_scoped_release nogil;
          std::lock_guard<std::mutex> guard(self.call_mutex());
          d = self.backward(t);
        }
        return to_numpy(unbatch(d, ub));
      });

  py::class_<TransformerDecoder, Module, std::shared_ptr<TransformerDecoder>>(m, "TransformerDecoder")
      .def(py::init([](CF_LAYER_ARGS, int64_t num_layers, bool final_norm, float norm_eps) {
        return make_root<TransformerDecoder>(CF_LAYER_OPTS, num_layers, final_norm, norm_eps);
      }))
      .def("forward",
           [](TransformerDecoder& self, py::handle tgt, py::handle memory, py::handle tgt_mask, py::handle memory_mask,
              py::handle tgt_kpm, py::handle mem_kpm, bool tgt_is_causal, bool memory_is_causal) {
             bool ub_t = false, ub_m = false;
             Tensor t = batched(tgt, "tgt", &ub_t);
             Tensor mem = batched(memory, "memory", &ub_m);
             if (ub_t != ub_m) throw ValueError("tgt and memory must both be batched (3-d) or both unbatched (2-d)");
             AttentionMask tm = make_mask(tgt_mask, tgt_kpm, tgt_is_causal, "tgt_mask", "tgt_key_padding_mask");
             AttentionMask mm =
                 make_mask(memory_mask, mem_kpm, memory_is_causal, "memory_mask", "memory_key_padding_mask");
             Tensor out;
             {
               py::gil_scoped_release nogil;
               std::lock_guard<std::mutex> guard(self.call_mutex());
               out = self.forward(t, mem, tm, mm);
             }
             return to_numpy(unbatch(out, ub_t));
           })
      .def("backward", [](TransformerDecoder& self, py::handle g) {
        bool ub = false;
        Tensor t = batched(g, "grad_output", &ub);
        std::array<Tensor, 2> d;
        {
          py::gil_scoped_release nogil;
          std::lock_guard<std::mutex> guard(self.call_mutex());
          d = self.backward(t);
        }
        return py::make_tuple(to_numpy(unbatch(d[0], ub)), to_numpy(unbatch(d[1], ub)));
      });

  py::class_<Transformer, Module, std::shared_ptr<Transformer>>(m, "Transformer")
      .def(py::init([](CF_LAYER_ARGS, int64_t num_encoder_layers, int64_t num_decoder_layers) {
        return make_root<Transformer>(CF_LAYER_OPTS, num_encoder_layers, num_decoder_layers);
      }))
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
             Tensor out;
             {
               py::gil_scoped_release nogil;
               std::lock_guard<std::mutex> guard(self.call_mutex());
               out = self.forward(s, t, sm, tm, mm);
             }
             return to_numpy(unbatch(out, ub_t));
           })
      .def("backward", [](Transformer& self, py::handle g) {
        bool ub = false;
        Tensor t = batched(g, "grad_output", &ub);
        std::array<Tensor, 2> d;
        {
          py::gil_scoped_release nogil;
          std::lock_guard<std::mutex> guard(self.call_mutex());
          d = self.backward(t);
        }
        return py::make_tuple(to_numpy(unbatch(d[0], ub)), to_numpy(unbatch(d[1], ub)));
      });
}

}  // namespace cfpy
