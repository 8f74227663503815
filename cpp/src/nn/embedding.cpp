#include "cpuformer/nn/embedding.hpp"

#include "cpuformer/error.hpp"
#include "cpuformer/runtime/grad_mode.hpp"
#include "cpuformer/nn/linear.hpp"
#include "cpuformer/ops/embedding.hpp"

namespace cpuformer {

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim) : V_(num_embeddings), C_(embedding_dim) {
  CF_CHECK_VALUE(num_embeddings >= 1, "Embedding: num_embeddings must be >= 1, got ", num_embeddings);
  CF_CHECK_VALUE(embedding_dim >= 1, "Embedding: embedding_dim must be >= 1, got ", embedding_dim);
  weight_ = &register_parameter("weight", {V_, C_}, /*matrix=*/true);
  init_normal(weight_->value, 0.0f, 1.0f);
}

Tensor Embedding::forward(const int64_t* ids, const Shape& ids_shape) {
  const int64_t N = shape_numel(ids_shape);
  Shape oshape = ids_shape;
  oshape.push_back(C_);
  Tensor out = Tensor::empty(oshape);  // [..., C]
  weight_lookup(out.data(), *weight_, ids, N);  // throws before any state changes
  called_ = saves_activations();
  if (called_)
    ids_.assign(ids, ids + N);
  else
    ids_.clear();
  return out;
}

void Embedding::backward(const Tensor& dout) {
  check_trainable("Embedding.backward");
  CF_CHECK_STATE(called_, "Embedding.backward called before forward (or after a forward under no_grad)");
  const int64_t N = static_cast<int64_t>(ids_.size());
  CF_CHECK_VALUE(dout.dim() >= 1 && dout.size(-1) == C_ && dout.numel() == N * C_,
                 "Embedding.backward: grad_output shape ", shape_str(dout.shape()), " does not match the output of the last forward (", N, " ids x ", C_,
                 " channels)");
  embedding_backward(weight_->grad_data(), dout.data(), ids_.data(), N, V_, C_);
}

}  // namespace cpuformer
