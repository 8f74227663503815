#include "cpuformer/optim/optimizer.hpp"
#include "cpuformer/runtime/threads.hpp"

#include <cmath>

#include "cpuformer/error.hpp"

namespace cpuformer {

Optimizer::Optimizer(Module& model, const std::vector<std::string>& no_decay) : model_(model) {
  model.check_trainable("optimizer");
  model.flatten_parameters();
  const float* base = model.flat_parameters().data();
  for (auto& p : model.named_parameters()) {
    ParamSegment s;
    s.name = p.first;
    s.offset = p.second->value.data() - base;
    s.numel = p.second->value.numel();
    for (const std::string& nd : no_decay)
      if (!nd.empty() && p.first.find(nd) != std::string::npos) s.decay = false;
    segments_.push_back(s);
  }
}

void Optimizer::set_step_count(int64_t t) {
  CF_CHECK_VALUE(t >= 0, "step count must be >= 0, got ", t);
  t_ = t;
}

AdamW::AdamW(Module& model, float lr_, float beta1_, float beta2_, float eps_, float weight_decay_,
             const std::vector<std::string>& no_decay)
    : Optimizer(model, no_decay), beta1(beta1_), beta2(beta2_), eps(eps_), weight_decay(weight_decay_) {
  CF_CHECK_VALUE(lr_ >= 0.0f, "AdamW: lr must be >= 0, got ", lr_);
  CF_CHECK_VALUE(beta1_ >= 0.0f && beta1_ < 1.0f, "AdamW: betas[0] must be in [0, 1), got ", beta1_);
  CF_CHECK_VALUE(beta2_ >= 0.0f && beta2_ < 1.0f, "AdamW: betas[1] must be in [0, 1), got ", beta2_);
  CF_CHECK_VALUE(eps_ >= 0.0f, "AdamW: eps must be >= 0, got ", eps_);
  CF_CHECK_VALUE(weight_decay_ >= 0.0f, "AdamW: weight_decay must be >= 0, got ", weight_decay_);
  lr = lr_;
  m_ = Tensor::zeros(model.flat_parameters().shape());
  v_ = Tensor::zeros(model.flat_parameters().shape());
}

void AdamW::step() {
  ++t_;
  model_.mark_weights_changed();
  Tensor params = model_.flat_parameters(), grads = model_.flat_gradients();  // shared storage
  float* P = params.data();
  const float* G = grads.data();
  float* M = m_.data();
  float* V = v_.data();
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(t_));
  const float step_size = static_cast<float>(lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float b1 = beta1, b2 = beta2, e = eps;
  for (const ParamSegment& s : segments_) {
    const float decay = s.decay ? 1.0f - lr * weight_decay : 1.0f;
#pragma omp parallel for schedule(static) if (s.numel >= kParallelMinWork)
    for (int64_t i = s.offset; i < s.offset + s.numel; ++i) {
      const float g = G[i];
      const float m = b1 * M[i] + (1.0f - b1) * g;
      const float v = b2 * V[i] + (1.0f - b2) * g * g;
      M[i] = m;
      V[i] = v;
      P[i] = P[i] * decay - step_size * m / (std::sqrt(v) / bc2_sqrt + e);
    }
  }
}

SGD::SGD(Module& model, float lr_, float momentum_, float weight_decay_, bool nesterov_,
         const std::vector<std::string>& no_decay)
    : Optimizer(model, no_decay), momentum(momentum_), weight_decay(weight_decay_), nesterov(nesterov_) {
  CF_CHECK_VALUE(lr_ >= 0.0f, "SGD: lr must be >= 0, got ", lr_);
  CF_CHECK_VALUE(momentum_ >= 0.0f, "SGD: momentum must be >= 0, got ", momentum_);
  CF_CHECK_VALUE(weight_decay_ >= 0.0f, "SGD: weight_decay must be >= 0, got ", weight_decay_);
  CF_CHECK_VALUE(!nesterov_ || momentum_ > 0.0f, "SGD: nesterov momentum requires momentum > 0");
  lr = lr_;
  if (momentum_ > 0.0f) buf_ = Tensor::zeros(model.flat_parameters().shape());
}

void SGD::step() {
  ++t_;
  model_.mark_weights_changed();
  Tensor params = model_.flat_parameters(), grads = model_.flat_gradients();  // shared storage
  float* P = params.data();
  const float* G = grads.data();
  float* B = buf_.defined() ? buf_.data() : nullptr;
  const bool first = t_ == 1;
  const float mu = momentum, l = lr;
  for (const ParamSegment& s : segments_) {
    const float wd = s.decay ? weight_decay : 0.0f;
#pragma omp parallel for schedule(static) if (s.numel >= kParallelMinWork)
    for (int64_t i = s.offset; i < s.offset + s.numel; ++i) {
      float g = G[i] + wd * P[i];
      if (B) {
        const float b = first ? g : mu * B[i] + g;
        B[i] = b;
        g = nesterov ? g + mu * b : b;
      }
      P[i] -= l * g;
    }
  }
}

float clip_grad_norm(Module& model, float max_norm) {
  CF_CHECK_VALUE(max_norm > 0.0f, "clip_grad_norm: max_norm must be > 0, got ", max_norm);
  model.check_trainable("clip_grad_norm");
  model.flatten_parameters();
  Tensor g = model.flat_gradients();
  float* G = g.data();
  const int64_t n = g.numel();
  double sq = 0.0;
#pragma omp parallel for reduction(+ : sq) schedule(static)
  for (int64_t i = 0; i < n; ++i) sq += static_cast<double>(G[i]) * G[i];
  const float norm = static_cast<float>(std::sqrt(sq));
  const float coef = max_norm / (norm + 1e-6f);
  if (coef < 1.0f) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) G[i] *= coef;
  }
  return norm;
}

}  // namespace cpuformer
