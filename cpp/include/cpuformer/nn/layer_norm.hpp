// LayerNorm ~ torch.nn.LayerNorm(normalized_shape: int, eps, bias): parameters
// "weight" (ones) and, unless bias == false, "bias" (zeros) of shape [C].
#pragma once
#include "cpuformer/nn/module.hpp"

namespace cpuformer {

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t normalized_shape, float eps = 1e-5f, bool bias = true);
  // x [..., C] -> same shape. Caches x, mean, rstd.
  Tensor forward(const Tensor& x);
  // dout [..., C] -> dx; accumulates weight/bias gradients.
  Tensor backward(const Tensor& dout);
  // forward without saving anything (inference paths, thread-safe).
  Tensor inference(const Tensor& x) const;
  // inference(a + b) in one pass (ops/layer_norm.hpp add_layer_norm_forward);
  // *sum, if given, receives a + b.
  Tensor add_inference(const Tensor& a, const Tensor& b, Tensor* sum = nullptr) const;
  // Drops what the last forward saved (a fused path that bypassed forward
  // calls it, so a later backward raises instead of using it).
  void forget() { x_ = mean_ = rstd_ = Tensor(); }
  int64_t normalized_shape() const { return C_; }
  float eps() const { return eps_; }
  bool has_bias() const { return bias_ != nullptr; }

 private:
  int64_t C_;
  float eps_;
  Parameter* weight_;
  Parameter* bias_ = nullptr;
  Tensor x_, mean_, rstd_;
};

}  // namespace cpuformer
