#include "cpuformer/nn/module.hpp"

#include "cpuformer/runtime/allocator.hpp"

#include <cmath>
#include <cstring>
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "cpuformer/error.hpp"
#include "cpuformer/runtime/cpu.hpp"
#include "cpuformer/runtime/grad_mode.hpp"
#include "cpuformer/runtime/rng.hpp"

namespace cpuformer {

namespace {
thread_local bool tl_no_init = false;  // see NoInitGuard
}  // namespace

// The lazily allocated flat gradient buffer of a flattened module tree.
struct GradArena {
  int64_t total = 0;
  std::vector<std::pair<Parameter*, int64_t>> slots;  // parameter, offset
  Tensor flat;
  std::mutex mutex;

  void ensure() {
    std::lock_guard<std::mutex> lock(mutex);
    if (flat.defined()) return;
    Tensor buf = Tensor::zeros({total});
    for (auto& s : slots) s.first->grad = Tensor::view(buf, s.second, s.first->value.shape());
    flat = buf;
  }
};

Shape Parameter::shape() const {
  if (packed) return {packed->rows, packed->cols};
  return value.shape();
}

int64_t Parameter::numel() const { return packed ? packed->rows * packed->cols : value.numel(); }

Tensor Parameter::float_value() const {
  if (!packed) return value;
  Tensor t = Tensor::empty({packed->rows, packed->cols});
  dequantize_weight(*packed, t.data());
  return t;
}

std::shared_ptr<const PackedWeight> Parameter::prepacked() const {
  if (!matrix || packed || !value.defined() || value.dim() < 2 || value.numel() > kPrepackMaxElements ||
      !float32_prepack_available() || state->views.load() > 0)
    return nullptr;
  const uint64_t version = state->version.load();
  PackCache& c = *cache;
  std::lock_guard<std::mutex> lock(c.mutex);
  if (!c.packed || c.version != version || c.packed->kernel != static_cast<int>(gemm_kernel())) {
    const int64_t rows = value.size(0), cols = value.numel() / rows;
    c.packed.reset();  // the old copy goes before the new one is built
    c.packed = std::make_shared<PackedWeight>(pack_weight(DType::Float32, value.data(), rows, cols, cols));
    c.version = version;
  }
  return c.packed;
}

float* Parameter::grad_data() { return const_cast<float*>(grad_tensor().data()); }

const Tensor& Parameter::grad_tensor() {
  if (!grad.defined()) {
    if (arena)
      arena->ensure();
    else
      grad = Tensor::zeros(value.shape());  // a module that was never flattened
  }
  return grad;
}

void Module::share_weights_from(Module& src) {
  auto mine = named_parameters(), theirs = src.named_parameters();
  CF_CHECK_STATE(mine.size() == theirs.size(), "replica: the twin has ", mine.size(), " parameters, the model ",
                 theirs.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    Parameter& d = *mine[i].second;
    const Parameter& s = *theirs[i].second;
    CF_CHECK_STATE(mine[i].first == theirs[i].first && d.shape() == s.shape(), "replica: parameter ", mine[i].first,
                   " does not match the model's ", theirs[i].first);
    d.value = s.value;
    d.packed = s.packed;
    d.matrix = s.matrix;
    d.state = s.state;
    d.cache = s.cache;
    d.grad = Tensor();
    d.arena = nullptr;
  }
  flat_values_ = src.flat_values_;
  set_dtype(src.dtype_);
}

std::unique_ptr<Module> Module::acquire_replica() {
  {
    std::lock_guard<std::mutex> lock(replicas_mutex_);
    if (!free_replicas_.empty()) {
      std::unique_ptr<Module> r = std::move(free_replicas_.back());
      free_replicas_.pop_back();
      r->set_training_quiet(training_);
      return r;
    }
  }
  if (!twin_factory_) return nullptr;
  std::unique_ptr<Module> r;
  {
    const NoInitGuard no_init;  // every value is replaced by the model's: skip initialising (and the RNG)
    r = twin_factory_();
  }
  {
    const CacheBypass bypass;  // the twin's own (never touched) values go back to the system
    r->share_weights_from(*this);
  }
  r->set_training_quiet(training_);
  ++replicas_built_;
  return r;
}

void Module::release_replica(std::unique_ptr<Module> replica) {
  if (!replica) return;
  std::lock_guard<std::mutex> lock(replicas_mutex_);
  free_replicas_.push_back(std::move(replica));
}

void Module::drop_replicas() {
  std::lock_guard<std::mutex> lock(replicas_mutex_);
  free_replicas_.clear();
}

void Module::mark_weights_changed() {
  for (auto& p : named_parameters()) p.second->state->bump();
}

void Module::set_training_quiet(bool on) {
  training_ = on;
  on_train(on);
  for (auto& c : children_) c.second->set_training_quiet(on);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& p : params_) p.second->state->bump();
  on_train(on);
  for (auto& c : children_) c.second->train(on);
}

