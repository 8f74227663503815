// nn.Embedding and nn.CrossEntropyLoss: convert once, check, release the GIL.
#include <mutex>
#include <shared_mutex>

#include "bindings.hpp"
#include "cpuformer/nn/embedding.hpp"
#include "cpuformer/nn/loss.hpp"
#include "index_check.hpp"
#include "nn_common.hpp"

namespace cfpy {

using namespace cpuformer;

void bind_nn_embed_loss(py::module_& m) {
  py::class_<Embedding, Module, std::shared_ptr<Embedding>>(m, "Embedding")
      .def(py::init(&make_root<Embedding, int64_t, int64_t>), py::arg("num_embeddings"), py::arg("embedding_dim"))
      .def_property_readonly("num_embeddings", &Embedding::num_embeddings)
      .def_property_readonly("embedding_dim", &Embedding::embedding_dim)
      .def(
          "forward",
          [](Embedding& self, py::handle ids_obj) {
            IndexArray ids = as_index(ids_obj, "input");
            check_index_range(ids, self.num_embeddings(), "input", "id");
            const Shape shape = shape_of(ids);
            Tensor y;
            {
              py::gil_scoped_release nogil;
              std::lock_guard<std::shared_mutex> guard(self.call_mutex());
              y = self.forward(ids.data(), shape);
            }
            return to_numpy(y);
          },
          py::arg("input"))
      .def(
          "backward",
          [](Embedding& self, py::handle g_obj) {
            Tensor g = to_tensor(g_obj, "grad_output");
            py::gil_scoped_release nogil;
            std::lock_guard<std::shared_mutex> guard(self.call_mutex());
            self.backward(g);
          },
          py::arg("grad_output"));

  py::class_<CrossEntropyLoss, Module, std::shared_ptr<CrossEntropyLoss>>(m, "CrossEntropyLoss")
      .def(py::init(&make_root<CrossEntropyLoss, int64_t, float>), py::arg("ignore_index") = -100,
           py::arg("label_smoothing") = 0.0f)
      .def_property_readonly("ignore_index", &CrossEntropyLoss::ignore_index)
      .def_property_readonly("label_smoothing", &CrossEntropyLoss::label_smoothing)
      .def(
          "forward",
          [](CrossEntropyLoss& self, py::handle logits_obj, py::handle target_obj) {
            Tensor logits = to_tensor(logits_obj, "input");
            IndexArray target = as_index(target_obj, "target");
            const Shape lshape = logits.shape();
            if (lshape.size() < 2 || lshape.size() > 3)
              throw ValueError(str_cat("input: expected logits [N, C] or [B, T, C], got shape ",
                                       cpuformer::shape_str(lshape)));
            const int64_t C = lshape.back();
            if (C < 1)
              throw ValueError(str_cat("input: expected at least 1 class, got shape ", cpuformer::shape_str(lshape)));
            const Shape expected(lshape.begin(), lshape.end() - 1);
            if (shape_of(target) != expected)
              throw ValueError(str_cat("target: expected shape ", expected.size() == 1 ? "[N] = " : "[B, T] = ",
                                       cpuformer::shape_str(expected), ", got ", cfpy::shape_str(target)));
            check_index_range(target, C, "target", "class", true, self.ignore_index());
            const int64_t n = static_cast<int64_t>(target.size());
            py::gil_scoped_release nogil;
            std::lock_guard<std::shared_mutex> guard(self.call_mutex());
            return self.forward(logits, target.data(), n);
          },
          py::arg("input"), py::arg("target"))
      .def(
          "backward",
          [](CrossEntropyLoss& self, float grad_output) {
            Tensor d;
            {
              py::gil_scoped_release nogil;
              std::lock_guard<std::shared_mutex> guard(self.call_mutex());
              d = self.backward(grad_output);
            }
            return to_numpy(d);
          },
          py::arg("grad_output") = 1.0f);
}

}  // namespace cfpy
