// Module: the base of every layer with parameters. A module owns its
// parameters (value + gradient), registers its children, and caches what its
// forward needs for backward. Backward accumulates parameter gradients (like
// torch) and returns input gradients.
//
// Parameters start as separate tensors; flatten_parameters() on the root moves
// all values into one flat buffer and all gradients into another (named views
// into them), so optimizers and zero_grad are one pass over contiguous memory.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cpuformer/tensor.hpp"

namespace cpuformer {

struct GradArena;

// A parameter's value and its accumulated gradient. In a flattened module
// tree the gradients live in one flat buffer that is allocated on first use
// (a model that only runs inference never pays for it): reach the gradient
// through grad_data()/grad_tensor(), which allocate it (zeroed) if needed.
struct Parameter {
  Tensor value;
  Tensor grad;  // undefined until allocated in a flattened tree
  float* grad_data();
  const Tensor& grad_tensor();
  std::shared_ptr<GradArena> arena;  // set by flatten_parameters()
};

class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  // Recursive; dropout is active only in training mode.
  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }

  // Depth-first, registration order; names joined with '.' like torch.
  std::vector<std::pair<std::string, Parameter*>> named_parameters();
  std::vector<std::pair<std::string, Module*>> named_children() const { return children_; }
  int64_t num_parameters();
  void zero_grad();

  // Moves every parameter (values kept) into one flat, 64-byte aligned
  // buffer; gradients get a matching flat buffer on first use. Idempotent.
  void flatten_parameters();
  const Tensor& flat_parameters() const { return flat_values_; }
  // The flat gradient buffer (allocated, zeroed, on first call).
  Tensor flat_gradients();
  // Whether gradient storage exists yet.
  bool has_gradients() const;

  // Serialises calls into one module tree from several threads: forward
  // caches activations in the modules, so two concurrent calls on the same
  // model would race. The bindings and the C API hold it for every call.
  std::mutex& call_mutex() const { return call_mutex_; }

 protected:
  Parameter& register_parameter(const std::string& name, const Shape& shape);
  void register_module(const std::string& name, Module* child);
  // Hook for modules whose train() must do more (none yet).
  virtual void on_train(bool) {}

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Parameter*>>& out);
  std::vector<std::pair<std::string, std::unique_ptr<Parameter>>> params_;
  std::vector<std::pair<std::string, Module*>> children_;
  Tensor flat_values_;
  std::shared_ptr<GradArena> arena_;
  bool training_ = true;
  mutable std::mutex call_mutex_;
};

// Initialisers (deterministic given manual_seed): each call draws a fresh key.
void init_uniform(Tensor& t, float low, float high);
void init_normal(Tensor& t, float mean, float std);

}  // namespace cpuformer
