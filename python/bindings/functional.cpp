// Functional ops: validate, convert, release the GIL, call the kernel, hand
// back a zero-copy NumPy array.
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "cpuformer/nn/activation.hpp"  // parse_gelu_approximate
#include "cpuformer/ops/activations.hpp"
#include "cpuformer/ops/dropout.hpp"
#include "cpuformer/ops/layer_norm.hpp"
#include "cpuformer/ops/linear.hpp"
#include "cpuformer/ops/softmax.hpp"
#include "cpuformer/runtime/autocast.hpp"
#include "cpuformer/runtime/rng.hpp"

namespace cfpy {
namespace {

using cpuformer::str_cat;
using cpuformer::ValueError;

py::array_t<float> linear(py::handle x_obj, py::handle w_obj, py::handle b_obj, const std::string& activation) {
  using cpuformer::Activation;
  const Activation act = activation == "none" ? Activation::None
                         : activation == "relu" ? Activation::Relu
                         : activation == "gelu" ? Activation::Gelu
                         : activation == "gelu_tanh" ? Activation::GeluTanh
                         : throw cpuformer::ValueError(cpuformer::str_cat(
                               "activation: expected \"none\", \"relu\", \"gelu\" or \"gelu_tanh\", got \"",
                               activation, "\""));
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
    cpuformer::linear_forward(out.data(), x.data(), w.data(), has_bias ? b.data() : nullptr, N, I, O, act,
                              cpuformer::autocast_dtype());
  }
  return to_numpy(out);
}

// ---- shared checks ---------------------------------------------------------

// ValueError unless `a` has exactly `shape` (gradients must match what they
// are the gradient of).
void check_shape(const py::array& a, const Shape& shape, const char* name, const char* of) {
  if (shape_of(a) != shape)
    throw ValueError(str_cat(name, ": expected shape ", cpuformer::shape_str(shape), " (same as ", of, "), got ",
                             shape_str(a)));
}

// A length-C vector parameter (weight/bias), or nothing for None.
bool optional_vector(py::handle obj, int64_t C, const char* name, FloatArray* out) {
  if (obj.is_none()) return false;
  *out = as_float(obj, name);
  if (out->ndim() != 1 || out->shape(0) != C)
    throw ValueError(str_cat(name, ": expected shape [C] = [", C, "], got ", shape_str(*out)));
  return true;
}

float check_eps(double eps) {
  if (!(std::isfinite(eps) && eps > 0.0 && eps <= std::numeric_limits<float>::max()))
    throw ValueError(str_cat("eps: expected a finite number > 0, got ", eps));
  return static_cast<float>(eps);
}

float check_p(double p) {
  if (!(p >= 0.0 && p < 1.0)) throw ValueError(str_cat("p: expected 0 <= p < 1, got ", p));
  return static_cast<float>(p);
}

// Rows N and channels C of an input normalised over its last dimension.
void rows_cols(const FloatArray& x, int64_t* N, int64_t* C) {
  if (x.ndim() < 1) throw ValueError(str_cat("input: expected at least 1 dimension, got a scalar"));
  *C = x.shape(x.ndim() - 1);
  if (*C < 1) throw ValueError(str_cat("input: expected last dim >= 1, got shape ", shape_str(x)));
  *N = x.size() / *C;
}

// [outer, dim, inner] view of `a` around `axis` (negative counts from the end).
void split_axis(const py::array& a, int64_t axis, const char* name, int64_t* outer, int64_t* dim, int64_t* inner) {
  const int64_t nd = a.ndim();
  if (nd < 1) throw ValueError(str_cat(name, ": expected at least 1 dimension, got a scalar"));
  if (axis < -nd || axis >= nd)
    throw ValueError(str_cat("axis: expected -", nd, " <= axis < ", nd, " for shape ", shape_str(a), ", got ", axis));
  const int64_t ax = axis < 0 ? axis + nd : axis;
  *outer = 1;
  *inner = 1;
  for (int64_t i = 0; i < ax; ++i) *outer *= a.shape(i);
  for (int64_t i = ax + 1; i < nd; ++i) *inner *= a.shape(i);
  *dim = a.shape(ax);
}

// The dropout key for `seed`: None draws cpuformer::next_key() (the global
// generator, see manual_seed); an int in [0, 2**64) IS the key, so
// dropout_backward(..., seed) regenerates the mask of dropout(..., seed).
uint64_t dropout_key(py::handle seed) {
  if (seed.is_none()) return cpuformer::next_key();
  if (PyBool_Check(seed.ptr()) || !PyIndex_Check(seed.ptr()))
    throw cpuformer::TypeError(
        str_cat("seed: expected an int, got ", std::string(py::str(py::type::of(seed).attr("__name__")))));
  py::int_ s = py::reinterpret_steal<py::int_>(PyNumber_Index(seed.ptr()));
  if (!s) throw py::error_already_set();
  const unsigned long long v = PyLong_AsUnsignedLongLong(s.ptr());
  if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    throw ValueError(str_cat("seed: expected 0 <= seed < 2**64, got ", std::string(py::str(s))));
  }
  return static_cast<uint64_t>(v);
}

