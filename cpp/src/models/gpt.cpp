#include "cpuformer/models/gpt.hpp"
#include "cpuformer/runtime/threads.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "cpuformer/error.hpp"
#include "cpuformer/ops/activations.hpp"
#include "cpuformer/ops/cross_entropy.hpp"
#include "cpuformer/ops/linear.hpp"
#include "cpuformer/runtime/grad_mode.hpp"
#include "cpuformer/runtime/memory.hpp"
#include "cpuformer/runtime/rng.hpp"

namespace cpuformer {

void GPTConfig::validate() const {
  CF_CHECK_VALUE(vocab_size >= 1, "GPTConfig.vocab_size must be >= 1, got ", vocab_size);
  CF_CHECK_VALUE(block_size >= 1, "GPTConfig.block_size must be >= 1, got ", block_size);
  CF_CHECK_VALUE(n_layer >= 1, "GPTConfig.n_layer must be >= 1, got ", n_layer);
  CF_CHECK_VALUE(n_head >= 1, "GPTConfig.n_head must be >= 1, got ", n_head);
  CF_CHECK_VALUE(n_embd >= 1, "GPTConfig.n_embd must be >= 1, got ", n_embd);
  CF_CHECK_VALUE(n_embd % n_head == 0, "GPTConfig: n_embd (", n_embd, ") must be divisible by n_head (", n_head, ")");
  CF_CHECK_VALUE(dropout >= 0.0f && dropout < 1.0f, "GPTConfig.dropout must be in [0, 1), got ", dropout);
  CF_CHECK_VALUE(layer_norm_eps > 0.0f, "GPTConfig.layer_norm_eps must be > 0, got ", layer_norm_eps);
  CF_CHECK_VALUE(activation == "gelu_tanh" || activation == "gelu" || activation == "relu",
                 "GPTConfig.activation must be \"gelu_tanh\", \"gelu\" or \"relu\", got \"", activation, "\"");
  CF_CHECK_VALUE(n_inner >= 0, "GPTConfig.n_inner must be >= 0 (0 = 4 * n_embd), got ", n_inner);
  const AttentionVariant v =
      make_attention_variant(attention, attention_window, num_global, num_features, linformer_k, block_size, bigbird());
  CF_CHECK_VALUE(v.kind != AttentionKind::Linformer, "GPTConfig.attention: \"linformer\" is not supported for a "
                 "causal model (its sequence projection mixes future positions); use \"sliding_window\" or "
                 "\"performer\"");
}

namespace {
TransformerLayerOptions block_options(const GPTConfig& c) {
  TransformerLayerOptions o;
  o.d_model = c.n_embd;
  o.nhead = c.n_head;
  o.dim_feedforward = c.ff_width();
  o.dropout = c.dropout;
  o.activation = c.activation;
  o.layer_norm_eps = c.layer_norm_eps;
  o.norm_first = true;
  o.bias = c.bias;
  o.attention = make_attention_variant(c.attention, c.attention_window, c.num_global, c.num_features, c.linformer_k,
                                       c.block_size, c.bigbird());
  return o;
}
}  // namespace

GPT::GPT(const GPTConfig& cfg)
    : cfg_(validated_stack(cfg, "GPTConfig.n_layer", block_options)),
      wte_(cfg.vocab_size, cfg.n_embd),
      wpe_(cfg.block_size, cfg.n_embd),
      drop_(cfg.dropout),
      ln_f_(cfg.n_embd, cfg.layer_norm_eps, cfg.bias) {
  register_module("wte", &wte_);
  register_module("wpe", &wpe_);
  register_module("drop", &drop_);  // no parameters; registered so train()/eval() reach it
  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    h_.push_back(std::make_unique<TransformerEncoderLayer>(block_options(cfg)));
    register_module("h." + std::to_string(l), h_.back().get());
  }
  register_module("ln_f", &ln_f_);
  causal_.is_causal = true;
  // GPT-2 initialisation: N(0, 0.02) for weights, zero biases, and the
  // residual projections scaled by 1/sqrt(2 * n_layer).
  const float resid_std = 0.02f / std::sqrt(2.0f * static_cast<float>(cfg.n_layer));
  for (auto& p : named_parameters()) {
    const std::string& n = p.first;
    Tensor& v = p.second->value;
    if (n.size() >= 5 && n.compare(n.size() - 5, 5, ".bias") == 0) {
      if (n.find("norm") == std::string::npos && n.find("ln_f") == std::string::npos) v.zero();
    } else if (n.find("norm") != std::string::npos || n.find("ln_f") != std::string::npos) {
      // LayerNorm weight stays 1
    } else if (n.find("out_proj.weight") != std::string::npos || n.find("linear2.weight") != std::string::npos) {
      init_normal(v, 0.0f, resid_std);
    } else {
      init_normal(v, 0.0f, 0.02f);
    }
  }
}

void GPT::check_ids(const int64_t* idx, int64_t n, const char* what) const {
  for (int64_t i = 0; i < n; ++i)
    CF_CHECK_INDEX(idx[i] >= 0 && idx[i] < cfg_.vocab_size, what, ": token id ", idx[i], " at flat position ", i,
                   " is out of range [0, ", cfg_.vocab_size, ")");
}

