// Optimizers over a module's flat parameter and gradient buffers: one
// parallel pass per parameter segment, update rules identical to torch.optim.
//
// AdamW (torch.optim.AdamW):  p -= lr·wd·p;  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²
//   p -= (lr / (1-β1^t)) · m / (sqrt(v) / sqrt(1-β2^t) + eps)
// SGD (torch.optim.SGD):  g += wd·p;  buf = g (first step) or μ·buf + g;
//   g = nesterov ? g + μ·buf : buf;  p -= lr·g
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "cpuformer/nn/module.hpp"

namespace cpuformer {

// A contiguous range of the flat buffers holding one parameter.
struct ParamSegment {
  std::string name;
  int64_t offset = 0, numel = 0;
  bool decay = true;
};

class Optimizer {
 public:
  // The module must stay alive while the optimizer is used; its parameters
  // are flattened if they were not already. Parameters whose name contains
  // an entry of `no_decay` as a substring get no weight decay.
  Optimizer(Module& model, const std::vector<std::string>& no_decay);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad() { model_.zero_grad(); }
  Module& model() { return model_; }
  float lr = 0.0f;
  int64_t step_count() const { return t_; }
  void set_step_count(int64_t t);
  const std::vector<ParamSegment>& segments() const { return segments_; }
  // Named state buffers (flat, same layout as the parameters), for saving.
  virtual std::vector<std::pair<std::string, Tensor>> state() = 0;

 protected:
  Module& model_;
  std::vector<ParamSegment> segments_;
  int64_t t_ = 0;
};

class AdamW : public Optimizer {
 public:
  AdamW(Module& model, float lr = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f,
        float weight_decay = 0.01f, const std::vector<std::string>& no_decay = {});
  void step() override;
  std::vector<std::pair<std::string, Tensor>> state() override { return {{"exp_avg", m_}, {"exp_avg_sq", v_}}; }
  float beta1, beta2, eps, weight_decay;

 private:
  Tensor m_, v_;
};

class SGD : public Optimizer {
 public:
  SGD(Module& model, float lr, float momentum = 0.0f, float weight_decay = 0.0f, bool nesterov = false,
      const std::vector<std::string>& no_decay = {});
  void step() override;
  std::vector<std::pair<std::string, Tensor>> state() override { return {{"momentum_buffer", buf_}}; }
  float momentum, weight_decay;
  bool nesterov;

 private:
  Tensor buf_;
};

// Scales all gradients so their global L2 norm is at most max_norm (like
// torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
float clip_grad_norm(Module& model, float max_norm);

}  // namespace cpuformer
