// Helpers shared by the nn binding files.
#pragma once
#include <array>
#include <memory>
#include <string>
#include <utility>

#include <mutex>
#include <shared_mutex>

#include "convert.hpp"
#include "cpuformer/nn/module.hpp"
#include "cpuformer/nn/transformer_layer.hpp"
#include "cpuformer/runtime/grad_mode.hpp"
#include "cpuformer/runtime/threads.hpp"

namespace cfpy {

using cpuformer::AttentionMask;
using cpuformer::TransformerLayerOptions;

// Constructs a module that is the root of its own parameter tree and moves
// its parameters into flat buffers.
// Its twin factory builds the same module from the same arguments (for
// the replicas of concurrent inference).
template <class M, class... Args>
std::shared_ptr<M> make_root(Args... args) {
  std::shared_ptr<M> p;
  {
    py::gil_scoped_release nogil;
    p = std::make_shared<M>(args...);
    p->flatten_parameters();
    p->set_twin_factory([args...]() -> std::unique_ptr<cpuformer::Module> { return std::make_unique<M>(args...); });
  }
  return p;
}

// Runs fn() with the GIL released and self's call mutex held; returns its result.
template <class M, class F>
auto locked(M& self, F&& fn) -> decltype(fn()) {
  py::gil_scoped_release nogil;
  std::lock_guard<std::shared_mutex> guard(self.call_mutex());
  const cpuformer::CallTeam team;
  return fn();
}

// An inference entry point (forward, pooled output, ...): fn(module) with
// the GIL released. Under no_grad it runs on a replica of self that shares
// its weights (Module::acquire_replica) while holding the call mutex shared,
// so calls from several threads run at once, each with its share of the
// threads (CallTeam), and none disturbs what a forward with grad saved in
// self for its backward (as in torch, an inference call between a training
// forward and its backward changes nothing). With grad: as locked().
template <class M, class F>
auto inference_call(M& self, F&& fn) -> decltype(fn(self)) {
  py::gil_scoped_release nogil;
  if (cpuformer::grad_enabled() || !self.has_twin_factory()) {
    std::lock_guard<std::shared_mutex> guard(self.call_mutex());
    const cpuformer::CallTeam team;
    return fn(self);
  }
  std::shared_lock<std::shared_mutex> weights(self.call_mutex());
  struct Lease {  // the replica goes back to the pool however fn exits
    M& self;
    std::unique_ptr<cpuformer::Module> replica;
    ~Lease() { self.release_replica(std::move(replica)); }
  } lease{self, self.acquire_replica()};
  const cpuformer::CallTeam team;
  return fn(static_cast<M&>(*lease.replica));
}

// One tensor in, one tensor out, GIL released around the C++ call.
template <class M, class F>
py::array_t<float> call1(M& self, F fn, py::handle x, const char* name) {
  Tensor t = to_tensor(x, name);
  Tensor y = locked(self, [&] { return (self.*fn)(t); });
  return to_numpy(y);
}
// The same for a forward (concurrent under no_grad, see inference_call).
template <class M, class F>
py::array_t<float> forward1(M& self, F fn, py::handle x, const char* name) {
  Tensor t = to_tensor(x, name);
  Tensor y = inference_call(self, [&](M& m) { return (m.*fn)(t); });
  return to_numpy(y);
}

// Mask arguments in torch.nn.MultiheadAttention form -> AttentionMask
// (nn_attention.cpp): boolean True = not allowed, floats are added.
AttentionMask make_mask(py::handle attn_mask, py::handle key_padding_mask, bool is_causal, const char* attn_name,
                        const char* kpm_name);
// [B, T, E] or unbatched [T, E] (reshaped to [1, T, E]; *unbatched set).
Tensor batched(py::handle x, const char* name, bool* unbatched);
Tensor unbatch(const Tensor& t, bool unbatched);
TransformerLayerOptions layer_options(int64_t d_model, int64_t nhead, int64_t dim_feedforward, float dropout,
                                      const std::string& activation, float layer_norm_eps, bool norm_first,
                                      bool bias);

// A module's result back in the caller's layout: one array, or a tuple of
// arrays (one per gradient), unbatched again when the input was.
inline py::array_t<float> unbatched_numpy(const Tensor& t, bool unbatched) { return to_numpy(unbatch(t, unbatched)); }
template <size_t N, size_t... I>
auto unbatched_tuple(const std::array<Tensor, N>& ts, bool unbatched, std::index_sequence<I...>) {
  return py::make_tuple(unbatched_numpy(ts[I], unbatched)...);
}
template <size_t N>
auto unbatched_numpy(const std::array<Tensor, N>& ts, bool unbatched) {
  return unbatched_tuple(ts, unbatched, std::make_index_sequence<N>{});
}

// The constructor of a module built from TransformerLayerOptions followed by
// `Extra` arguments (a layer: none; a stack: its depth and final norm), as
// the flat argument list the bindings take.
template <class M, class... Extra>
auto layer_factory() {
  return [](int64_t d_model, int64_t nhead, int64_t dim_feedforward, float dropout, const std::string& activation,
            float layer_norm_eps, bool norm_first, bool bias, Extra... extra) {
    return make_root<M>(layer_options(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                      norm_first, bias),
                        extra...);
  };
}

// backward(grad_output [B, T, E] or [T, E]) for the attention modules, the
// layers and the stacks: one gradient array or a tuple of them.
template <class M>
auto batched_backward(M& self, py::handle grad) {
  bool ub = false;
  Tensor g = batched(grad, "grad_output", &ub);
  auto d = locked(self, [&] { return self.backward(g); });
  return unbatched_numpy(d, ub);
}

// forward(src, mask, src_key_padding_mask, is_causal) of an encoder layer or
// stack; `mask_name` is the mask argument's name in messages.
template <class M>
py::array_t<float> encoder_forward(M& self, py::handle src, py::handle mask, py::handle src_key_padding_mask,
                                   bool is_causal, const char* mask_name) {
  bool ub = false;
  Tensor x = batched(src, "src", &ub);
  AttentionMask am = make_mask(mask, src_key_padding_mask, is_causal, mask_name, "src_key_padding_mask");
  Tensor out = inference_call(self, [&](M& m) { return m.forward(x, am); });
  return unbatched_numpy(out, ub);
}

// forward(tgt, memory, masks..., tgt_is_causal, memory_is_causal) of a
// decoder layer or stack.
template <class M>
py::array_t<float> decoder_forward(M& self, py::handle tgt, py::handle memory, py::handle tgt_mask,
                                   py::handle memory_mask, py::handle tgt_key_padding_mask,
                                   py::handle memory_key_padding_mask, bool tgt_is_causal, bool memory_is_causal) {
  bool ub_t = false, ub_m = false;
  Tensor t = batched(tgt, "tgt", &ub_t);
  Tensor mem = batched(memory, "memory", &ub_m);
  if (ub_t != ub_m) throw cpuformer::ValueError("tgt and memory must both be batched (3-d) or both unbatched (2-d)");
  AttentionMask tm = make_mask(tgt_mask, tgt_key_padding_mask, tgt_is_causal, "tgt_mask", "tgt_key_padding_mask");
  AttentionMask mm =
      make_mask(memory_mask, memory_key_padding_mask, memory_is_causal, "memory_mask", "memory_key_padding_mask");
  Tensor out = inference_call(self, [&](M& m) { return m.forward(t, mem, tm, mm); });
  return unbatched_numpy(out, ub_t);
}

// Modules registered from other files.
void bind_nn_layers(py::module_& m);  // nn_layers.cpp: LayerNorm, Dropout, ReLU, GELU
void bind_nn_attention(py::module_& m);  // nn_attention.cpp: MultiheadAttention, Transformer*Layer
void bind_nn_embed_loss(py::module_& m);  // nn_embed_loss.cpp: Embedding, CrossEntropyLoss
void bind_nn_transformer(py::module_& m);  // nn_transformer.cpp: TransformerEncoder/Decoder, Transformer

}  // namespace cfpy
