#include "convert.hpp"

#include <cmath>
#include <cstring>

namespace cfpy {

namespace {
char kind_of(py::handle obj, py::array* out) {
  *out = py::array::ensure(obj);
  if (!*out) return 0;
  return out->dtype().kind();
}
}  // namespace

Shape shape_of(const py::array& a) {
  Shape s;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s.push_back(static_cast<int64_t>(a.shape(i)));
  return s;
}

std::string shape_str(const py::array& a) { return cpuformer::shape_str(shape_of(a)); }

FloatArray as_float(py::handle obj, const char* name) {
  if (obj.is_none()) throw cpuformer::TypeError(cpuformer::str_cat(name, ": expected an array of real numbers, got None"));
  py::array a;
  const char k = kind_of(obj, &a);
  if (!(k == 'f' || k == 'i' || k == 'u' || k == 'b'))
    throw cpuformer::TypeError(cpuformer::str_cat(name, ": expected an array of real numbers, got ",
                                                  k ? std::string("dtype ") + std::string(py::str(a.dtype()))
                                                    : std::string(py::str(py::type::of(obj).attr("__name__")))));
  return FloatArray::ensure(a);
}

IndexArray as_index(py::handle obj, const char* name) {
  if (obj.is_none()) throw cpuformer::TypeError(cpuformer::str_cat(name, ": expected an integer array, got None"));
  py::array a;
  const char k = kind_of(obj, &a);
  if (k == 'u' && a.itemsize() == 8) {  // uint64 above 2^63 - 1 would wrap to a negative int64
    auto u = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    for (py::ssize_t i = 0; i < u.size(); ++i)
      if (u.data()[i] > static_cast<uint64_t>(INT64_MAX))
        throw cpuformer::IndexError(
            cpuformer::str_cat(name, ": id ", u.data()[i], " at flat position ", i, " does not fit in int64"));
  }
  if (k == 'i' || k == 'u') return IndexArray::ensure(a);
  if (k == 'f') {
    auto f = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(a);
    const double* d = f.data();
    for (py::ssize_t i = 0; i < f.size(); ++i)
      if (!(std::isfinite(d[i]) && d[i] == std::floor(d[i])))
        throw cpuformer::TypeError(cpuformer::str_cat(name, ": expected integer ids, got the non-integer value ", d[i]));
    return IndexArray::ensure(a);
  }
  throw cpuformer::TypeError(cpuformer::str_cat(name, ": expected an integer array, got ",
                                                k ? std::string("dtype ") + std::string(py::str(a.dtype()))
                                                  : std::string(py::str(py::type::of(obj).attr("__name__")))));
}

IndexArray ids_2d(py::handle obj, const char* name) {
  IndexArray a = as_index(obj, name);
  if (a.ndim() != 2)
    throw cpuformer::ValueError(
        cpuformer::str_cat(name, ": expected a 2-d [batch, seq] array of token ids, got shape ", shape_str(a)));
  return a;
}

std::vector<uint8_t> padding_from_attention_mask(py::handle obj, const IndexArray& ids) {
  std::vector<uint8_t> pad;
  if (obj.is_none()) return pad;
  FloatArray a = as_float(obj, "attention_mask");
  if (shape_of(a) != shape_of(ids))
    throw cpuformer::ValueError(cpuformer::str_cat("attention_mask: expected shape ", shape_str(ids),
                                                   " (same as the ids), got ", shape_str(a)));
  pad.resize(static_cast<size_t>(a.size()));
  const float* m = a.data();
  for (py::ssize_t i = 0; i < a.size(); ++i) {
    if (m[i] != 0.0f && m[i] != 1.0f)
      throw cpuformer::ValueError(cpuformer::str_cat("attention_mask: expected 1 (real token) or 0 (padding), got ",
                                                     m[i], " at flat position ", i));
    pad[static_cast<size_t>(i)] = m[i] == 0.0f;
  }
  return pad;
}

py::array as_mask(py::handle obj, const char* name, bool* is_bool) {
  py::array a;
  const char k = kind_of(obj, &a);
  if (k == 'b') {
    *is_bool = true;
    return py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(a);
  }
  *is_bool = false;
  return as_float(obj, name);
}

Tensor to_tensor(py::handle obj, const char* name) {
  FloatArray a = as_float(obj, name);
  Tensor t = Tensor::empty(shape_of(a));
  if (t.numel()) std::memcpy(t.data(), a.data(), sizeof(float) * static_cast<size_t>(t.numel()));
  return t;
}

py::array_t<float> to_numpy(const Tensor& t) {
  auto* keep = new std::shared_ptr<float>(t.storage());
  py::capsule owner(keep, [](void* p) { delete static_cast<std::shared_ptr<float>*>(p); });
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  return py::array_t<float>(shape, t.data(), owner);
}

void check_ndim(const py::array& a, int64_t ndim, const char* name) {
  if (a.ndim() != ndim)
    throw cpuformer::ValueError(cpuformer::str_cat(name, ": expected a ", ndim, "-d array, got shape ", shape_str(a)));
}

void check_ndim_range(const py::array& a, int64_t lo, int64_t hi, const char* name) {
  if (a.ndim() < lo || a.ndim() > hi)
    throw cpuformer::ValueError(
        cpuformer::str_cat(name, ": expected ", lo, " to ", hi, " dimensions, got shape ", shape_str(a)));
}

py::array_t<int64_t> ids_to_numpy(std::vector<int64_t>&& v, int64_t B, int64_t T) {
  auto* keep = new std::vector<int64_t>(std::move(v));
  py::capsule owner(keep, [](void* p) { delete static_cast<std::vector<int64_t>*>(p); });
  return py::array_t<int64_t>({static_cast<py::ssize_t>(B), static_cast<py::ssize_t>(T)}, keep->data(), owner);
}

}  // namespace cfpy
