// BERT and ViT: argument checking and NumPy conversion only.
#include <cmath>

#include <mutex>
#include <shared_mutex>

#include "bindings.hpp"
#include "cpuformer/models/bert.hpp"
#include "cpuformer/models/vit.hpp"
#include "nn_common.hpp"

namespace cfpy {

using namespace cpuformer;

namespace {

// An optional [B, T] companion of input_ids (token_type_ids, labels).
IndexArray same_shape_ids(py::handle obj, const IndexArray& ids, const char* name) {
  IndexArray a = as_index(obj, name);
  if (shape_of(a) != shape_of(ids))
    throw ValueError(str_cat(name, ": expected shape ", shape_str(ids), " (same as input_ids), got ", shape_str(a)));
  return a;
}

struct BertArgs {
  IndexArray ids, types;
  bool has_types = false;
  std::vector<uint8_t> pad;
  const int64_t* types_ptr() const { return has_types ? types.data() : nullptr; }
  int64_t B() const { return ids.shape(0); }
  int64_t T() const { return ids.shape(1); }
};

BertArgs bert_args(py::handle input_ids, py::handle token_type_ids, py::handle attention_mask) {
  BertArgs a;
  a.ids = ids_2d(input_ids, "input_ids");
  if (!token_type_ids.is_none()) {
    a.types = same_shape_ids(token_type_ids, a.ids, "token_type_ids");
    a.has_types = true;
  }
  a.pad = padding_from_attention_mask(attention_mask, a.ids);
  return a;
}

// images [B, C, H, W] float32 (ValueError unless 4-d).
FloatArray images_4d(py::handle obj) {
  FloatArray a = as_float(obj, "images");
  if (a.ndim() != 4)
    throw ValueError(str_cat("images: expected a 4-d [batch, channels, height, width] array, got shape ",
                             shape_str(a)));
  return a;
}

}  // namespace

void bind_models_bert_vit(py::module_& m) {
  py::class_<BERTConfig>(m, "BERTConfigCore")
      .def(py::init<>())
      .def_readwrite("vocab_size", &BERTConfig::vocab_size)
      .def_readwrite("max_position_embeddings", &BERTConfig::max_position_embeddings)
      .def_readwrite("type_vocab_size", &BERTConfig::type_vocab_size)
      .def_readwrite("n_layer", &BERTConfig::n_layer)
      .def_readwrite("n_head", &BERTConfig::n_head)
      .def_readwrite("hidden_size", &BERTConfig::hidden_size)
      .def_readwrite("intermediate_size", &BERTConfig::intermediate_size)
      .def_readwrite("dropout", &BERTConfig::dropout)
      .def_readwrite("layer_norm_eps", &BERTConfig::layer_norm_eps)
      .def_readwrite("activation", &BERTConfig::activation)
      .def_readwrite("mlm_head", &BERTConfig::mlm_head)
      .def_readwrite("pooler", &BERTConfig::pooler)
      .def_readwrite("attention", &BERTConfig::attention)
      .def_readwrite("attention_window", &BERTConfig::attention_window)
      .def_readwrite("num_global", &BERTConfig::num_global)
      .def_readwrite("num_features", &BERTConfig::num_features)
      .def_readwrite("linformer_k", &BERTConfig::linformer_k)
      .def_readwrite("bigbird_block_size", &BERTConfig::bigbird_block_size)
      .def_readwrite("num_window_blocks", &BERTConfig::num_window_blocks)
      .def_readwrite("num_global_blocks", &BERTConfig::num_global_blocks)
      .def_readwrite("num_random_blocks", &BERTConfig::num_random_blocks)
      .def_readwrite("bigbird_seed", &BERTConfig::bigbird_seed);

  py::class_<BERT, Module, std::shared_ptr<BERT>>(m, "BERT")
      .def(py::init(&make_root<BERT, BERTConfig>), py::arg("config"))
      .def("forward",
           [](BERT& self, py::handle input_ids, py::handle token_type_ids, py::handle attention_mask) {
             BertArgs a = bert_args(input_ids, token_type_ids, attention_mask);
             Tensor out;
             out = inference_call(self, [&](BERT& m) { return m.forward(a.ids.data(), a.types_ptr(), a.B(), a.T(), a.pad); });
             return to_numpy(out);
           })
      .def("mlm_logits",
           [](BERT& self, py::handle input_ids, py::handle token_type_ids, py::handle attention_mask) {
             BertArgs a = bert_args(input_ids, token_type_ids, attention_mask);
             Tensor out;
             out = inference_call(self, [&](BERT& m) { return m.mlm_logits(a.ids.data(), a.types_ptr(), a.B(), a.T(), a.pad); });
             return to_numpy(out);
           })
      .def("pooled_output",
           [](BERT& self, py::handle input_ids, py::handle token_type_ids, py::handle attention_mask) {
             BertArgs a = bert_args(input_ids, token_type_ids, attention_mask);
             Tensor out;
             out = inference_call(self, [&](BERT& m) { return m.pooled_output(a.ids.data(), a.types_ptr(), a.B(), a.T(), a.pad); });
             return to_numpy(out);
           })
      .def("backward_pooled",
           [](BERT& self, py::handle g) {
             Tensor t = to_tensor(g, "grad_pooled");
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.call_mutex());
             self.backward_pooled(t);
           })
      .def("mlm_loss",
           [](BERT& self, py::handle input_ids, py::handle labels, py::handle token_type_ids,
              py::handle attention_mask) {
             BertArgs a = bert_args(input_ids, token_type_ids, attention_mask);
             IndexArray lab = same_shape_ids(labels, a.ids, "labels");
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.call_mutex());
             return self.mlm_loss(a.ids.data(), lab.data(), a.types_ptr(), a.B(), a.T(), a.pad);
           })
      .def("backward",
           [](BERT& self) {
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.call_mutex());
             self.backward();
           })
      .def("backward_hidden",
           [](BERT& self, py::handle g) {
             Tensor t = to_tensor(g, "grad_hidden");
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.call_mutex());
             self.backward_hidden(t);
           })
      .def("backward_logits", [](BERT& self, py::handle g) {
        Tensor t = to_tensor(g, "grad_logits");
        py::gil_scoped_release nogil;
        std::lock_guard<std::shared_mutex> guard(self.call_mutex());
        self.backward_logits(t);
      });

  py::class_<ViTConfig>(m, "ViTConfigCore")
      .def(py::init<>())
      .def_readwrite("image_size", &ViTConfig::image_size)
      .def_readwrite("patch_size", &ViTConfig::patch_size)
      .def_readwrite("num_channels", &ViTConfig::num_channels)
      .def_readwrite("num_classes", &ViTConfig::num_classes)
      .def_readwrite("hidden_size", &ViTConfig::hidden_size)
      .def_readwrite("n_layer", &ViTConfig::n_layer)
      .def_readwrite("n_head", &ViTConfig::n_head)
      .def_readwrite("intermediate_size", &ViTConfig::intermediate_size)
      .def_readwrite("dropout", &ViTConfig::dropout)
      .def_readwrite("layer_norm_eps", &ViTConfig::layer_norm_eps)
      .def_readwrite("activation", &ViTConfig::activation);

  py::class_<ViT, Module, std::shared_ptr<ViT>>(m, "ViT")
      .def(py::init(&make_root<ViT, ViTConfig>), py::arg("config"))
      .def("forward",
           [](ViT& self, py::handle images) {
             FloatArray x = images_4d(images);
             Tensor out;
             out = inference_call(self, [&](ViT& m) { return m.forward(x.data(), x.shape(0), x.shape(1), x.shape(2), x.shape(3)); });
             return to_numpy(out);
           })
      .def("loss",
           [](ViT& self, py::handle images, py::handle labels) {
             FloatArray x = images_4d(images);
             IndexArray lab = as_index(labels, "labels");
             if (lab.ndim() != 1 || lab.shape(0) != x.shape(0))
               throw ValueError(str_cat("labels: expected shape [", x.shape(0), "] (one class per image), got ",
                                        shape_str(lab)));
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.call_mutex());
             return self.loss(x.data(), lab.data(), x.shape(0), x.shape(1), x.shape(2), x.shape(3));
           })
      .def("backward",
           [](ViT& self) {
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.call_mutex());
             self.backward();
           })
      .def("backward_logits", [](ViT& self, py::handle g) {
        Tensor t = to_tensor(g, "grad_logits");
        py::gil_scoped_release nogil;
        std::lock_guard<std::shared_mutex> guard(self.call_mutex());
        self.backward_logits(t);
      });
}

}  // namespace cfpy