// ---- layer norm ------------------------------------------------------------

py::array_t<float> layer_norm(py::handle x_obj, py::handle w_obj, py::handle b_obj, double eps_d) {
  FloatArray x = as_float(x_obj, "input");
  int64_t N, C;
  rows_cols(x, &N, &C);
  FloatArray w, b;
  const bool has_w = optional_vector(w_obj, C, "weight", &w);
  const bool has_b = optional_vector(b_obj, C, "bias", &b);
  const float eps = check_eps(eps_d);
  Tensor out = Tensor::empty(shape_of(x));
  {
    py::gil_scoped_release nogil;
    cpuformer::layer_norm_forward(out.data(), nullptr, nullptr, x.data(), has_w ? w.data() : nullptr,
                                  has_b ? b.data() : nullptr, N, C, eps);
  }
  return to_numpy(out);
}

py::tuple layer_norm_backward(py::handle g_obj, py::handle x_obj, py::handle w_obj, double eps_d) {
  FloatArray x = as_float(x_obj, "input");
  int64_t N, C;
  rows_cols(x, &N, &C);
  FloatArray g = as_float(g_obj, "grad_output");
  check_shape(g, shape_of(x), "grad_output", "input");
  FloatArray w;
  const bool has_w = optional_vector(w_obj, C, "weight", &w);
  const float eps = check_eps(eps_d);
  Tensor dx = Tensor::zeros(shape_of(x));
  Tensor dw = has_w ? Tensor::zeros({C}) : Tensor();
  Tensor db = Tensor::zeros({C});
  {
    py::gil_scoped_release nogil;
    Tensor mean = Tensor::empty({N}), rstd = Tensor::empty({N});  // [N]
    cpuformer::layer_norm_stats(mean.data(), rstd.data(), x.data(), N, C, eps);
    cpuformer::layer_norm_backward(dx.data(), has_w ? dw.data() : nullptr, db.data(), g.data(), x.data(),
                                   has_w ? w.data() : nullptr, mean.data(), rstd.data(), N, C);
  }
  return py::make_tuple(to_numpy(dx), has_w ? py::object(to_numpy(dw)) : py::object(py::none()), to_numpy(db));
}

// ---- activations -----------------------------------------------------------

py::array_t<float> relu(py::handle x_obj) {
  FloatArray x = as_float(x_obj, "input");
  Tensor out = Tensor::empty(shape_of(x));
  {
    py::gil_scoped_release nogil;
    cpuformer::relu_forward(out.data(), x.data(), x.size());
  }
  return to_numpy(out);
}

py::array_t<float> relu_backward(py::handle g_obj, py::handle x_obj) {
  FloatArray x = as_float(x_obj, "input");
  FloatArray g = as_float(g_obj, "grad_output");
  check_shape(g, shape_of(x), "grad_output", "input");
  Tensor dx = Tensor::zeros(shape_of(x));
  {
    py::gil_scoped_release nogil;
    cpuformer::relu_backward(dx.data(), g.data(), x.data(), x.size());
  }
  return to_numpy(dx);
}

py::array_t<float> gelu(py::handle x_obj, const std::string& approximate) {
  const auto a = cpuformer::parse_gelu_approximate(approximate);
  FloatArray x = as_float(x_obj, "input");
  Tensor out = Tensor::empty(shape_of(x));
  {
    py::gil_scoped_release nogil;
    cpuformer::gelu_forward(out.data(), x.data(), x.size(), a);
  }
  return to_numpy(out);
}

py::array_t<float> gelu_backward(py::handle g_obj, py::handle x_obj, const std::string& approximate) {
  const auto a = cpuformer::parse_gelu_approximate(approximate);
  FloatArray x = as_float(x_obj, "input");
  FloatArray g = as_float(g_obj, "grad_output");
  check_shape(g, shape_of(x), "grad_output", "input");
  Tensor dx = Tensor::zeros(shape_of(x));
  {
    py::gil_scoped_release nogil;
    cpuformer::gelu_backward(dx.data(), g.data(), x.data(), x.size(), a);
  }
  return to_numpy(dx);
}

