// Helpers shared by the nn binding files.
#pragma once
#include <memory>

#include "convert.hpp"
#include "cpuformer/nn/module.hpp"

namespace cfpy {

// Constructs a module that is the root of its own parameter tree and moves
// its parameters into flat buffers.
template <class M, class... Args>
std::shared_ptr<M> make_root(Args... args) {
  std::shared_ptr<M> p;
  {
    py::gil_scoped_release nogil;
    p = std::make_shared<M>(args...);
    p->flatten_parameters();
  }
  return p;
}

// One tensor in, one tensor out, GIL released around the C++ call.
template <class M, class F>
py::array_t<float> call1(M& self, F fn, py::handle x, const char* name) {
  Tensor t = to_tensor(x, name);
  Tensor y;
  {
    py::gil_scoped_release nogil;
    y = (self.*fn)(t);
  }
  return to_numpy(y);
}

// Modules registered from other files.
void bind_nn_layers(py::module_& m);  // nn_layers.cpp: LayerNorm, Dropout, ReLU, GELU
void bind_nn_attention(py::module_& m);  // nn_attention.cpp: MultiheadAttention, Transformer*Layer
void bind_nn_embed_loss(py::module_& m);  // nn_embed_loss.cpp: Embedding, CrossEntropyLoss

}  // namespace cfpy
