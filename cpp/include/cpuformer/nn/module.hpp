// Module: the base of every layer with parameters. A module owns its
// parameters (value + gradient), registers its children, and caches what its
// forward needs for backward. Backward accumulates parameter gradients (like
// torch) and returns input gradients.
//
// Parameters start as separate tensors; flatten_parameters() on the root moves
// all values into one flat buffer and all gradients into another (named views
// into them), so optimizers and zero_grad are one pass over contiguous memory.
//
// Precision: a module tree is float32 until quantize(BFloat16 | Int8) on its
// root converts every weight matrix (parameters registered as matrices: the
// weights of Linear, MultiheadAttention's in_proj_weight, embedding tables)
// into a PackedWeight (ops/packed_weight.hpp) that becomes its only copy;
// biases, LayerNorm and the other small parameters stay float32. Such a tree
// is inference-only: its forwards save nothing for backward, and backward
// and optimizers raise StateError.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "cpuformer/ops/packed_weight.hpp"
#include "cpuformer/tensor.hpp"

namespace cpuformer {

struct GradArena;

// What the caches built from a tree's float32 weights (Parameter::prepacked)
// need to know to stay correct: `version` is bumped by every write path the
// library has (optimizer steps, loaders, train()/eval(), flattening, and the
// release of a writable view); while `views` > 0 someone holds a writable view
// of the values (a Python NumPy view from parameters()) that may be written at
// any time, so no cache is trusted. C++ code that writes values through
// value.data() itself calls Module::mark_weights_changed() afterwards.
struct WeightState {
  std::atomic<uint64_t> version{fresh_version()};
  std::atomic<int64_t> views{0};
  void bump() { version.store(fresh_version()); }
  // Versions are unique across the process, so a new state never matches a
  // cache built under another one.
  static uint64_t fresh_version() {
    static std::atomic<uint64_t> counter{0};
    return counter.fetch_add(1) + 1;
  }
};

// A parameter's value and its accumulated gradient. In a flattened module
// tree the gradients live in one flat buffer that is allocated on first use
// (a model that only runs inference never pays for it): reach the gradient
// through grad_data()/grad_tensor(), which allocate it (zeroed) if needed.
struct Parameter {
  Tensor value;  // undefined for a matrix held in low precision (see packed)
  Tensor grad;   // undefined until allocated in a flattened tree
  float* grad_data();
  const Tensor& grad_tensor();
  std::shared_ptr<GradArena> arena;  // set by flatten_parameters()
  // A weight matrix [rows, cols] that Module::quantize converts.
  bool matrix = false;
  // Set once the tree is in bfloat16 or int8: the matrix in the layout the
  // kernels read, and the only copy of its values.
  std::shared_ptr<const PackedWeight> packed;

  // One per tree once flattened (shared by its parameters).
  std::shared_ptr<WeightState> state = std::make_shared<WeightState>();
  // A float32 matrix pre-packed in the layout the float32 GEMM kernel reads
  // (ops/packed_weight.hpp), built on first use and rebuilt after any change
  // (state->version); null when there is none to use: not a float32 matrix,
  // no packed kernel in this process, a writable view alive, or a matrix
  // over kPrepackMaxElements (an embedding table reused as an output layer:
  // a second copy would cost more memory than packing per call costs time).
  std::shared_ptr<const PackedWeight> prepacked() const;
  static constexpr int64_t kPrepackMaxElements = int64_t(1) << 24;
  // The packed copy and the version it was built from; shared with the
  // replicas of the tree (Module::acquire_replica), so there is one copy.
  struct PackCache {
    std::mutex mutex;
    std::shared_ptr<const PackedWeight> packed;
    uint64_t version = 0;
  };
  std::shared_ptr<PackCache> cache = std::make_shared<PackCache>();

  // value's shape, or the packed matrix's [rows, cols].
  Shape shape() const;
  int64_t numel() const;
  // The float32 values the module computes with: value itself, or a fresh
  // dequantized copy of a packed matrix.
  Tensor float_value() const;
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