// ---- softmax ---------------------------------------------------------------

py::array_t<float> softmax(py::handle x_obj, int64_t axis) {
  FloatArray x = as_float(x_obj, "input");
  int64_t outer, dim, inner;
  split_axis(x, axis, "input", &outer, &dim, &inner);
  Tensor out = Tensor::empty(shape_of(x));
  {
    py::gil_scoped_release nogil;
    cpuformer::softmax_forward(out.data(), x.data(), outer, dim, inner);
  }
  return to_numpy(out);
}

py::array_t<float> softmax_backward(py::handle g_obj, py::handle y_obj, int64_t axis) {
  FloatArray y = as_float(y_obj, "output");
  FloatArray g = as_float(g_obj, "grad_output");
  int64_t outer, dim, inner;
  split_axis(y, axis, "output", &outer, &dim, &inner);
  check_shape(g, shape_of(y), "grad_output", "output");
  Tensor dx = Tensor::zeros(shape_of(y));
  {
    py::gil_scoped_release nogil;
    cpuformer::softmax_backward(dx.data(), g.data(), y.data(), outer, dim, inner);
  }
  return to_numpy(dx);
}

// ---- dropout ---------------------------------------------------------------

py::array_t<float> dropout(py::handle x_obj, double p_d, bool training, py::handle seed) {
  const float p = check_p(p_d);
  FloatArray x = as_float(x_obj, "input");
  const bool active = training && p > 0.0f;
  // An inactive call validates the seed but draws no key from the generator.
  const uint64_t key = active || !seed.is_none() ? dropout_key(seed) : 0;
  Tensor out = Tensor::empty(shape_of(x));
  {
    py::gil_scoped_release nogil;
    if (active)
      cpuformer::dropout_forward(out.data(), x.data(), x.size(), p, key);
    else
      std::copy(x.data(), x.data() + x.size(), out.data());
  }
  return to_numpy(out);
}

py::array_t<float> dropout_backward(py::handle g_obj, double p_d, py::handle seed) {
  const float p = check_p(p_d);
  FloatArray g = as_float(g_obj, "grad_output");
  if (seed.is_none()) throw cpuformer::TypeError("seed: expected the int seed given to dropout, got None");
  const uint64_t key = dropout_key(seed);
  Tensor dx = Tensor::zeros(shape_of(g));
  {
    py::gil_scoped_release nogil;
    cpuformer::dropout_backward(dx.data(), g.data(), g.size(), p, key);
  }
  return to_numpy(dx);
}

}  // namespace

void bind_functional(py::module_& m) {
  m.def("linear", &linear, py::arg("input"), py::arg("weight"), py::arg("bias") = py::none(),
        py::arg("activation") = "none",
        "act(input @ weight.T + bias): input [..., in], weight [out, in], bias [out] or None; activation "
        "\"none\", \"relu\", \"gelu\" (exact erf) or \"gelu_tanh\", applied in the product's epilogue.");
  m.def("layer_norm", &layer_norm, py::arg("input"), py::arg("weight") = py::none(), py::arg("bias") = py::none(),
        py::arg("eps") = 1e-5);
  m.def("layer_norm_backward", &layer_norm_backward, py::arg("grad_output"), py::arg("input"),
        py::arg("weight") = py::none(), py::arg("eps") = 1e-5);
  m.def("relu", &relu, py::arg("input"));
  m.def("relu_backward", &relu_backward, py::arg("grad_output"), py::arg("input"));
  m.def("gelu", &gelu, py::arg("input"), py::arg("approximate") = "none");
  m.def("gelu_backward", &gelu_backward, py::arg("grad_output"), py::arg("input"), py::arg("approximate") = "none");
  m.def("softmax", &softmax, py::arg("input"), py::arg("axis") = -1);
  m.def("softmax_backward", &softmax_backward, py::arg("grad_output"), py::arg("output"), py::arg("axis") = -1);
  m.def("dropout", &dropout, py::arg("input"), py::arg("p") = 0.5, py::arg("training") = true,
        py::arg("seed") = py::none());
  m.def("dropout_backward", &dropout_backward, py::arg("grad_output"), py::arg("p"), py::arg("seed"));
}

}  // namespace cfpy
