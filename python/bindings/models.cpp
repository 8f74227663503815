// Whole models: GPT (more families arrive in their own files).
#include <pybind11/stl.h>

#include <mutex>
#include <shared_mutex>

#include "bindings.hpp"
#include "convert.hpp"
#include "cpuformer/models/gpt.hpp"
#include "cpuformer/models/seq2seq.hpp"
#include "nn_common.hpp"

namespace cfpy {

using namespace cpuformer;

namespace {

std::vector<uint8_t> padding_of(py::handle mask, int64_t B, int64_t S) {
  std::vector<uint8_t> out;
  if (mask.is_none()) return out;
  py::array a = py::array::ensure(mask);
  if (!a || a.dtype().kind() != 'b')
    throw TypeError("src_key_padding_mask: expected a boolean array (True = padding)");
  auto u = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(a);
  if (shape_of(u) != Shape({B, S}))
    throw ValueError(str_cat("src_key_padding_mask: expected shape [", B, ", ", S, "], got ", shape_str(u)));
  out.assign(u.data(), u.data() + u.size());
  return out;
}

}  // namespace

void bind_models(py::module_& m) {
  py::class_<GPTConfig>(m, "GPTConfigCore")
      .def(py::init<>())
      .def_readwrite("vocab_size", &GPTConfig::vocab_size)
      .def_readwrite("block_size", &GPTConfig::block_size)
      .def_readwrite("n_layer", &GPTConfig::n_layer)
      .def_readwrite("n_head", &GPTConfig::n_head)
      .def_readwrite("n_embd", &GPTConfig::n_embd)
      .def_readwrite("dropout", &GPTConfig::dropout)
      .def_readwrite("bias", &GPTConfig::bias)
      .def_readwrite("layer_norm_eps", &GPTConfig::layer_norm_eps)
      .def_readwrite("activation", &GPTConfig::activation)
      .def_readwrite("n_inner", &GPTConfig::n_inner)
      .def_readwrite("attention", &GPTConfig::attention)
      .def_readwrite("attention_window", &GPTConfig::attention_window)
      .def_readwrite("num_global", &GPTConfig::num_global)
      .def_readwrite("num_features", &GPTConfig::num_features)
      .def_readwrite("linformer_k", &GPTConfig::linformer_k)
      .def_readwrite("bigbird_block_size", &GPTConfig::bigbird_block_size)
      .def_readwrite("num_window_blocks", &GPTConfig::num_window_blocks)
      .def_readwrite("num_global_blocks", &GPTConfig::num_global_blocks)
      .def_readwrite("num_random_blocks", &GPTConfig::num_random_blocks)
      .def_readwrite("bigbird_seed", &GPTConfig::bigbird_seed);

  py::class_<GPT, Module, std::shared_ptr<GPT>>(m, "GPT")
      .def(py::init(&make_root<GPT, GPTConfig>), py::arg("config"))
      .def("forward",
           [](GPT& self, py::handle idx, py::handle attention_mask) {
             IndexArray ids = ids_2d(idx, "idx");
             const std::vector<uint8_t> pad = padding_from_attention_mask(attention_mask, ids);
             Tensor out;
             out = inference_call(self, [&](GPT& m) { return m.forward(ids.data(), ids.shape(0), ids.shape(1), pad); });
             return to_numpy(out);
           },
           py::arg("idx"), py::arg("attention_mask") = py::none())
      .def("loss",
           [](GPT& self, py::handle idx, py::handle targets, py::handle attention_mask) {
             IndexArray ids = ids_2d(idx, "idx");
             IndexArray tg = as_index(targets, "targets");
             if (shape_of(tg) != shape_of(ids))
               throw ValueError(str_cat("targets: expected shape ", shape_str(ids), " (same as idx), got ", shape_str(tg)));
             const std::vector<uint8_t> pad = padding_from_attention_mask(attention_mask, ids);
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.call_mutex());
             return self.loss(ids.data(), tg.data(), ids.shape(0), ids.shape(1), pad);
           },
           py::arg("idx"), py::arg("targets"), py::arg("attention_mask") = py::none())
      .def("backward",
           [](GPT& self) {
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.call_mutex());
             self.backward();
           })
      .def("backward_logits",
           [](GPT& self, py::handle g) {
             Tensor t = to_tensor(g, "grad_logits");
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.call_mutex());
             self.backward_logits(t);
           });

  py::class_<Seq2SeqConfig>(m, "Seq2SeqConfigCore")
      .def(py::init<>())
      .def_readwrite("src_vocab_size", &Seq2SeqConfig::src_vocab_size)
      .def_readwrite("tgt_vocab_size", &Seq2SeqConfig::tgt_vocab_size)
      .def_readwrite("d_model", &Seq2SeqConfig::d_model)
      .def_readwrite("nhead", &Seq2SeqConfig::nhead)
      .def_readwrite("num_encoder_layers", &Seq2SeqConfig::num_encoder_layers)
      .def_readwrite("num_decoder_layers", &Seq2SeqConfig::num_decoder_layers)
      .def_readwrite("dim_feedforward", &Seq2SeqConfig::dim_feedforward)
      .def_readwrite("dropout", &Seq2SeqConfig::dropout)
      .def_readwrite("max_len", &Seq2SeqConfig::max_len);

  py::class_<Seq2Seq, Module, std::shared_ptr<Seq2Seq>>(m, "Seq2Seq")
      .def(py::init(&make_root<Seq2Seq, Seq2SeqConfig>), py::arg("config"))
      .def("forward",
           [](Seq2Seq& self, py::handle src, py::handle tgt_in, py::handle pad) {
             IndexArray s = ids_2d(src, "src");
             IndexArray t = ids_2d(tgt_in, "tgt_in");
             if (s.shape(0) != t.shape(0))
               throw ValueError(str_cat("tgt_in: expected batch size ", s.shape(0), " (from src), got ", t.shape(0)));
             std::vector<uint8_t> p = padding_of(pad, s.shape(0), s.shape(1));
             Tensor out;
             {
               py::gil_scoped_release nogil;
               std::lock_guard<std::shared_mutex> guard(self.call_mutex());
               out = self.forward(s.data(), s.shape(0), s.shape(1), t.data(), t.shape(1), p);
             }
             return to_numpy(out);
           })
      .def("loss",
           [](Seq2Seq& self, py::handle src, py::handle tgt_in, py::handle tgt_out, py::handle pad) {
             IndexArray s = ids_2d(src, "src");
             IndexArray t = ids_2d(tgt_in, "tgt_in");
             IndexArray o = as_index(tgt_out, "tgt_out");
             if (s.shape(0) != t.shape(0))
               throw ValueError(str_cat("tgt_in: expected batch size ", s.shape(0), " (from src), got ", t.shape(0)));
             if (shape_of(o) != shape_of(t))
               throw ValueError(str_cat("tgt_out: expected shape ", shape_str(t), " (same as tgt_in), got ", shape_str(o)));
             std::vector<uint8_t> p = padding_of(pad, s.shape(0), s.shape(1));
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.call_mutex());
             return self.loss(s.data(), s.shape(0), s.shape(1), t.data(), o.data(), t.shape(1), p);
           })
      .def("backward",
           [](Seq2Seq& self) {
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.call_mutex());
             self.backward();
           })
      .def("greedy_decode",
           [](Seq2Seq& self, py::handle src, int64_t bos, int64_t eos, int64_t max_len, py::handle pad) {
             IndexArray s = ids_2d(src, "src");
             std::vector<uint8_t> p = padding_of(pad, s.shape(0), s.shape(1));
             std::vector<int64_t> out;
             {
               py::gil_scoped_release nogil;
               std::lock_guard<std::shared_mutex> guard(self.call_mutex());
               out = self.greedy_decode(s.data(), s.shape(0), s.shape(1), bos, eos, max_len, p);
             }
             return ids_to_numpy(std::move(out), s.shape(0), max_len);
           })
      .def("beam_search", [](Seq2Seq& self, py::handle src, int64_t bos, int64_t eos, int64_t max_len,
                             int64_t beam_size, float length_penalty, py::handle pad) {
        IndexArray s = ids_2d(src, "src");
        std::vector<uint8_t> p = padding_of(pad, s.shape(0), s.shape(1));
        std::vector<int64_t> out;
        {
          py::gil_scoped_release nogil;
          std::lock_guard<std::shared_mutex> guard(self.call_mutex());
          out = self.beam_search(s.data(), s.shape(0), s.shape(1), bos, eos, max_len, beam_size, length_penalty, p);
        }
        return ids_to_numpy(std::move(out), s.shape(0), max_len);
      });
}

}  // namespace cfpy
