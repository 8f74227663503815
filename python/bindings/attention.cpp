// scaled_dot_product_attention (+ _backward): shape and mask checks, mask
// broadcasting, GIL release around the kernels in ops/attention.
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "cpuformer/ops/attention.hpp"
#include "cpuformer/ops/packed_weight.hpp"
#include "cpuformer/runtime/autocast.hpp"

namespace cfpy {
namespace {

using cpuformer::AttentionParams;
using cpuformer::StridedBHT;
using cpuformer::str_cat;
using cpuformer::ValueError;

// A contiguous [B, H, T, X] buffer as a kernel operand.
template <class T>
StridedBHT<T> bht(T* data, int64_t H, int64_t T_, int64_t X) {
  return {data, H * T_ * X, T_ * X, X};
}

// Everything one attention call needs, checked and converted. Keeps the
// converted arrays (and the mask buffer) alive while the kernel runs.
struct Call {
  FloatArray q, k, v;
  bool three_d = false;
  AttentionParams p;
  FloatArray mask_array;         // a float32 mask used in place
  std::vector<float> mask_data;  // or a converted / [L, S]-expanded copy

  Shape out_shape() const { return three_d ? Shape{p.B, p.L, p.Dv} : Shape{p.B, p.H, p.L, p.Dv}; }
  StridedBHT<const float> qv() const { return bht(q.data(), p.H, p.L, p.D); }
  StridedBHT<const float> kv() const { return bht(k.data(), p.H, p.S, p.D); }
  StridedBHT<const float> vv() const { return bht(v.data(), p.H, p.S, p.Dv); }
};

std::string bhls(const AttentionParams& p, bool three_d) {
  return three_d ? str_cat("[N, L, S] = [", p.B, ", ", p.L, ", ", p.S, "]")
                 : str_cat("[B, H, L, S] = [", p.B, ", ", p.H, ", ", p.L, ", ", p.S, "]");
}

// attn_mask broadcastable to [B, H, L, S] (or [N, L, S] for 3-d inputs).
// Broadcast batch/head dims become stride 0; the [L, S] part is made
// contiguous; a bool mask (True = takes part) becomes 0 / -inf.
void set_mask(Call& c, py::handle obj) {
  AttentionParams& p = c.p;
  bool is_bool = false;
  py::array m = as_mask(obj, "attn_mask", &is_bool);
  const int64_t nd = c.three_d ? 3 : 4;
  if (m.ndim() > nd)
    throw ValueError(str_cat("attn_mask: expected at most ", nd, " dimensions (broadcastable to ", bhls(p, c.three_d),
                             "), got shape ", shape_str(m)));
  // Right-align the mask shape against [B, H, L, S] (a 3-d call is [N, L, S]:
  // its dims land on B, L and S).
  const int64_t target[4] = {p.B, p.H, p.L, p.S};
  const int pos3[3] = {0, 2, 3};
  int64_t ms[4] = {1, 1, 1, 1};
  for (int64_t d = 0; d < m.ndim(); ++d) {
    const int64_t t = nd - m.ndim() + d;
    ms[c.three_d ? pos3[t] : t] = m.shape(d);
  }
  for (int d = 0; d < 4; ++d)
    if (ms[d] != 1 && ms[d] != target[d])
      throw ValueError(str_cat("attn_mask: shape ", shape_str(m), " is not broadcastable to ", bhls(p, c.three_d)));
  const int64_t mb = ms[0], mh = ms[1], LS = p.L * p.S;
  p.mask_stride_b = mb == 1 ? 0 : mh * LS;
  p.mask_stride_h = mh == 1 ? 0 : LS;
  if (!is_bool && ms[2] == p.L && ms[3] == p.S) {  // already float32, contiguous, full [L, S]
    c.mask_array = py::reinterpret_borrow<FloatArray>(m);
    p.mask = c.mask_array.data();
    return;
  }
  // Expand to [mb, mh, L, S]. Source element (bh, i, j) of the C-contiguous
  // [mb, mh, ms2, ms3] mask, with stride 0 along a broadcast L or S dim.
  c.mask_data.resize(static_cast<size_t>(mb * mh * LS));
  const int64_t src_bh = ms[2] * ms[3], src_i = ms[2] == 1 ? 0 : ms[3], src_j = ms[3] == 1 ? 0 : 1;
  const float ninf = -std::numeric_limits<float>::infinity();
  const uint8_t* mb8 = is_bool ? static_cast<const uint8_t*>(m.data()) : nullptr;
  const float* mf = is_bool ? nullptr : static_cast<const float*>(m.data());
  for (int64_t bh = 0; bh < mb * mh; ++bh)
    for (int64_t i = 0; i < p.L; ++i)
      for (int64_t j = 0; j < p.S; ++j) {
        const int64_t src = bh * src_bh + i * src_i + j * src_j;
        c.mask_data[static_cast<size_t>(bh * LS + i * p.S + j)] = is_bool ? (mb8[src] ? 0.0f : ninf) : mf[src];
      }
  p.mask = c.mask_data.data();
}

// A bf16-rounded copy (the operands of bf16 products under autocast).
FloatArray rounded_copy(const FloatArray& a) {
  FloatArray r(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
  std::memcpy(r.mutable_data(), a.data(), static_cast<size_t>(a.size()) * sizeof(float));
  cpuformer::round_bf16_inplace(r.mutable_data(), r.size());
  return r;
}

Call prepare(py::handle query, py::handle key, py::handle value, py::handle attn_mask, bool is_causal,
             std::optional<double> scale) {
  Call c;
  c.q = as_float(query, "query");
  c.k = as_float(key, "key");
  c.v = as_float(value, "value");
  check_ndim_range(c.q, 3, 4, "query");
  const int64_t nd = c.q.ndim();
  c.three_d = nd == 3;
  const char* layout = nd == 4 ? "[B, H, S, D]" : "[N, S, D]";
  if (c.k.ndim() != nd)
    throw ValueError(str_cat("key: expected a ", nd, "-d array ", layout, " like query, got shape ", shape_str(c.k),
                             " (query is ", shape_str(c.q), ")"));
  if (c.v.ndim() != nd)
    throw ValueError(str_cat("value: expected a ", nd, "-d array like query, got shape ", shape_str(c.v),
                             " (query is ", shape_str(c.q), ")"));
  AttentionParams& p = c.p;
  p.B = c.q.shape(0);
  p.H = nd == 4 ? c.q.shape(1) : 1;
  p.L = c.q.shape(nd - 2);
  p.D = c.q.shape(nd - 1);
  p.S = c.k.shape(nd - 2);
  p.Dv = c.v.shape(nd - 1);
  if (p.D < 1) throw ValueError(str_cat("query: expected last dim (head dim) >= 1, got shape ", shape_str(c.q)));
  if (p.Dv < 1) throw ValueError(str_cat("value: expected last dim >= 1, got shape ", shape_str(c.v)));
  for (auto [a, name] : {std::pair<const FloatArray*, const char*>{&c.k, "key"}, {&c.v, "value"}}) {
    if (a->shape(0) != p.B)
      throw ValueError(str_cat(name, ": expected batch size ", p.B, ", got ", a->shape(0), " (query is ",
                               shape_str(c.q), ", ", name, " is ", shape_str(*a), ")"));
    if (nd == 4 && a->shape(1) != p.H)
      throw ValueError(str_cat(name, ": expected ", p.H, " heads, got ", a->shape(1), " (query is ", shape_str(c.q),
                               ", ", name, " is ", shape_str(*a), ")"));
  }
  if (c.k.shape(nd - 1) != p.D)
    throw ValueError(str_cat("key: expected last dim ", p.D, ", got ", c.k.shape(nd - 1), " (query is ",
                             shape_str(c.q), ", key is ", shape_str(c.k), ")"));
  if (c.v.shape(nd - 2) != p.S)
    throw ValueError(str_cat("value: expected ", p.S, " keys along dim ", nd - 2, ", got ", c.v.shape(nd - 2),
                             " (key is ", shape_str(c.k), ", value is ", shape_str(c.v), ")"));
  if (scale) {
    const double s = *scale;
    if (!(std::isfinite(s) && s > 0 && std::isfinite(static_cast<float>(s))))
      throw ValueError(str_cat("scale: expected a finite positive number, got ", s));
    p.scale = static_cast<float>(s);
  } else {
    p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.D)));
  }
  p.is_causal = is_causal;
  if (!attn_mask.is_none()) set_mask(c, attn_mask);
  if (cpuformer::autocast_dtype() == cpuformer::DType::BFloat16) {  // bf16 score and value products
    p.bf16 = true;
    c.q = rounded_copy(c.q);
    c.k = rounded_copy(c.k);
    c.v = rounded_copy(c.v);
  }
  return c;
}

