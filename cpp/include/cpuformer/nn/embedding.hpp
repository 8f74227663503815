// Embedding ~ torch.nn.Embedding(num_embeddings, embedding_dim): parameter
// "weight" [V, C] initialised N(0, 1).
#pragma once
#include <vector>

#include "cpuformer/nn/module.hpp"

namespace cpuformer {

class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim);
  // ids (any shape, `n` elements) -> [ids_shape..., C]. IndexError for ids
  // outside [0, V). Caches the ids.
  Tensor forward(const int64_t* ids, const Shape& ids_shape);
  // Scatter-adds dout [..., C] into the weight gradient.
  void backward(const Tensor& dout);
  int64_t num_embeddings() const { return V_; }
  int64_t embedding_dim() const { return C_; }
  Parameter& weight() { return *weight_; }

 private:
  int64_t V_, C_;
  Parameter* weight_;
  std::vector<int64_t> ids_;
  bool called_ = false;
};

}  // namespace cpuformer
