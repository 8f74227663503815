// Linear ~ torch.nn.Linear: y = x Wᵀ + b, weight [out_features, in_features].
#pragma once
#include "cpuformer/nn/module.hpp"
#include "cpuformer/runtime/autocast.hpp"

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
  DType dtype_ = DType::Float32;  // autocast precision of the last forward (its backward uses the same)
};

// Shape checks shared by modules: the last dim of `t` must be `size`.
void check_last_dim(const Tensor& t, int64_t size, const char* what);

// Products and lookups with a weight-matrix parameter W [O, I] in whatever
// precision its module holds it (float32 values, or the packed bfloat16 /
// int8 form): every module reaches its weight matrices through these.
// out[N, rows] = act(x[N, I] · W[row0 : row0 + rows]ᵀ + bias[row0 : row0 + rows]);
// bias is the full bias [O] (or null); rows = -1: O - row0. Float32 weights
// multiply in the autocast precision of this thread (runtime/autocast.hpp).
void weight_linear(float* out, const float* x, const Parameter& w, const float* bias, int64_t N,
                   Activation act = Activation::None, int64_t row0 = 0, int64_t rows = -1);
// out[n, :] = W[ids[n], :] for n < N (an embedding lookup); IndexError for
// ids outside [0, O), before anything is written.
void weight_lookup(float* out, const Parameter& w, const int64_t* ids, int64_t N);

}  // namespace cpuformer
