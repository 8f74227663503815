#include "cpuformer/nn/linear.hpp"

#include <cmath>

#include "cpuformer/error.hpp"
#include "cpuformer/runtime/grad_mode.hpp"
#include "cpuformer/ops/embedding.hpp"
#include "cpuformer/ops/linear.hpp"

namespace cpuformer {

void check_last_dim(const Tensor& t, int64_t size, const char* what) {
  CF_CHECK_VALUE(t.dim() >= 1, what, ": expected at least 1 dimension, got a scalar");
  CF_CHECK_VALUE(t.size(-1) == size, what, ": expected last dim ", size, ", got ", t.size(-1), " (shape ",
                 shape_str(t.shape()), ")");
}

void weight_linear(float* out, const float* x, const Parameter& w, const float* bias, int64_t N, Activation act,
                   int64_t row0, int64_t rows) {
  const Shape shape = w.shape();
  const int64_t O = shape[0], I = shape[1];
  if (rows < 0) rows = O - row0;
  if (w.packed) {
    packed_linear_forward(out, rows, x, I, *w.packed, bias, N, act, row0, row0 + rows);
    return;
  }
  if (autocast_dtype() == DType::BFloat16) {
    linear_forward(out, x, w.value.data() + row0 * I, bias ? bias + row0 : nullptr, N, I, rows, act,
                   DType::BFloat16);
    return;
  }
  // Inference with enough rows for the packed GEMM (ops/gemm.cpp's rule) and
  // few enough that re-packing the weight is a noticeable share of the call:
  // the weight's pre-packed copy, built once, saves re-packing it per call.
  // (At kPrepackMaxRows rows the packing is a few percent of the product;
  // larger calls do without, and a model only ever used for them keeps no
  // second copy of its weights: BERT-base B8 x T128 measured a 715 MB peak
  // with the copies, 412 MB without.) Under grad mode the weights are
  // being trained: they change every step, so a copy would save nothing.
  constexpr int64_t kPrepackMaxRows = 512;
  if (!grad_enabled() && N >= 4 && N <= kPrepackMaxRows && rows >= 16 && I >= 8) {
    if (auto pw = w.prepacked()) {
      if (row0 % packed_row_align(*pw) == 0) {
        packed_linear_forward(out, rows, x, I, *pw, bias, N, act, row0, row0 + rows);
        return;
      }
    }
  }
  linear_forward(out, x, w.value.data() + row0 * I, bias ? bias + row0 : nullptr, N, I, rows, act);
}

void weight_lookup(float* out, const Parameter& w, const int64_t* ids, int64_t N) {
  const Shape shape = w.shape();
  if (!w.packed) {
    embedding_forward(out, ids, w.value.data(), N, shape[0], shape[1]);
    return;
  }
  for (int64_t n = 0; n < N; ++n)
    CF_CHECK_INDEX(ids[n] >= 0 && ids[n] < shape[0], "embedding: token id ", ids[n], " at position ", n,
                   " is out of range [0, ", shape[0], ")");
  dequantize_rows(*w.packed, ids, N, out);
}

Linear::Linear(int64_t in_features, int64_t out_features, bool bias) : in_(in_features), out_(out_features) {
  CF_CHECK_VALUE(in_features >= 1, "Linear: in_features must be >= 1, got ", in_features);
  CF_CHECK_VALUE(out_features >= 1, "Linear: out_features must be >= 1, got ", out_features);
  const float bound = 1.0f / std::sqrt(static_cast<float>(in_features));
  weight_ = &register_parameter("weight", {out_features, in_features}, /*matrix=*/true);
  init_uniform(weight_->value, -bound, bound);
  if (bias) {
    bias_ = &register_parameter("bias", {out_features});
    init_uniform(bias_->value, -bound, bound);
  }
}

Tensor Linear::forward(const Tensor& x) {
  check_last_dim(x, in_, "Linear input");
  Shape oshape = x.shape();
  oshape.back() = out_;
  Tensor y = Tensor::empty(oshape);
  const int64_t N = x.numel() / in_;
  weight_linear(y.data(), x.data(), *weight_, bias_ ? bias_->value.data() : nullptr, N);
  x_ = saves_activations() ? x : Tensor();
  dtype_ = autocast_dtype();
  return y;
}

Tensor Linear::backward(const Tensor& dout) {
  check_trainable("Linear.backward");
  CF_CHECK_STATE(x_.defined(), "Linear.backward called before forward (or after a forward under no_grad)");
  CF_CHECK_VALUE(dout.numel() == x_.numel() / in_ * out_ && dout.size(-1) == out_,
                 "Linear.backward: grad_output shape ", shape_str(dout.shape()), " does not match the output of the last forward");
  Tensor dx = Tensor::empty(x_.shape());
  const int64_t N = x_.numel() / in_;
  linear_backward(dx.data(), weight_->grad_data(), bias_ ? bias_->grad_data() : nullptr, dout.data(), x_.data(),
                  weight_->value.data(), N, in_, out_, dtype_, /*accumulate_dinp=*/false);
  return dx;
}

}  // namespace cpuformer
