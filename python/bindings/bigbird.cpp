// BigBird block-sparse attention (functional): the layout, forward and
// backward. Argument checks and GIL release around ops/bigbird_attention.
#include <pybind11/stl.h>

#include <optional>
#include <vector>

#include "bindings.hpp"
#include "convert.hpp"
#include "cpuformer/ops/bigbird_attention.hpp"
#include "qkv.hpp"

namespace cfpy {
namespace {

using cpuformer::str_cat;
using cpuformer::ValueError;

cpuformer::BigBirdLayoutParams layout_params(int64_t block_size, int64_t w, int64_t g, int64_t r, uint64_t seed,
                                             bool is_causal) {
  cpuformer::BigBirdLayoutParams lp;
  lp.block_size = block_size;
  lp.num_window_blocks = w;
  lp.num_global_blocks = g;
  lp.num_random_blocks = r;
  lp.seed = seed;
  lp.is_causal = is_causal;
  cpuformer::check_bigbird_layout_params(lp, "bigbird_attention");
  return lp;
}

py::array_t<bool> layout(int64_t T, int64_t block_size, int64_t w, int64_t g, int64_t r, uint64_t seed,
                         bool is_causal) {
  auto lp = layout_params(block_size, w, g, r, seed, is_causal);
  std::vector<uint8_t> cells = cpuformer::bigbird_layout(T, lp);
  const int64_t nb = (T + block_size - 1) / block_size;
  py::array_t<bool> out({nb, nb});
  bool* dst = out.mutable_data();
  for (size_t i = 0; i < cells.size(); ++i) dst[i] = cells[i] != 0;
  return out;
}

struct Call {
  QKV c;
  cpuformer::BigBirdParams s;
  std::vector<uint8_t> padding;
};

Call load(py::handle q, py::handle k, py::handle v, int64_t block_size, int64_t w, int64_t g, int64_t r,
          uint64_t seed, bool is_causal, py::handle key_padding_mask, std::optional<double> scale, const char* fn) {
  Call call;
  call.c = load_qkv(q, k, v, scale, fn);
  const QKV& c = call.c;
  if (c.L != c.S)
    throw ValueError(str_cat(fn, ": self-attention needs as many keys as queries, got L=", c.L, " and S=", c.S));
  call.s.layout = layout_params(block_size, w, g, r, seed, is_causal);
  if (!key_padding_mask.is_none()) {
    py::array a = py::array::ensure(key_padding_mask);
    if (!a || a.dtype().kind() != 'b')
      throw cpuformer::TypeError(str_cat(fn, ": key_padding_mask: expected a boolean array [B, T] (True = padding)"));
    auto u = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(a);
    if (shape_of(u) != Shape({c.B, c.L}))
      throw ValueError(str_cat(fn, ": key_padding_mask: expected shape [", c.B, ", ", c.L, "], got ", shape_str(u)));
    call.padding.assign(u.data(), u.data() + u.size());
  }
  auto& s = call.s;
  s.B = c.B;
  s.H = c.H;
  s.T = c.L;
  s.D = c.D;
  s.Dv = c.Dv;
  s.scale = c.scale;
  s.key_padding = call.padding.empty() ? nullptr : call.padding.data();
  return call;
}

py::array_t<float> forward(py::handle q, py::handle k, py::handle v, int64_t block_size, int64_t w, int64_t g,
                           int64_t r, uint64_t seed, bool is_causal, py::handle key_padding_mask,
                           std::optional<double> scale) {
  const Call call = load(q, k, v, block_size, w, g, r, seed, is_causal, key_padding_mask, scale, "bigbird_attention");
  const QKV& c = call.c;
  Tensor out = Tensor::empty(c.out_shape()), lse = Tensor::empty({c.B * c.H * c.L});
  {
    py::gil_scoped_release nogil;
    cpuformer::bigbird_attention_forward(bht(out.data(), c.H, c.L, c.Dv), lse.data(), c.qv(), c.kv(), c.vv(), call.s);
  }
  return to_numpy(out);
}

py::tuple backward(py::handle grad_out, py::handle q, py::handle k, py::handle v, int64_t block_size, int64_t w,
                   int64_t g, int64_t r, uint64_t seed, bool is_causal, py::handle key_padding_mask,
                   std::optional<double> scale) {
  const Call call =
      load(q, k, v, block_size, w, g, r, seed, is_causal, key_padding_mask, scale, "bigbird_attention_backward");
  const QKV& c = call.c;
  const FloatArray gr = load_grad(grad_out, c);
  Tensor out = Tensor::empty(c.out_shape()), lse = Tensor::empty({c.B * c.H * c.L});
  Tensor dq = Tensor::zeros(shape_of(c.q)), dk = Tensor::zeros(shape_of(c.k)), dv = Tensor::zeros(shape_of(c.v));
  {
    py::gil_scoped_release nogil;  // the functional API keeps no state: recompute out and lse
    cpuformer::bigbird_attention_forward(bht(out.data(), c.H, c.L, c.Dv), lse.data(), c.qv(), c.kv(), c.vv(), call.s);
    cpuformer::bigbird_attention_backward(bht(dq.data(), c.H, c.L, c.D), bht(dk.data(), c.H, c.S, c.D),
                                          bht(dv.data(), c.H, c.S, c.Dv), bht(gr.data(), c.H, c.L, c.Dv), c.qv(),
                                          c.kv(), c.vv(), bht(static_cast<const float*>(out.data()), c.H, c.L, c.Dv),
                                          lse.data(), call.s);
  }
  return py::make_tuple(to_numpy(dq), to_numpy(dk), to_numpy(dv));
}

}  // namespace

void bind_bigbird(py::module_& m) {
  m.def("bigbird_layout", &layout, py::arg("T"), py::arg("block_size"), py::arg("num_window_blocks"),
        py::arg("num_global_blocks"), py::arg("num_random_blocks"), py::arg("seed"), py::arg("is_causal"));
  m.def("bigbird_attention", &forward, py::arg("query"), py::arg("key"), py::arg("value"), py::arg("block_size"),
        py::arg("num_window_blocks"), py::arg("num_global_blocks"), py::arg("num_random_blocks"), py::arg("seed"),
        py::arg("is_causal"), py::arg("key_padding_mask"), py::arg("scale"));
  m.def("bigbird_attention_backward", &backward, py::arg("grad_out"), py::arg("query"), py::arg("key"),
        py::arg("value"), py::arg("block_size"), py::arg("num_window_blocks"), py::arg("num_global_blocks"),
        py::arg("num_random_blocks"), py::arg("seed"), py::arg("is_causal"), py::arg("key_padding_mask"),
        py::arg("scale"));
}

}  // namespace cfpy
