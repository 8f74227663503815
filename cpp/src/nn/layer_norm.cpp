#include "cpuformer/nn/layer_norm.hpp"

#include <cmath>

#include "cpuformer/error.hpp"
#include "cpuformer/runtime/grad_mode.hpp"
#include "cpuformer/nn/linear.hpp"
#include "cpuformer/ops/layer_norm.hpp"

namespace cpuformer {

LayerNorm::LayerNorm(int64_t normalized_shape, float eps, bool bias) : C_(normalized_shape), eps_(eps) {
  CF_CHECK_VALUE(normalized_shape >= 1, "LayerNorm: normalized_shape must be >= 1, got ", normalized_shape);
  CF_CHECK_VALUE(std::isfinite(eps) && eps > 0.0f, "LayerNorm: eps must be a finite number > 0, got ", eps);
  weight_ = &register_parameter("weight", {C_});
  weight_->value.fill(1.0f);
  if (bias) bias_ = &register_parameter("bias", {C_});  // zeros
}

Tensor LayerNorm::forward(const Tensor& x) {
  check_last_dim(x, C_, "LayerNorm input");
  const int64_t N = x.numel() / C_;
  Tensor y = Tensor::empty(x.shape());
  Tensor mean = Tensor::empty({N}), rstd = Tensor::empty({N});  // [N]
  layer_norm_forward(y.data(), mean.data(), rstd.data(), x.data(), weight_->value.data(), bias_ ? bias_->value.data() : nullptr, N,
                     C_, eps_);
  const bool save = grad_enabled();
  x_ = save ? x : Tensor();
  mean_ = save ? mean : Tensor();
  rstd_ = save ? rstd : Tensor();
  return y;
}

Tensor LayerNorm::backward(const Tensor& dout) {
  check_trainable("LayerNorm.backward");
  CF_CHECK_STATE(x_.defined(), "LayerNorm.backward called before forward (or after a forward under no_grad)");
  CF_CHECK_VALUE(dout.shape() == x_.shape(), "LayerNorm.backward: grad_output: expected shape ",
                 shape_str(x_.shape()), " (the output of the last forward), got ", shape_str(dout.shape()));
  Tensor dx = Tensor::zeros(x_.shape());
  const int64_t N = x_.numel() / C_;
  layer_norm_backward(dx.data(), weight_->grad_data(), bias_ ? bias_->grad_data() : nullptr, dout.data(), x_.data(),
                      weight_->value.data(), mean_.data(), rstd_.data(), N, C_);
  return dx;
}

Tensor LayerNorm::inference(const Tensor& x) const {
  check_last_dim(x, C_, "LayerNorm input");
  const int64_t N = x.numel() / C_;
  Tensor out = Tensor::empty(x.shape());
  Tensor stats = Tensor::empty({2 * N});  // mean [N], rstd [N]: scratch
  layer_norm_forward(out.data(), stats.data(), stats.data() + N, x.data(), weight_->value.data(),
                     bias_ ? bias_->value.data() : nullptr, N, C_, eps_);
  return out;
}

Tensor LayerNorm::add_inference(const Tensor& a, const Tensor& b, Tensor* sum) const {
  check_last_dim(a, C_, "LayerNorm input");
  CF_CHECK_VALUE(a.shape() == b.shape(), "LayerNorm: residual shapes differ: ", shape_str(a.shape()), " and ",
                 shape_str(b.shape()));
  const int64_t N = a.numel() / C_;
  Tensor out = Tensor::empty(a.shape());
  if (sum) *sum = Tensor::empty(a.shape());
  add_layer_norm_forward(out.data(), sum ? sum->data() : nullptr, a.data(), b.data(), weight_->value.data(),
                         bias_ ? bias_->value.data() : nullptr, N, C_, eps_);
  return out;
}

}  // namespace cpuformer