// out [.., L, Dv] and lse [B*H*L].
void run_forward(const Call& c, Tensor& out, Tensor& lse) {
  const AttentionParams& p = c.p;
  out = Tensor::empty(c.out_shape());
  lse = Tensor::empty({p.B * p.H * p.L});
  py::gil_scoped_release nogil;
  cpuformer::attention_forward(bht(out.data(), p.H, p.L, p.Dv), lse.data(), c.qv(), c.kv(), c.vv(), p);
}

// The per-row log-sum-exp has the output's shape without its last dim.
Shape lse_shape(const Call& c) { return c.three_d ? Shape{c.p.B, c.p.L} : Shape{c.p.B, c.p.H, c.p.L}; }

py::object sdpa(py::handle query, py::handle key, py::handle value, py::handle attn_mask, bool is_causal,
                std::optional<double> scale, bool return_lse) {
  const Call c = prepare(query, key, value, attn_mask, is_causal, scale);
  Tensor out, lse;
  run_forward(c, out, lse);
  if (!return_lse) return to_numpy(out);
  lse = lse.reshape(lse_shape(c));
  return py::make_tuple(to_numpy(out), to_numpy(lse));
}

py::tuple sdpa_backward(py::handle grad_out, py::handle query, py::handle key, py::handle value, py::handle attn_mask,
                        bool is_causal, std::optional<double> scale, py::handle saved_out, py::handle saved_lse) {
  const Call c = prepare(query, key, value, attn_mask, is_causal, scale);
  const AttentionParams& p = c.p;
  FloatArray g = as_float(grad_out, "grad_out");
  if (shape_of(g) != c.out_shape())
    throw ValueError(str_cat("grad_out: expected shape ", cpuformer::shape_str(c.out_shape()), " (the output's), got ",
                             shape_str(g)));
  if (p.bf16) g = rounded_copy(g);
  if (saved_out.is_none() != saved_lse.is_none())
    throw ValueError(str_cat("out and lse: pass both (from scaled_dot_product_attention(..., return_lse=True)) or "
                             "neither, got ", saved_out.is_none() ? "lse only" : "out only"));
  Tensor out, lse;
  FloatArray out_arr, lse_arr;
  const float* out_ptr;
  const float* lse_ptr;
  if (saved_out.is_none()) {
    run_forward(c, out, lse);  // nothing saved: recompute out and lse
    out_ptr = out.data();
    lse_ptr = lse.data();
  } else {
    out_arr = as_float(saved_out, "out");
    lse_arr = as_float(saved_lse, "lse");
    if (shape_of(out_arr) != c.out_shape())
      throw ValueError(str_cat("out: expected shape ", cpuformer::shape_str(c.out_shape()),
                               " (the forward's output), got ", shape_str(out_arr)));
    if (shape_of(lse_arr) != lse_shape(c))
      throw ValueError(str_cat("lse: expected shape ", cpuformer::shape_str(lse_shape(c)),
                               " (the forward's log-sum-exp per query row), got ", shape_str(lse_arr)));
    out_ptr = out_arr.data();
    lse_ptr = lse_arr.data();
  }
  Tensor dq = Tensor::zeros(shape_of(c.q)), dk = Tensor::zeros(shape_of(c.k)), dv = Tensor::zeros(shape_of(c.v));
  {
    py::gil_scoped_release nogil;
    cpuformer::attention_backward(bht(dq.data(), p.H, p.L, p.D), bht(dk.data(), p.H, p.S, p.D),
                                  bht(dv.data(), p.H, p.S, p.Dv), bht(g.data(), p.H, p.L, p.Dv), c.qv(), c.kv(),
                                  c.vv(), bht(out_ptr, p.H, p.L, p.Dv), lse_ptr, p);
  }
  return py::make_tuple(to_numpy(dq), to_numpy(dk), to_numpy(dv));
}

}  // namespace

void bind_attention(py::module_& m) {
  m.def("scaled_dot_product_attention", &sdpa, py::arg("query"), py::arg("key"), py::arg("value"),
        py::arg("attn_mask") = py::none(), py::arg("is_causal") = false, py::arg("scale") = py::none(),
        py::arg("return_lse") = false,
        "softmax(query·keyᵀ·scale + mask)·value; see cpuformer.functional.scaled_dot_product_attention");
  m.def("scaled_dot_product_attention_backward", &sdpa_backward, py::arg("grad_out"), py::arg("query"),
        py::arg("key"), py::arg("value"), py::arg("attn_mask") = py::none(), py::arg("is_causal") = false,
        py::arg("scale") = py::none(), py::arg("out") = py::none(), py::arg("lse") = py::none(),
        "(dquery, dkey, dvalue) of scaled_dot_product_attention given grad_out");
}

}  // namespace cfpy
