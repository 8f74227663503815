#include "bindings.hpp"
#include "convert.hpp"

namespace cfpy {

void bind_attention(py::module_& m) {}

}  // namespace cfpy
