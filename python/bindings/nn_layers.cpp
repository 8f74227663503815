#include "bindings.hpp"
#include "nn_common.hpp"

namespace cfpy {

void bind_nn_layers(py::module_& m) {}

}  // namespace cfpy
