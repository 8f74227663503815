// LayerNorm::inference (kept apart until the module file lands; see layer_norm.cpp).
#include "cpuformer/nn/layer_norm.hpp"

#include "cpuformer/nn/linear.hpp"
#include "cpuformer/ops/layer_norm.hpp"

namespace cpuformer {

Tensor LayerNorm::inference(const Tensor& x) const {
  check_last_dim(x, C_, "LayerNorm input");
  const int64_t N = x.numel() / C_;
  Tensor out = Tensor::empty(x.shape());
  Tensor stats = Tensor::empty({2 * N});
  layer_norm_forward(out.data(), stats.data(), stats.data() + N, x.data(), weight_->value.data(), bias_->value.data(), N,
                     C_, eps_);
  return out;
}

}  // namespace cpuformer
