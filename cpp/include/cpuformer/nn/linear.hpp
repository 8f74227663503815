// Linear ~ torch.nn.Linear: y = x Wᵀ + b, weight [out_features, in_features].
#pragma once
#include "cpuformer/nn/module.hpp"

namespace cpuformer {

class Linear : public Module {
 public:
  // Init as torch: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
  Linear(int64_t in_features, int64_t out_features, bool bias = true);

  // x [..., in] -> [..., out]. Caches x for backward.
  Tensor forward(const Tensor& x);
  // dout [..., out] -> dx [..., in]; accumulates weight/bias gradients.
  Tensor backward(const Tensor& dout);
  // Drops the input saved by the last forward (a fused inference path that
  // bypassed forward calls it, so a later backward raises instead of using it).
  void forget() { x_ = Tensor(); }

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  Parameter& weight() { return *weight_; }
  Parameter* bias() { return bias_; }

 private:
  int64_t in_, out_;
  Parameter* weight_;
  Parameter* bias_ = nullptr;
  Tensor x_;
};

// Shape checks shared by modules: the last dim of `t` must be `size`.
void check_last_dim(const Tensor& t, int64_t size, const char* what);

}  // namespace cpuformer
