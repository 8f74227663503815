// nn modules: thin wrappers that convert inputs once, release the GIL, and
// return zero-copy arrays. The Python classes in cpuformer/nn.py add the
// torch-style protocol (state_dict, load_state_dict, ...) on top.
#include <pybind11/stl.h>

#include <mutex>
#include <shared_mutex>

#include "bindings.hpp"
#include "convert.hpp"
#include "nn_common.hpp"
#include "cpuformer/nn/linear.hpp"

namespace cfpy {

using namespace cpuformer;

namespace {
// A writable NumPy view of parameter values that keeps the tree's
// WeightState told: while it (or any array made from it) lives, the
// pre-packed weight caches are bypassed, and its release counts as a change.
py::array_t<float> weight_view(const Tensor& t, std::shared_ptr<cpuformer::WeightState> state) {
  struct Owner {
    std::shared_ptr<float> storage;
    std::shared_ptr<cpuformer::WeightState> state;
    ~Owner() {
      state->bump();
      state->views.fetch_sub(1);
    }
  };
  state->views.fetch_add(1);
  auto* keep = new Owner{t.storage(), std::move(state)};
  py::capsule owner(keep, [](void* p) { delete static_cast<Owner*>(p); });
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  return py::array_t<float>(shape, t.data(), owner);
}
}  // namespace

void bind_module_base(py::module_& m) {
  py::class_<Module, std::shared_ptr<Module>>(m, "Module")
      .def(
          "train",
          [](Module& self, bool mode) {
            py::gil_scoped_release nogil;
            std::lock_guard<std::shared_mutex> guard(self.call_mutex());
            self.train(mode);
          },
          py::arg("mode") = true)
      .def_property_readonly("training", &Module::training)
      .def("zero_grad",
           [](Module& self) {
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.call_mutex());
             self.zero_grad();
           })
      .def("num_parameters", &Module::num_parameters)
      .def_property_readonly("replicas_built", &Module::replicas_built)
      .def_property_readonly("dtype", [](const Module& self) { return std::string(dtype_name(self.dtype())); })
      .def("quantize",
           [](Module& self, const std::string& dtype) {
             const DType d = parse_dtype(dtype);
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.call_mutex());
             self.quantize(d);
           },
           py::arg("dtype"))
      .def("named_parameters",
           [](Module& self) {
             // Views of float32 values; a low-precision matrix comes back as a
             // read-only dequantized copy (writing to it could change nothing).
             py::list out;
             for (auto& p : self.named_parameters()) {
               if (!p.second->packed) {
                 out.append(py::make_tuple(p.first, weight_view(p.second->value, p.second->state)));
                 continue;
               }
               Tensor t;
               {
                 py::gil_scoped_release nogil;
                 t = p.second->float_value();
               }
               py::array_t<float> a = to_numpy(t);
               a.attr("flags").attr("writeable") = false;
               out.append(py::make_tuple(p.first, a));
             }
             return out;
           })
      .def("named_gradients", [](Module& self) {  // allocates the gradient buffer on first use
        self.check_trainable("gradients");
        py::list out;
        for (auto& p : self.named_parameters()) out.append(py::make_tuple(p.first, to_numpy(p.second->grad_tensor())));
        return out;
      })
      .def("flat_parameters",
           [](Module& self) {
             auto params = self.named_parameters();
             if (params.empty() || !self.flat_parameters().defined()) return to_numpy(self.flat_parameters());
             return weight_view(self.flat_parameters(), params.front().second->state);
           })
      .def("flat_gradients", [](Module& self) {
        self.check_trainable("flat_gradients");
        return to_numpy(self.flat_gradients());
      });
}

void bind_nn(py::module_& m) {
  bind_module_base(m);

  py::class_<Linear, Module, std::shared_ptr<Linear>>(m, "Linear")
      .def(py::init(&make_root<Linear, int64_t, int64_t, bool>), py::arg("in_features"), py::arg("out_features"),
           py::arg("bias") = true)
      .def("forward", [](Linear& self, py::handle x) { return forward1(self, &Linear::forward, x, "input"); })
      .def("backward", [](Linear& self, py::handle g) { return call1(self, &Linear::backward, g, "grad_output"); });

  bind_nn_layers(m);
  bind_nn_embed_loss(m);
  bind_nn_attention(m);
  bind_nn_transformer(m);
}

}  // namespace cfpy