Tensor GPT::forward(const int64_t* idx, int64_t B, int64_t T, const std::vector<uint8_t>& padding) {
  CF_CHECK_VALUE(B >= 1 && T >= 1, "idx: expected a non-empty [batch, seq] array, got [", B, ", ", T, "]");
  CF_CHECK_VALUE(T <= cfg_.block_size, "idx: sequence length ", T, " exceeds block_size ", cfg_.block_size);
  CF_CHECK_VALUE(padding.empty() || static_cast<int64_t>(padding.size()) == B * T,
                 "attention_mask: expected shape [", B, ", ", T, "], got ", padding.size(), " elements");
  check_ids(idx, B * T, "idx");
  const int64_t C = cfg_.n_embd;
  have_loss_ = false;
  Tensor tok = wte_.forward(idx, {B, T});
  std::vector<int64_t> pos(static_cast<size_t>(T));
  std::iota(pos.begin(), pos.end(), 0);
  Tensor pe = wpe_.forward(pos.data(), {T});  // [T, C]
  float* x = tok.data();
  const float* p = pe.data();
#pragma omp parallel for schedule(static) if (B * T * C >= kParallelMinWork)
  for (int64_t bt = 0; bt < B * T; ++bt) {
    const float* prow = p + (bt % T) * C;
    for (int64_t c = 0; c < C; ++c) x[bt * C + c] += prow[c];
  }
  Tensor h = drop_.forward(tok);
  AttentionMask mask = causal_;
  mask.key_padding = padding;
  for (auto& blk : h_) h = blk->forward(h, mask);
  const Tensor xf = ln_f_.forward(h);
  logits_ = Tensor::empty({B, T, cfg_.vocab_size});
  weight_linear(logits_.data(), xf.data(), wte_.weight(), nullptr, B * T);
  xf_ = saves_activations() ? xf : Tensor();
  head_dtype_ = autocast_dtype();
  B_ = B;
  T_ = T;
  return logits_;
}

void GPT::backward_logits(const Tensor& dlogits) {
  check_trainable("GPT.backward");
  CF_CHECK_STATE(xf_.defined(), "GPT.backward called before forward (or after a forward under no_grad)");
  CF_CHECK_VALUE(dlogits.shape() == Shape({B_, T_, cfg_.vocab_size}), "grad_logits: expected shape ",
                 shape_str({B_, T_, cfg_.vocab_size}), ", got ", shape_str(dlogits.shape()));
  const int64_t C = cfg_.n_embd, V = cfg_.vocab_size, N = B_ * T_;
  Tensor dxf = Tensor::empty({B_, T_, C});
  linear_backward(dxf.data(), wte_.weight().grad_data(), nullptr, dlogits.data(), xf_.data(),
                  wte_.weight().value.data(), N, C, V, head_dtype_, /*accumulate_dinp=*/false);
  Tensor d = ln_f_.backward(dxf);
  for (auto it = h_.rbegin(); it != h_.rend(); ++it) d = (*it)->backward(d);
  d = drop_.backward(d);
  wte_.backward(d);
  // Position gradient: sum over the batch, then scatter into wpe rows 0..T-1.
  Tensor dpos = Tensor::zeros({T_, C});
  float* dp = dpos.data();
  const float* dd = d.data();
#pragma omp parallel for schedule(static) if (B_ * T_ * C >= kParallelMinWork)
  for (int64_t t = 0; t < T_; ++t)
    for (int64_t b = 0; b < B_; ++b)
      for (int64_t c = 0; c < C; ++c) dp[t * C + c] += dd[(b * T_ + t) * C + c];
  accumulate(wpe_.weight().grad_data(), dp, T_ * C);
}

float GPT::loss(const int64_t* idx, const int64_t* targets, int64_t B, int64_t T,
                const std::vector<uint8_t>& padding) {
  for (int64_t i = 0; i < B * T; ++i)
    CF_CHECK_INDEX(targets[i] == -100 || (targets[i] >= 0 && targets[i] < cfg_.vocab_size), "targets: value ",
                   targets[i], " at flat position ", i, " is out of range [0, ", cfg_.vocab_size, ") (or -100)");
  forward(idx, B, T, padding);
  targets_.assign(targets, targets + B * T);
  const float l = cross_entropy_forward(logits_.data(), targets, B * T, cfg_.vocab_size, -100, 0.0f);
  have_loss_ = true;
  return l;
}

void GPT::backward() {
  check_trainable("GPT.backward");
  CF_CHECK_STATE(have_loss_, "GPT.backward() needs a loss: call loss(idx, targets) first");
  Tensor dlogits = Tensor::empty(logits_.shape());
  cross_entropy_backward(dlogits.data(), logits_.data(), targets_.data(), B_ * T_, cfg_.vocab_size, -100, 0.0f, 1.0f,
                         /*accumulate=*/false);
  backward_logits(dlogits);
}

Tensor GPT::head_last(const Tensor& h) {
  const int64_t B = h.size(0), Tn = h.size(1), C = cfg_.n_embd, V = cfg_.vocab_size;
  Tensor last = Tensor::empty({B, C});
  for (int64_t b = 0; b < B; ++b)
    std::copy(h.data() + (b * Tn + Tn - 1) * C, h.data() + (b * Tn + Tn) * C, last.data() + b * C);
  last = ln_f_.inference(last);
  Tensor logits = Tensor::empty({B, V});
  weight_linear(logits.data(), last.data(), wte_.weight(), nullptr, B);
  return logits;
}

}  // namespace cpuformer
