// Functional embedding, sinusoidal positional encoding and cross-entropy:
// validate, convert, release the GIL, call the kernel, hand back NumPy.
#include <cmath>

#include "bindings.hpp"
#include "convert.hpp"
#include "cpuformer/ops/cross_entropy.hpp"
#include "cpuformer/ops/embedding.hpp"
#include "index_check.hpp"

namespace cfpy {
namespace {

using cpuformer::str_cat;
using cpuformer::ValueError;

// ids [...] , weight [V, C] -> out [..., C]
py::array_t<float> embedding(py::handle ids_obj, py::handle w_obj) {
  IndexArray ids = as_index(ids_obj, "input_ids");
  FloatArray w = as_float(w_obj, "weight");
  check_ndim(w, 2, "weight");
  const int64_t V = w.shape(0), C = w.shape(1);
  check_index_range(ids, V, "input_ids", "id");
  Shape oshape = shape_of(ids);
  oshape.push_back(C);
  Tensor out = Tensor::empty(oshape);
  const int64_t N = static_cast<int64_t>(ids.size());
  {
    py::gil_scoped_release nogil;
    cpuformer::embedding_forward(out.data(), ids.data(), w.data(), N, V, C);
  }
  return to_numpy(out);
}

// grad_out [..., C], ids [...] -> dweight [V, C]
py::array_t<float> embedding_backward(py::handle g_obj, py::handle ids_obj, int64_t num_embeddings) {
  if (num_embeddings < 1) throw ValueError(str_cat("num_embeddings: expected >= 1, got ", num_embeddings));
  FloatArray g = as_float(g_obj, "grad_out");
  IndexArray ids = as_index(ids_obj, "input_ids");
  const Shape ishape = shape_of(ids), gshape = shape_of(g);
  bool ok = gshape.size() == ishape.size() + 1;
  for (size_t d = 0; ok && d < ishape.size(); ++d) ok = gshape[d] == ishape[d];
  if (!ok) {
    std::string expected = cpuformer::shape_str(ishape);
    expected.insert(expected.size() - 1, ishape.empty() ? "C" : ", C");
    throw ValueError(str_cat("grad_out: expected shape input_ids.shape + [C] = ", expected, ", got ", shape_str(g)));
  }
  const int64_t V = num_embeddings, C = gshape.back();
  check_index_range(ids, V, "input_ids", "id");
  Tensor dw = Tensor::zeros({V, C});
  const int64_t N = static_cast<int64_t>(ids.size());
  {
    py::gil_scoped_release nogil;
    cpuformer::embedding_backward(dw.data(), g.data(), ids.data(), N, V, C);
  }
  return to_numpy(dw);
}

py::array_t<float> sinusoidal_positional_encoding(int64_t length, int64_t d_model, int64_t offset) {
  if (length < 0) throw ValueError(str_cat("length: expected >= 0, got ", length));
  if (d_model < 1) throw ValueError(str_cat("d_model: expected >= 1, got ", d_model));
  if (offset < 0) throw ValueError(str_cat("offset: expected >= 0, got ", offset));
  Tensor out = Tensor::empty({length, d_model});
  {
    py::gil_scoped_release nogil;
    cpuformer::sinusoidal_positional_encoding(out.data(), length, d_model, offset);
  }
  return to_numpy(out);
}

// Checked, converted arguments of cross_entropy(+_backward).
struct CrossEntropyArgs {
  FloatArray logits;  // [N, C] or [B, T, C]
  IndexArray target;  // [N] or [B, T]
  int64_t N = 0, C = 0;
};

CrossEntropyArgs check_cross_entropy(py::handle logits_obj, py::handle target_obj, int64_t ignore_index,
                                     double label_smoothing) {
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
    throw ValueError(str_cat("label_smoothing: expected a value in [0, 1], got ", label_smoothing));
  CrossEntropyArgs a;
  a.logits = as_float(logits_obj, "logits");
  check_ndim_range(a.logits, 2, 3, "logits");
  a.target = as_index(target_obj, "target");
  const Shape lshape = shape_of(a.logits);
  const Shape expected(lshape.begin(), lshape.end() - 1);
  a.C = lshape.back();
  if (a.C < 1) throw ValueError(str_cat("logits: expected at least 1 class, got shape ", shape_str(a.logits)));
  if (shape_of(a.target) != expected)
    throw ValueError(str_cat("target: expected shape ", expected.size() == 1 ? "[N] = " : "[B, T] = ",
                             cpuformer::shape_str(expected), ", got ", shape_str(a.target)));
  check_index_range(a.target, a.C, "target", "class", true, ignore_index);
  a.N = static_cast<int64_t>(a.target.size());
  return a;
}

float cross_entropy(py::handle logits, py::handle target, int64_t ignore_index, double label_smoothing) {
  CrossEntropyArgs a = check_cross_entropy(logits, target, ignore_index, label_smoothing);
  py::gil_scoped_release nogil;
  return cpuformer::cross_entropy_forward(a.logits.data(), a.target.data(), a.N, a.C, ignore_index,
                                          static_cast<float>(label_smoothing));
}

py::array_t<float> cross_entropy_backward(py::handle logits, py::handle target, int64_t ignore_index,
                                          double label_smoothing, double grad_output) {
  CrossEntropyArgs a = check_cross_entropy(logits, target, ignore_index, label_smoothing);
  Tensor d = Tensor::zeros(shape_of(a.logits));
  {
    py::gil_scoped_release nogil;
    cpuformer::cross_entropy_backward(d.data(), a.logits.data(), a.target.data(), a.N, a.C, ignore_index,
                                      static_cast<float>(label_smoothing), static_cast<float>(grad_output));
  }
  return to_numpy(d);
}

}  // namespace

void bind_functional_embed_loss(py::module_& m) {
  m.def("embedding", &embedding, py::arg("input_ids"), py::arg("weight"),
        "ids [...] (ints), weight [V, C] -> weight[ids] [..., C]");
  m.def("embedding_backward", &embedding_backward, py::arg("grad_out"), py::arg("input_ids"),
        py::arg("num_embeddings"), "grad_out [..., C], ids [...] -> dweight [V, C] (scatter-add)");
  m.def("sinusoidal_positional_encoding", &sinusoidal_positional_encoding, py::arg("length"), py::arg("d_model"),
        py::arg("offset") = 0, "-> [length, d_model] sinusoidal position table");
  m.def("cross_entropy", &cross_entropy, py::arg("logits"), py::arg("target"), py::arg("ignore_index") = -100,
        py::arg("label_smoothing") = 0.0, "logits [N, C] or [B, T, C], target [N] or [B, T] -> mean loss");
  m.def("cross_entropy_backward", &cross_entropy_backward, py::arg("logits"), py::arg("target"),
        py::arg("ignore_index") = -100, py::arg("label_smoothing") = 0.0, py::arg("grad_output") = 1.0,
        "gradient of the mean cross-entropy w.r.t. the logits, times grad_output");
}

}  // namespace cfpy
