// Parameter-free layers: ReLU, GELU ~ torch.nn.ReLU / torch.nn.GELU(approximate),
// Dropout ~ torch.nn.Dropout(p) (active only in training mode).
#pragma once
#include "cpuformer/nn/module.hpp"
#include "cpuformer/ops/activations.hpp"

namespace cpuformer {

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x);       // caches x
  Tensor backward(const Tensor& dout);   // StateError before forward
  void forget() { x_ = Tensor(); }       // drop the saved input (see Linear::forget)

 private:
  Tensor x_;
};

class GELU : public Module {
 public:
  explicit GELU(GeluApproximate approximate = GeluApproximate::None) : approximate_(approximate) {}
  Tensor forward(const Tensor& x);
  Tensor backward(const Tensor& dout);
  void forget() { x_ = Tensor(); }  // drop the saved input (see Linear::forget)
  GeluApproximate approximate() const { return approximate_; }

 private:
  GeluApproximate approximate_;
  Tensor x_;
};

// Parses "none" / "tanh" (ValueError otherwise).
GeluApproximate parse_gelu_approximate(const std::string& s);

class Dropout : public Module {
 public:
  explicit Dropout(float p = 0.5f);  // ValueError unless 0 <= p < 1
  // Training mode with p > 0: draws a fresh key (next_key()) and drops;
  // otherwise returns x unchanged (no copy).
  Tensor forward(const Tensor& x);
  Tensor backward(const Tensor& dout);
  float p() const { return p_; }

 private:
  float p_;
  bool active_ = false;  // whether the last forward dropped anything
  uint64_t key_ = 0;
  Shape shape_;
  bool called_ = false;
};

}  // namespace cpuformer
