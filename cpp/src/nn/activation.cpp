#include "cpuformer/nn/activation.hpp"

#include <cmath>

#include "cpuformer/error.hpp"
#include "cpuformer/runtime/grad_mode.hpp"
#include "cpuformer/ops/dropout.hpp"
#include "cpuformer/runtime/rng.hpp"

namespace cpuformer {
namespace {

void check_same_shape(const Tensor& dout, const Shape& shape, const char* who) {
  CF_CHECK_VALUE(dout.shape() == shape, who, ".backward: grad_output: expected shape ", shape_str(shape),
                 " (the output of the last forward), got ", shape_str(dout.shape()));
}

}  // namespace

Tensor ReLU::forward(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape());
  relu_forward(y.data(), x.data(), x.numel());
  x_ = grad_enabled() ? x : Tensor();
  return y;
}

Tensor ReLU::backward(const Tensor& dout) {
  CF_CHECK_STATE(x_.defined(), "ReLU.backward called before forward (or after a forward under no_grad)");
  check_same_shape(dout, x_.shape(), "ReLU");
  Tensor dx = Tensor::empty(x_.shape());
  relu_backward(dx.data(), dout.data(), x_.data(), x_.numel(), /*accumulate=*/false);
  return dx;
}

Tensor GELU::forward(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape());
  gelu_forward(y.data(), x.data(), x.numel(), approximate_);
  x_ = grad_enabled() ? x : Tensor();
  return y;
}

Tensor GELU::backward(const Tensor& dout) {
  CF_CHECK_STATE(x_.defined(), "GELU.backward called before forward (or after a forward under no_grad)");
  check_same_shape(dout, x_.shape(), "GELU");
  Tensor dx = Tensor::empty(x_.shape());
  gelu_backward(dx.data(), dout.data(), x_.data(), x_.numel(), approximate_, /*accumulate=*/false);
  return dx;
}

GeluApproximate parse_gelu_approximate(const std::string& s) {
  if (s == "none") return GeluApproximate::None;
  if (s == "tanh") return GeluApproximate::Tanh;
  throw ValueError(str_cat("approximate: expected 'none' or 'tanh', got '", s, "'"));
}

Dropout::Dropout(float p) : p_(p) {
  CF_CHECK_VALUE(p >= 0.0f && p < 1.0f, "Dropout: p must satisfy 0 <= p < 1, got ", p);
}

Tensor Dropout::forward(const Tensor& x) {
  shape_ = x.shape();
  called_ = true;
  active_ = training() && p_ > 0.0f;
  if (!active_) return x;
  key_ = next_key();
  Tensor y = Tensor::empty(x.shape());
  dropout_forward(y.data(), x.data(), x.numel(), p_, key_);
  return y;
}

Tensor Dropout::backward(const Tensor& dout) {
  CF_CHECK_STATE(called_, "Dropout.backward called before forward (or after a forward under no_grad)");
  check_same_shape(dout, shape_, "Dropout");
  if (!active_) return dout;
  Tensor dx = Tensor::zeros(shape_);
  dropout_backward(dx.data(), dout.data(), dout.numel(), p_, key_);
  return dx;
}

}  // namespace cpuformer
