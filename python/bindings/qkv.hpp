// Shared argument loading of the functional attention bindings (longseq.cpp,
// bigbird.cpp): q [B,H,L,D], k [B,H,S,D], v [B,H,S,Dv] as float32 arrays,
// checked, with head views for the kernels.
#pragma once
#include <cmath>
#include <optional>

#include "bindings.hpp"
#include "convert.hpp"
#include "cpuformer/ops/attention.hpp"

namespace cfpy {

using cpuformer::StridedBHT;

template <class T>
inline StridedBHT<T> bht(T* data, int64_t H, int64_t T_, int64_t X) {
  return {data, H * T_ * X, T_ * X, X};
}

// q [B,H,L,D], k [B,H,S,D], v [B,H,S,Dv], checked.
struct QKV {
  FloatArray q, k, v;
  int64_t B = 0, H = 0, L = 0, S = 0, D = 0, Dv = 0;
  float scale = 1.0f;
  StridedBHT<const float> qv() const { return bht(q.data(), H, L, D); }
  StridedBHT<const float> kv() const { return bht(k.data(), H, S, D); }
  StridedBHT<const float> vv() const { return bht(v.data(), H, S, Dv); }
  Shape out_shape() const { return {B, H, L, Dv}; }
};

inline QKV load_qkv(py::handle q, py::handle k, py::handle v, std::optional<double> scale, const char* fn) {
  QKV c;
  c.q = as_float(q, "query");
  c.k = as_float(k, "key");
  c.v = as_float(v, "value");
  check_ndim(c.q, 4, "query");
  check_ndim(c.k, 4, "key");
  check_ndim(c.v, 4, "value");
  c.B = c.q.shape(0);
  c.H = c.q.shape(1);
  c.L = c.q.shape(2);
  c.D = c.q.shape(3);
  c.S = c.k.shape(2);
  c.Dv = c.v.shape(3);
  if (c.D < 1) throw cpuformer::ValueError(cpuformer::str_cat(fn, ": query: expected head dim >= 1, got shape ", shape_str(c.q)));
  if (c.Dv < 1) throw cpuformer::ValueError(cpuformer::str_cat(fn, ": value: expected last dim >= 1, got shape ", shape_str(c.v)));
  if (c.k.shape(0) != c.B || c.k.shape(1) != c.H || c.k.shape(3) != c.D)
    throw cpuformer::ValueError(cpuformer::str_cat(fn, ": key: expected shape [", c.B, ", ", c.H, ", S, ", c.D, "] (from query ",
                             shape_str(c.q), "), got ", shape_str(c.k)));
  if (c.v.shape(0) != c.B || c.v.shape(1) != c.H || c.v.shape(2) != c.S)
    throw cpuformer::ValueError(cpuformer::str_cat(fn, ": value: expected shape [", c.B, ", ", c.H, ", ", c.S, ", Dv] (from key ",
                             shape_str(c.k), "), got ", shape_str(c.v)));
  if (scale) {
    if (!(std::isfinite(*scale) && *scale > 0))
      throw cpuformer::ValueError(cpuformer::str_cat(fn, ": scale: expected a finite positive number, got ", *scale));
    c.scale = static_cast<float>(*scale);
  } else {
    c.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.D)));
  }
  return c;
}

inline FloatArray load_grad(py::handle g, const QKV& c) {
  FloatArray a = as_float(g, "grad_out");
  if (shape_of(a) != c.out_shape())
    throw cpuformer::ValueError(cpuformer::str_cat("grad_out: expected shape ", cpuformer::shape_str(c.out_shape()), " (the output's), got ",
                             shape_str(a)));
  return a;
}

}  // namespace cfpy
