#include "bindings.hpp"
#include "convert.hpp"

namespace cfpy {

void bind_functional_embed_loss(py::module_& m) {}

}  // namespace cfpy
