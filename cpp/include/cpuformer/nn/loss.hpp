// CrossEntropyLoss ~ torch.nn.CrossEntropyLoss(ignore_index, label_smoothing),
// reduction "mean", logits [N, C] and class targets [N]. Logits [..., C] are
// flattened to rows (class dim LAST, unlike torch's dim 1 for >2-D input).
#pragma once
#include <vector>

#include "cpuformer/nn/module.hpp"

namespace cpuformer {

class CrossEntropyLoss : public Module {
 public:
  explicit CrossEntropyLoss(int64_t ignore_index = -100, float label_smoothing = 0.0f);  // ValueError unless 0 <= ls <= 1
  // Caches logits and targets; returns the mean loss.
  float forward(const Tensor& logits, const int64_t* target, int64_t n_target);
  // Gradient of the last loss w.r.t. the logits, times dloss. StateError before forward.
  Tensor backward(float dloss = 1.0f);
  int64_t ignore_index() const { return ignore_index_; }
  float label_smoothing() const { return label_smoothing_; }

 private:
  int64_t ignore_index_;
  float label_smoothing_;
  Tensor logits_;
  std::vector<int64_t> target_;
};

}  // namespace cpuformer
