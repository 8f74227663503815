#include "bindings.hpp"
#include "nn_common.hpp"

namespace cfpy {

void bind_nn_embed_loss(py::module_& m) {}

}  // namespace cfpy
