// Optimizers: the update runs in C++ over the model's flat buffers.
#include <pybind11/stl.h>

#include <mutex>
#include <shared_mutex>

#include "bindings.hpp"
#include "convert.hpp"
#include "cpuformer/optim/optimizer.hpp"

namespace cfpy {

using namespace cpuformer;

void bind_optim(py::module_& m) {
  py::class_<Optimizer>(m, "Optimizer")
      .def("step",
           [](Optimizer& self) {
             py::gil_scoped_release nogil;
             std::lock_guard<std::shared_mutex> guard(self.model().call_mutex());
             self.step();
           })
      .def("zero_grad", &Optimizer::zero_grad)
      .def_readwrite("lr", &Optimizer::lr)
      .def_property("step_count", &Optimizer::step_count, &Optimizer::set_step_count)
      .def("segments",
           [](Optimizer& self) {
             py::list out;
             for (auto& s : self.segments()) out.append(py::make_tuple(s.name, s.offset, s.numel, s.decay));
             return out;
           })
      .def("state", [](Optimizer& self) {
        py::dict d;
        for (auto& kv : self.state()) d[py::str(kv.first)] = to_numpy(kv.second);
        return d;
      });

  py::class_<AdamW, Optimizer>(m, "AdamW")
      .def(py::init([](std::shared_ptr<Module> model, float lr, float b1, float b2, float eps, float wd,
                       std::vector<std::string> no_decay) {
             return std::make_unique<AdamW>(*model, lr, b1, b2, eps, wd, no_decay);
           }),
           py::keep_alive<1, 2>(), py::arg("model"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"),
           py::arg("eps"), py::arg("weight_decay"), py::arg("no_decay"))
      .def_readwrite("beta1", &AdamW::beta1)
      .def_readwrite("beta2", &AdamW::beta2)
      .def_readwrite("eps", &AdamW::eps)
      .def_readwrite("weight_decay", &AdamW::weight_decay);

  py::class_<SGD, Optimizer>(m, "SGD")
      .def(py::init([](std::shared_ptr<Module> model, float lr, float momentum, float wd, bool nesterov,
                       std::vector<std::string> no_decay) {
             return std::make_unique<SGD>(*model, lr, momentum, wd, nesterov, no_decay);
           }),
           py::keep_alive<1, 2>(), py::arg("model"), py::arg("lr"), py::arg("momentum"), py::arg("weight_decay"),
           py::arg("nesterov"), py::arg("no_decay"))
      .def_readwrite("momentum", &SGD::momentum)
      .def_readwrite("weight_decay", &SGD::weight_decay);

  m.def(
      "clip_grad_norm",
      [](std::shared_ptr<Module> model, float max_norm) {
        py::gil_scoped_release nogil;
        std::lock_guard<std::shared_mutex> guard(model->call_mutex());
        return clip_grad_norm(*model, max_norm);
      },
      py::arg("model"), py::arg("max_norm"));
}

}  // namespace cfpy
