#include "bindings.hpp"
#include "nn_common.hpp"

namespace cfpy {

void bind_nn_attention(py::module_& m) {}

}  // namespace cfpy