void Module::collect(const std::string& prefix, std::vector<std::pair<std::string, Parameter*>>& out) {
  for (auto& p : params_) out.emplace_back(prefix + p.first, p.second.get());
  for (auto& c : children_) c.second->collect(prefix + c.first + ".", out);
}

std::vector<std::pair<std::string, Parameter*>> Module::named_parameters() {
  std::vector<std::pair<std::string, Parameter*>> out;
  collect("", out);
  return out;
}

int64_t Module::num_parameters() {
  int64_t n = 0;
  for (auto& p : named_parameters()) n += p.second->numel();
  return n;
}

void Module::zero_grad() {
  if (arena_) {
    std::lock_guard<std::mutex> lock(arena_->mutex);
    if (arena_->flat.defined()) arena_->flat.zero();  // never allocated: nothing to clear
    return;
  }
  for (auto& p : named_parameters())
    if (p.second->grad.defined()) p.second->grad.zero();
}

Tensor Module::flat_gradients() {
  CF_CHECK_STATE(arena_ != nullptr, "flat_gradients: the module's parameters are not flattened");
  arena_->ensure();
  return arena_->flat;
}

bool Module::has_gradients() const { return !arena_ || arena_->flat.defined(); }

void Module::flatten_parameters() {
  if (flat_values_.defined()) return;
  drop_replicas();  // they point at the separate tensors
  CF_CHECK_STATE(dtype_ == DType::Float32, "flatten_parameters: the module is already ", dtype_name(dtype_));
  auto params = named_parameters();
  constexpr int64_t kAlign = 16;  // floats: 64 bytes
  int64_t total = 0;
  for (auto& p : params) total += (p.second->value.numel() + kAlign - 1) / kAlign * kAlign;
  // Filled parameter by parameter (pages are touched only as they are
  // written), and each separate tensor is released as soon as it is copied,
  // so peak memory stays near one copy of the weights.
  flat_values_ = Tensor::empty({total});
  const CacheBypass bypass;  // the separate tensors are not needed again
  arena_ = std::make_shared<GradArena>();
  arena_->total = total;
  auto state = std::make_shared<WeightState>();
  int64_t off = 0;
  for (auto& p : params) {
    Parameter& prm = *p.second;
    prm.state = state;
    Tensor v = Tensor::view(flat_values_, off, prm.value.shape());
    const int64_t n = prm.value.numel(), padded = (n + kAlign - 1) / kAlign * kAlign;
    if (n) std::memcpy(v.data(), prm.value.data(), sizeof(float) * n);
    for (int64_t i = n; i < padded; ++i) flat_values_.data()[off + i] = 0.0f;
    prm.value = v;
    prm.grad = Tensor();  // allocated with the arena on first use
    prm.arena = arena_;
    arena_->slots.emplace_back(&prm, off);
    off += (prm.value.numel() + kAlign - 1) / kAlign * kAlign;
  }
#if defined(__GLIBC__)
  // The separate tensors just freed usually sit in the heap (glibc raises its
  // mmap threshold after large frees); hand that memory back to the system.
  malloc_trim(0);
#endif
}

void Module::set_dtype(DType dtype) {
  dtype_ = dtype;
  for (auto& c : children_) c.second->set_dtype(dtype);
}

void Module::check_trainable(const char* what) const {
  CF_CHECK_STATE(dtype_ == DType::Float32, what, ": this module is ", dtype_name(dtype_),
                 " (quantized) and inference-only: backward, gradients and optimizers need the float32 model "
                 "(train that one, then quantize a copy)");
}

bool Module::saves_activations() const { return dtype_ == DType::Float32 && grad_enabled(); }

