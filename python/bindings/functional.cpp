// Functional ops: validate, convert, release the GIL, call the kernel, hand
// back a zero-copy NumPy array.
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "convert.hpp"
#include "cpuformer/ops/linear.hpp"

namespace cfpy {
namespace {

py::array_t<float> linear(py::handle x_obj, py::handle w_obj, py::handle b_obj) {
  FloatArray x = as_float(x_obj, "input");
  FloatArray w = as_float(w_obj, "weight");
  check_ndim(w, 2, "weight");
  check_ndim_range(x, 1, 64, "input");
  const int64_t O = w.shape(0), I = w.shape(1);
  if (x.shape(x.ndim() - 1) != I)
    throw cpuformer::ValueError(cpuformer::str_cat("input: expected last dim ", I, " (weight is ", shape_str(w),
                                                   "), got ", x.shape(x.ndim() - 1)));
  FloatArray b;
  const bool has_bias = !b_obj.is_none();
  if (has_bias) {
    b = as_float(b_obj, "bias");
    if (b.ndim() != 1 || b.shape(0) != O)
      throw cpuformer::ValueError(cpuformer::str_cat("bias: expected shape [", O, "], got ", shape_str(b)));
  }
  Shape oshape = shape_of(x);
  oshape.back() = O;
  Tensor out = Tensor::empty(oshape);
  const int64_t N = x.size() / I;
  {
    py::gil_scoped_release nogil;
    cpuformer::linear_forward(out.data(), x.data(), w.data(), has_bias ? b.data() : nullptr, N, I, O);
  }
  return to_numpy(out);
}

}  // namespace

void bind_functional(py::module_& m) {
  m.def("linear", &linear, py::arg("input"), py::arg("weight"), py::arg("bias") = py::none());
}

}  // namespace cfpy
