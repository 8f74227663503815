#include "cpuformer/nn/loss.hpp"

#include "cpuformer/error.hpp"
#include "cpuformer/ops/cross_entropy.hpp"

namespace cpuformer {

CrossEntropyLoss::CrossEntropyLoss(int64_t ignore_index, float label_smoothing)
    : ignore_index_(ignore_index), label_smoothing_(label_smoothing) {
  CF_CHECK_VALUE(label_smoothing >= 0.0f && label_smoothing <= 1.0f,
                 "CrossEntropyLoss: label_smoothing must be in [0, 1], got ", label_smoothing);
}

float CrossEntropyLoss::forward(const Tensor& logits, const int64_t* target, int64_t n_target) {
  // logits [N,C] (or [..., C], flattened to rows), target [N]
  CF_CHECK_VALUE(logits.dim() >= 1, "CrossEntropyLoss: logits: expected [N, C], got a scalar");
  const int64_t C = logits.size(-1);
  CF_CHECK_VALUE(C >= 1, "CrossEntropyLoss: logits: expected at least 1 class, got shape ", shape_str(logits.shape()));
  const int64_t N = logits.numel() / C;
  CF_CHECK_VALUE(n_target == N, "CrossEntropyLoss: target: expected ", N, " targets (logits ",
                 shape_str(logits.shape()), "), got ", n_target);
  const float loss = cross_entropy_forward(logits.data(), target, N, C, ignore_index_, label_smoothing_);
  logits_ = logits;  // cached only after the targets were validated
  target_.assign(target, target + N);
  return loss;
}

Tensor CrossEntropyLoss::backward(float dloss) {
  CF_CHECK_STATE(logits_.defined(), "CrossEntropyLoss.backward called before forward (or after a forward under no_grad)");
  const int64_t C = logits_.size(-1);
  const int64_t N = logits_.numel() / C;
  Tensor dlogits = Tensor::empty(logits_.shape());  // [N,C]
  cross_entropy_backward(dlogits.data(), logits_.data(), target_.data(), N, C, ignore_index_, label_smoothing_, dloss,
                         /*accumulate=*/false);
  return dlogits;
}

}  // namespace cpuformer
