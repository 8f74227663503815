// Whole models: GPT (more families arrive in their own files).
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "convert.hpp"
#include "cpuformer/models/gpt.hpp"
#include "nn_common.hpp"

namespace cfpy {

using namespace cpuformer;

namespace {

// ids [B, T] as int64 (ValueError unless 2-d).
IndexArray ids_2d(py::handle obj, const char* name) {
  IndexArray a = as_index(obj, name);
  if (a.ndim() != 2)
    throw ValueError(str_cat(name, ": expected a 2-d [batch, seq] array of token ids, got shape ", shape_str(a)));
  return a;
}

py::array_t<int64_t> ids_to_numpy(std::vector<int64_t>&& v, int64_t B, int64_t T) {
  auto* keep = new std::vector<int64_t>(std::move(v));
  py::capsule owner(keep, [](void* p) { delete static_cast<std::vector<int64_t>*>(p); });
  return py::array_t<int64_t>({static_cast<py::ssize_t>(B), static_cast<py::ssize_t>(T)}, keep->data(), owner);
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
      .def_readwrite("bias", &GPTConfig::bias);

  py::class_<GPT, Module, std::shared_ptr<GPT>>(m, "GPT")
      .def(py::init(&make_root<GPT, GPTConfig>), py::arg("config"))
      .def("forward",
           [](GPT& self, py::handle idx) {
             IndexArray ids = ids_2d(idx, "idx");
             Tensor out;
             {
               py::gil_scoped_release nogil;
               out = self.forward(ids.data(), ids.shape(0), ids.shape(1));
             }
             return to_numpy(out);
           })
      .def("loss",
           [](GPT& self, py::handle idx, py::handle targets) {
             IndexArray ids = ids_2d(idx, "idx");
             IndexArray tg = as_index(targets, "targets");
             if (shape_of(tg) != shape_of(ids))
               throw ValueError(str_cat("targets: expected shape ", shape_str(ids), " (same as idx), got ", shape_str(tg)));
             py::gil_scoped_release nogil;
             return self.loss(ids.data(), tg.data(), ids.shape(0), ids.shape(1));
           })
      .def("backward",
           [](GPT& self) {
             py::gil_scoped_release nogil;
             self.backward();
           })
      .def("backward_logits",
           [](GPT& self, py::handle g) {
             Tensor t = to_tensor(g, "grad_logits");
             py::gil_scoped_release nogil;
             self.backward_logits(t);
           })
      .def("generate", [](GPT& self, py::handle idx, int64_t max_new_tokens, float temperature, int64_t top_k,
                          float top_p, py::object seed) {
        IndexArray ids = ids_2d(idx, "idx");
        SamplingOptions o;
        o.temperature = temperature;
        o.top_k = top_k;
        o.top_p = top_p;
        if (!seed.is_none()) {
          o.seed = static_cast<uint64_t>(seed.cast<int64_t>());
          o.has_seed = true;
        }
        const int64_t B = ids.shape(0), T = ids.shape(1);
        std::vector<int64_t> out;
        {
          py::gil_scoped_release nogil;
          out = self.generate(ids.data(), B, T, max_new_tokens, o);
        }
        return ids_to_numpy(std::move(out), B, T + max_new_tokens);
      });
}

}  // namespace cfpy