void Module::quantize(DType dtype) {
  CF_CHECK_STATE(dtype_ == DType::Float32, "quantize: this module is already ", dtype_name(dtype_),
                 "; quantize the float32 model");
  if (dtype == DType::Float32) return;
  for (auto& p : named_parameters()) {
    Parameter& prm = *p.second;
    if (!prm.matrix) continue;
    const int64_t rows = prm.value.size(0), cols = prm.value.numel() / rows;
    try {
      prm.packed = std::make_shared<PackedWeight>(pack_weight(dtype, prm.value.data(), rows, cols, cols));
    } catch (const ValueError& e) {
      throw ValueError(str_cat(p.first, ": ", e.what()));
    }
  }
  commit_packed(dtype);
}

void Module::commit_packed(DType dtype) {
  CF_CHECK_STATE(dtype_ == DType::Float32, "quantize: this module is already ", dtype_name(dtype_));
  drop_replicas();  // they hold the float32 values
  CF_CHECK_VALUE(dtype != DType::Float32, "commit_packed: expected bfloat16 or int8");
  auto params = named_parameters();
  for (auto& p : params)
    CF_CHECK_STATE(!p.second->matrix || (p.second->packed && p.second->packed->dtype == dtype), "commit_packed: ",
                   p.first, " has no ", dtype_name(dtype), " weight");
  if (flat_values_.defined()) {
    // The float32 parameters that remain move into a new flat buffer; the
    // old one (every matrix's float32 values) is freed with its last view.
    constexpr int64_t kAlign = 16;
    int64_t total = kAlign;
    for (auto& p : params)
      if (!p.second->matrix) total += (p.second->value.numel() + kAlign - 1) / kAlign * kAlign;
    Tensor flat = Tensor::zeros({total});
    auto arena = std::make_shared<GradArena>();
    arena->total = total;
    int64_t off = 0;
    for (auto& p : params) {
      Parameter& prm = *p.second;
      prm.grad = Tensor();
      if (prm.matrix) {
        prm.value = Tensor();
        prm.arena = nullptr;
        continue;
      }
      Tensor v = Tensor::view(flat, off, prm.value.shape());
      if (prm.value.numel()) std::memcpy(v.data(), prm.value.data(), sizeof(float) * prm.value.numel());
      prm.value = v;
      prm.arena = arena;
      arena->slots.emplace_back(&prm, off);
      off += (prm.value.numel() + kAlign - 1) / kAlign * kAlign;
    }
    flat_values_ = flat;
    arena_ = arena;
  } else {
    for (auto& p : params)
      if (p.second->matrix) p.second->value = p.second->grad = Tensor();
  }
  set_dtype(dtype);
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

Parameter& Module::register_parameter(const std::string& name, const Shape& shape, bool matrix) {
  CF_CHECK_STATE(!flat_values_.defined(), "register_parameter after flatten_parameters");
  auto p = std::make_unique<Parameter>();
  p->matrix = matrix;
  // The gradient is allocated on first use; under NoInitGuard the value is
  // left unwritten for the loader.
  p->value = tl_no_init ? Tensor::empty(shape) : Tensor::zeros(shape);
  params_.emplace_back(name, std::move(p));
  return *params_.back().second;
}

void Module::register_module(const std::string& name, Module* child) { children_.emplace_back(name, child); }

NoInitGuard::NoInitGuard() : prev_(tl_no_init) { tl_no_init = true; }
NoInitGuard::~NoInitGuard() { tl_no_init = prev_; }

void init_uniform(Tensor& t, float low, float high) {
  if (tl_no_init) return;
  const uint64_t key = next_key();
  float* d = t.data();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) d[i] = low + (high - low) * rng_uniform(key, static_cast<uint64_t>(i));
}

void init_normal(Tensor& t, float mean, float std) {
  if (tl_no_init) return;
  const uint64_t key = next_key();
  float* d = t.data();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    // Box-Muller on two independent counters; u1 in (0, 1].
    const double u1 = 1.0 - static_cast<double>(rng_bits(key, 2 * static_cast<uint64_t>(i)) >> 11) * 0x1.0p-53;
    const double u2 = static_cast<double>(rng_bits(key, 2 * static_cast<uint64_t>(i) + 1) >> 11) * 0x1.0p-53;
    d[i] = static_cast<float>(mean + std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
  }
}

}  // namespace cpuformer
