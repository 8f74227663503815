// Long-sequence attention (functional): sliding window + global tokens,
// Performer and Linformer, forward and backward. Argument checks and GIL
// release around the kernels in ops/sparse_attention and ops/linear_attention.
#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <string>

#include "bindings.hpp"
#include "convert.hpp"
#include "qkv.hpp"
#include "cpuformer/ops/linear_attention.hpp"
#include "cpuformer/ops/sparse_attention.hpp"

namespace cfpy {
namespace {

using cpuformer::StridedBHT;
using cpuformer::str_cat;
using cpuformer::ValueError;

const float* cd(const Tensor& t) { return t.data(); }

// ---------------------------------------------------------------------------
cpuformer::SlidingWindowParams window_params(const QKV& c, int64_t window, bool is_causal, int64_t num_global) {
  if (c.L != c.S)
    throw ValueError(str_cat("sliding_window_attention: self-attention needs as many keys as queries, got L=", c.L,
                             " and S=", c.S));
  if (window < 0) throw ValueError(str_cat("sliding_window_attention: window must be >= 0, got ", window));
  if (num_global < 0 || num_global > c.L)
    throw ValueError(str_cat("sliding_window_attention: num_global must be in [0, T=", c.L, "], got ", num_global));
  cpuformer::SlidingWindowParams s;
  s.B = c.B;
  s.H = c.H;
  s.T = c.L;
  s.D = c.D;
  s.Dv = c.Dv;
  s.window = window;
  s.num_global = num_global;
  s.is_causal = is_causal;
  s.scale = c.scale;
  return s;
}

py::array_t<float> window_fwd(py::handle q, py::handle k, py::handle v, int64_t window, bool is_causal,
                              int64_t num_global, std::optional<double> scale) {
  const QKV c = load_qkv(q, k, v, scale, "sliding_window_attention");
  const auto s = window_params(c, window, is_causal, num_global);
  Tensor out = Tensor::empty(c.out_shape()), lse = Tensor::empty({c.B * c.H * c.L});
  {
    py::gil_scoped_release nogil;
    cpuformer::sliding_window_attention_forward(bht(out.data(), c.H, c.L, c.Dv), lse.data(), c.qv(), c.kv(), c.vv(),
                                                s);
  }
  return to_numpy(out);
}

py::tuple window_bwd(py::handle grad_out, py::handle q, py::handle k, py::handle v, int64_t window, bool is_causal,
                     int64_t num_global, std::optional<double> scale) {
  const QKV c = load_qkv(q, k, v, scale, "sliding_window_attention_backward");
  const auto s = window_params(c, window, is_causal, num_global);
  const FloatArray g = load_grad(grad_out, c);
  Tensor out = Tensor::empty(c.out_shape()), lse = Tensor::empty({c.B * c.H * c.L});
  Tensor dq = Tensor::zeros(shape_of(c.q)), dk = Tensor::zeros(shape_of(c.k)), dv = Tensor::zeros(shape_of(c.v));
  {
    py::gil_scoped_release nogil;  // the functional API keeps no state: recompute out and lse
    cpuformer::sliding_window_attention_forward(bht(out.data(), c.H, c.L, c.Dv), lse.data(), c.qv(), c.kv(), c.vv(),
                                                s);
    cpuformer::sliding_window_attention_backward(
        bht(dq.data(), c.H, c.L, c.D), bht(dk.data(), c.H, c.S, c.D), bht(dv.data(), c.H, c.S, c.Dv),
        bht(g.data(), c.H, c.L, c.Dv), c.qv(), c.kv(), c.vv(),
        bht(static_cast<const float*>(out.data()), c.H, c.L, c.Dv), lse.data(), s);
  }
  return py::make_tuple(to_numpy(dq), to_numpy(dk), to_numpy(dv));
}

// ---------------------------------------------------------------------------
void check_num_features(int64_t m) {
  if (m < 1) throw ValueError(str_cat("num_features must be >= 1, got ", m));
}

cpuformer::PerformerParams performer_params(const QKV& c, int64_t m, bool is_causal) {
  check_num_features(m);
  if (is_causal && c.L != c.S)
    throw ValueError(str_cat("performer_attention: is_causal needs as many keys as queries, got L=", c.L, " and S=",
                             c.S));
  cpuformer::PerformerParams p;
  p.B = c.B;
  p.H = c.H;
  p.L = c.L;
  p.S = c.S;
  p.D = c.D;
  p.Dv = c.Dv;
  p.m = m;
  p.scale = c.scale;
  p.is_causal = is_causal;
  return p;
}

py::array_t<float> features(int64_t m, int64_t D, uint64_t seed) {
  check_num_features(m);
  if (D < 1) throw ValueError(str_cat("head_dim must be >= 1, got ", D));
  Tensor w = Tensor::empty({m, D});
  cpuformer::performer_features(w.data(), m, D, seed);
  return to_numpy(w);
}

py::array_t<float> performer_fwd(py::handle q, py::handle k, py::handle v, int64_t m, bool is_causal, uint64_t seed,
                                 std::optional<double> scale) {
  const QKV c = load_qkv(q, k, v, scale, "performer_attention");
  const auto p = performer_params(c, m, is_causal);
  Tensor w = Tensor::empty({m, c.D}), out = Tensor::empty(c.out_shape());
  {
    py::gil_scoped_release nogil;
    cpuformer::performer_features(w.data(), m, c.D, seed);
    cpuformer::performer_attention_forward(bht(out.data(), c.H, c.L, c.Dv), c.qv(), c.kv(), c.vv(), w.data(), p);
  }
  return to_numpy(out);
}

py::tuple performer_bwd(py::handle grad_out, py::handle q, py::handle k, py::handle v, int64_t m, bool is_causal,
                        uint64_t seed, std::optional<double> scale) {
  const QKV c = load_qkv(q, k, v, scale, "performer_attention_backward");
  const auto p = performer_params(c, m, is_causal);
  const FloatArray g = load_grad(grad_out, c);
  Tensor w = Tensor::empty({m, c.D});
  Tensor dq = Tensor::zeros(shape_of(c.q)), dk = Tensor::zeros(shape_of(c.k)), dv = Tensor::zeros(shape_of(c.v));
  {
    py::gil_scoped_release nogil;
    cpuformer::performer_features(w.data(), m, c.D, seed);
    cpuformer::performer_attention_backward(bht(dq.data(), c.H, c.L, c.D), bht(dk.data(), c.H, c.S, c.D),
                                            bht(dv.data(), c.H, c.S, c.Dv), bht(g.data(), c.H, c.L, c.Dv), c.qv(),
                                            c.kv(), c.vv(), w.data(), p);
  }
  return py::make_tuple(to_numpy(dq), to_numpy(dk), to_numpy(dv));
}

// ---------------------------------------------------------------------------
// Linformer: out = softmax(scale·q (E k)ᵀ) (F v), E/F [K, max_len] applied to
// the first S columns (shared by every head).
struct Lin {
  QKV c;
  FloatArray e, f;
  int64_t K = 0;
};

Lin load_lin(py::handle q, py::handle k, py::handle v, py::handle e, py::handle f, std::optional<double> scale) {
  Lin l;
  l.c = load_qkv(q, k, v, scale, "linformer_attention");
  l.e = as_float(e, "proj_k");
  l.f = as_float(f, "proj_v");
  check_ndim(l.e, 2, "proj_k");
  check_ndim(l.f, 2, "proj_v");
  l.K = l.e.shape(0);
  if (l.K < 1) throw ValueError(str_cat("proj_k: expected at least one row (linformer_k >= 1), got ", shape_str(l.e)));
  if (l.e.shape(1) < l.c.S)
    throw ValueError(str_cat("proj_k: expected at least S=", l.c.S, " columns (max_len >= sequence length), got ",
                             shape_str(l.e)));
  if (shape_of(l.f) != shape_of(l.e))
    throw ValueError(str_cat("proj_v: expected the shape of proj_k ", shape_str(l.e), ", got ", shape_str(l.f)));
  return l;
}

// kp/vp [B*H, K, X] projections (one batch row per (b, h)).
void lin_project(const Lin& l, Tensor& kp, Tensor& vp) {
  const QKV& c = l.c;
  kp = Tensor::empty({c.B * c.H, l.K, c.D});
  vp = Tensor::empty({c.B * c.H, l.K, c.Dv});
  cpuformer::linformer_project_forward(kp.data(), c.k.data(), c.D, l.e.data(), l.e.shape(1), c.B * c.H, c.S, l.K, c.D,
                                       nullptr);
  cpuformer::linformer_project_forward(vp.data(), c.v.data(), c.Dv, l.f.data(), l.f.shape(1), c.B * c.H, c.S, l.K,
                                       c.Dv, nullptr);
}

cpuformer::AttentionParams lin_params(const Lin& l) {
  cpuformer::AttentionParams p;
  p.B = l.c.B;
  p.H = l.c.H;
  p.L = l.c.L;
  p.S = l.K;
  p.D = l.c.D;
  p.Dv = l.c.Dv;
  p.scale = l.c.scale;
  return p;
}

py::array_t<float> linformer_fwd(py::handle q, py::handle k, py::handle v, py::handle e, py::handle f,
                                 std::optional<double> scale) {
  const Lin l = load_lin(q, k, v, e, f, scale);
  const QKV& c = l.c;
  Tensor kp, vp, out = Tensor::empty(c.out_shape()), lse = Tensor::empty({c.B * c.H * c.L});
  {
    py::gil_scoped_release nogil;
    lin_project(l, kp, vp);
    cpuformer::attention_forward(bht(out.data(), c.H, c.L, c.Dv), lse.data(), c.qv(), bht(cd(kp), c.H, l.K, c.D),
                                 bht(cd(vp), c.H, l.K, c.Dv), lin_params(l));
  }
  return to_numpy(out);
}

py::tuple linformer_bwd(py::handle grad_out, py::handle q, py::handle k, py::handle v, py::handle e, py::handle f,
                        std::optional<double> scale) {
  const Lin l = load_lin(q, k, v, e, f, scale);
  const QKV& c = l.c;
  const FloatArray g = load_grad(grad_out, c);
  Tensor kp, vp, out = Tensor::empty(c.out_shape()), lse = Tensor::empty({c.B * c.H * c.L});
  Tensor dq = Tensor::zeros(shape_of(c.q)), dk = Tensor::zeros(shape_of(c.k)), dv = Tensor::zeros(shape_of(c.v));
  Tensor de = Tensor::zeros(shape_of(l.e)), df = Tensor::zeros(shape_of(l.f));
  {
    py::gil_scoped_release nogil;
    lin_project(l, kp, vp);
    const auto p = lin_params(l);
    const auto kpv = bht(cd(kp), c.H, l.K, c.D), vpv = bht(cd(vp), c.H, l.K, c.Dv);
    cpuformer::attention_forward(bht(out.data(), c.H, c.L, c.Dv), lse.data(), c.qv(), kpv, vpv, p);
    Tensor dkp = Tensor::zeros(kp.shape()), dvp = Tensor::zeros(vp.shape());
    cpuformer::attention_backward(bht(dq.data(), c.H, c.L, c.D), bht(dkp.data(), c.H, l.K, c.D),
                                  bht(dvp.data(), c.H, l.K, c.Dv), bht(g.data(), c.H, c.L, c.Dv), c.qv(), kpv, vpv,
                                  bht(cd(out), c.H, c.L, c.Dv), lse.data(), p);
    cpuformer::linformer_project_backward(dk.data(), c.D, de.data(), dkp.data(), c.k.data(), c.D, l.e.data(),
                                          l.e.shape(1), c.B * c.H, c.S, l.K, c.D, nullptr);
    cpuformer::linformer_project_backward(dv.data(), c.Dv, df.data(), dvp.data(), c.v.data(), c.Dv, l.f.data(),
                                          l.f.shape(1), c.B * c.H, c.S, l.K, c.Dv, nullptr);
  }
  return py::make_tuple(to_numpy(dq), to_numpy(dk), to_numpy(dv), to_numpy(de), to_numpy(df));
}

}  // namespace

void bind_longseq(py::module_& m) {
  m.def("sliding_window_attention", &window_fwd, py::arg("query"), py::arg("key"), py::arg("value"),
        py::arg("window"), py::arg("is_causal") = false, py::arg("num_global") = 0, py::arg("scale") = py::none());
  m.def("sliding_window_attention_backward", &window_bwd, py::arg("grad_out"), py::arg("query"), py::arg("key"),
        py::arg("value"), py::arg("window"), py::arg("is_causal") = false, py::arg("num_global") = 0,
        py::arg("scale") = py::none());
  m.def("performer_features", &features, py::arg("num_features"), py::arg("head_dim"), py::arg("seed") = 0);
  m.def("performer_attention", &performer_fwd, py::arg("query"), py::arg("key"), py::arg("value"),
        py::arg("num_features") = 256, py::arg("is_causal") = false, py::arg("seed") = 0, py::arg("scale") = py::none());
  m.def("performer_attention_backward", &performer_bwd, py::arg("grad_out"), py::arg("query"), py::arg("key"),
        py::arg("value"), py::arg("num_features") = 256, py::arg("is_causal") = false, py::arg("seed") = 0,
        py::arg("scale") = py::none());
  m.def("linformer_attention", &linformer_fwd, py::arg("query"), py::arg("key"), py::arg("value"), py::arg("proj_k"),
        py::arg("proj_v"), py::arg("scale") = py::none());
  m.def("linformer_attention_backward", &linformer_bwd, py::arg("grad_out"), py::arg("query"), py::arg("key"),
        py::arg("value"), py::arg("proj_k"), py::arg("proj_v"), py::arg("scale") = py::none());
}

}  // namespace cfpy
