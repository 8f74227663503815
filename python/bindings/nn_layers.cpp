// LayerNorm, ReLU, GELU, Dropout modules.
#include <string>

#include "bindings.hpp"
#include "cpuformer/nn/activation.hpp"
#include "cpuformer/nn/layer_norm.hpp"
#include "nn_common.hpp"

namespace cfpy {

using namespace cpuformer;

void bind_nn_layers(py::module_& m) {
  py::class_<LayerNorm, Module, std::shared_ptr<LayerNorm>>(m, "LayerNorm")
      .def(py::init(&make_root<LayerNorm, int64_t, float, bool>), py::arg("normalized_shape"), py::arg("eps") = 1e-5f,
           py::arg("bias") = true)
      .def_property_readonly("normalized_shape", &LayerNorm::normalized_shape)
      .def_property_readonly("eps", &LayerNorm::eps)
      .def("forward", [](LayerNorm& self, py::handle x) { return forward1(self, &LayerNorm::forward, x, "input"); })
      .def("backward",
           [](LayerNorm& self, py::handle g) { return call1(self, &LayerNorm::backward, g, "grad_output"); });

  py::class_<ReLU, Module, std::shared_ptr<ReLU>>(m, "ReLU")
      .def(py::init(&make_root<ReLU>))
      .def("forward", [](ReLU& self, py::handle x) { return call1(self, &ReLU::forward, x, "input"); })
      .def("backward", [](ReLU& self, py::handle g) { return call1(self, &ReLU::backward, g, "grad_output"); });

  py::class_<GELU, Module, std::shared_ptr<GELU>>(m, "GELU")
      .def(py::init([](const std::string& approximate) {
             return make_root<GELU>(parse_gelu_approximate(approximate));
           }),
           py::arg("approximate") = "none")
      .def_property_readonly("approximate",
                             [](const GELU& self) {
                               return self.approximate() == GeluApproximate::Tanh ? "tanh" : "none";
                             })
      .def("forward", [](GELU& self, py::handle x) { return call1(self, &GELU::forward, x, "input"); })
      .def("backward", [](GELU& self, py::handle g) { return call1(self, &GELU::backward, g, "grad_output"); });

  py::class_<Dropout, Module, std::shared_ptr<Dropout>>(m, "Dropout")
      .def(py::init(&make_root<Dropout, float>), py::arg("p") = 0.5f)
      .def_property_readonly("p", &Dropout::p)
      .def("forward", [](Dropout& self, py::handle x) { return call1(self, &Dropout::forward, x, "input"); })
      .def("backward", [](Dropout& self, py::handle g) { return call1(self, &Dropout::backward, g, "grad_output"); });
}

}  // namespace cfpy
