#include "bindings.hpp"
#include "nn_common.hpp"

namespace cfpy {

void bind_models_bert_vit(py::module_& m) {}

}  // namespace cfpy
