// NumPy <-> cpuformer::Tensor conversion and argument checks shared by every
// binding file. Glue only: no math lives here.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cpuformer/error.hpp"
#include "cpuformer/tensor.hpp"

namespace cfpy {
namespace py = pybind11;
using cpuformer::Shape;
using cpuformer::Tensor;

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

// Any real array-like (any real dtype, any strides) -> C-contiguous float32.
// TypeError naming `name` for complex, object, string or non-array input.
FloatArray as_float(py::handle obj, const char* name);
// Integer array-like (or integer-valued floats) -> C-contiguous int64.
IndexArray as_index(py::handle obj, const char* name);
// Token ids [B, T] as int64 (ValueError unless 2-d).
IndexArray ids_2d(py::handle obj, const char* name);
// Hugging Face attention_mask [B, T] of 1 (real token) / 0 (padding), any
// bool/int/float dtype, shaped like `ids` -> key padding flags (nonzero =
// padding), or empty for None. ValueError for other values or shapes.
std::vector<uint8_t> padding_from_attention_mask(py::handle obj, const IndexArray& ids);
// Boolean-or-float mask -> (is_bool, data). Bool masks become uint8.
py::array as_mask(py::handle obj, const char* name, bool* is_bool);

// Token ids [B, T] as a NumPy array that owns (moves in) the vector.
py::array_t<int64_t> ids_to_numpy(std::vector<int64_t>&& v, int64_t B, int64_t T);
// Copy of a float array into a fresh Tensor (modules cache their inputs).
Tensor to_tensor(py::handle obj, const char* name);
// Zero-copy NumPy view of a Tensor; the array keeps the storage alive.
py::array_t<float> to_numpy(const Tensor& t);

Shape shape_of(const py::array& a);
std::string shape_str(const py::array& a);

// ValueError unless a.ndim == ndim.
void check_ndim(const py::array& a, int64_t ndim, const char* name);
void check_ndim_range(const py::array& a, int64_t lo, int64_t hi, const char* name);

}  // namespace cfpy