  // Tells the caches built from this tree's weights (Parameter::prepacked)
  // that values changed; for C++ code that writes parameter values itself.
  void mark_weights_changed();

  // The precision of this module's weight matrices (the whole tree's).
  DType dtype() const { return dtype_; }
  // On the root of a flattened tree: converts every weight matrix to `dtype`
  // (bfloat16 or int8) and frees its float32 values; the other parameters
  // move into a new, smaller flat buffer. Float32 leaves a float32 tree as it
  // is. StateError on a tree that is already in low precision (quantize the
  // float32 model instead).
  void quantize(DType dtype);
  // The second half of quantize, for loaders that set every matrix's
  // `packed` themselves (a low-precision checkpoint): frees the float32
  // values of the matrices, re-flattens the rest, marks the tree `dtype`.
  void commit_packed(DType dtype);
  // StateError "<what>: this module is <dtype> (quantized) and inference-only ..."
  // unless the tree is float32.
  void check_trainable(const char* what) const;
  // Whether a forward should save what backward needs: grad mode is on and
  // the tree is float32.
  bool saves_activations() const;

  // Serialises calls into one module tree from several threads: forward
  // caches activations in the modules, so two concurrent calls on the same
  // model would race. The bindings and the C API hold it (exclusively) for
  // every call, except concurrent inference (below), which holds it shared.
  std::shared_mutex& call_mutex() const { return call_mutex_; }

  // Concurrent inference. Forwards keep their activations in the modules, so
  // one tree runs one call at a time. Inference calls (no grad) run instead
  // on replicas: modules of the same type and config that share this root's
  // weights (values, low-precision and pre-packed forms, version state) and
  // own only their activations, one per call running at once. Callers hold
  // call_mutex() shared while they use a replica.
  using TwinFactory = std::function<std::unique_ptr<Module>()>;
  // How to build an empty module of this root's type and config (set by the
  // Python bindings and the checkpoint loader); without one there are no replicas.
  void set_twin_factory(TwinFactory factory) { twin_factory_ = std::move(factory); }
  bool has_twin_factory() const { return static_cast<bool>(twin_factory_); }
  // A free replica (built on first need, kept for reuse) in this tree's
  // training mode; null without a factory.
  std::unique_ptr<Module> acquire_replica();
  void release_replica(std::unique_ptr<Module> replica);
  // Replicas built so far (for tests).
  int64_t replicas_built() const { return replicas_built_; }

 protected:
  // `matrix`: a weight matrix [rows, cols] that quantize() converts.
  Parameter& register_parameter(const std::string& name, const Shape& shape, bool matrix = false);
  void register_module(const std::string& name, Module* child);
  // Hook for modules whose train() must do more (none yet).
  virtual void on_train(bool) {}

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Parameter*>>& out);
  std::vector<std::pair<std::string, std::unique_ptr<Parameter>>> params_;
  std::vector<std::pair<std::string, Module*>> children_;
  Tensor flat_values_;
  std::shared_ptr<GradArena> arena_;
  void set_dtype(DType dtype);
  void share_weights_from(Module& src);
  void set_training_quiet(bool on);  // train(on) without telling the weight caches
  void drop_replicas();
  bool training_ = true;
  DType dtype_ = DType::Float32;
  mutable std::shared_mutex call_mutex_;
  TwinFactory twin_factory_;
  std::mutex replicas_mutex_;
  std::vector<std::unique_ptr<Module>> free_replicas_;
  std::atomic<int64_t> replicas_built_{0};
};

// Initialisers (deterministic given manual_seed): each call draws a fresh key.
void init_uniform(Tensor& t, float low, float high);
void init_normal(Tensor& t, float mean, float std);

// While one is alive on this thread, modules built here skip the random
// initialisation and zero-filling of their parameters (and draw no keys): for
// loaders that overwrite every value. Memory that is never written is never
// touched, so a low-precision checkpoint's matrices cost no float32 pages.
class NoInitGuard {
 public:
  NoInitGuard();
  ~NoInitGuard();
  NoInitGuard(const NoInitGuard&) = delete;
  NoInitGuard& operator=(const NoInitGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace cpuformer
