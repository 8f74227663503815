// GPT generation: sampling, the step-by-step request (GPTGeneration) and
// GPT::generate on top of it.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>

#include "cpuformer/error.hpp"
#include "cpuformer/models/generation.hpp"
#include "cpuformer/ops/activations.hpp"
#include "cpuformer/runtime/grad_mode.hpp"
#include "cpuformer/runtime/memory.hpp"
#include "cpuformer/runtime/rng.hpp"
#include "cpuformer/runtime/threads.hpp"

namespace cpuformer {

int64_t sample_row(float* row, int64_t V, const SamplingOptions& opt, uint64_t key, uint64_t draw) {
  if (opt.temperature == 0.0f) return std::max_element(row, row + V) - row;
  for (int64_t v = 0; v < V; ++v) row[v] /= opt.temperature;
  // Descending logits, ties by index: the order a stable sort gives, so a
  // partial sort of the top_k is the same prefix.
  std::vector<int64_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  const auto before = [row](int64_t a, int64_t c) { return row[a] > row[c] || (row[a] == row[c] && a < c); };
  int64_t keep = V;
  if (opt.top_k > 0 && opt.top_k < V) {
    keep = opt.top_k;
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), before);
  } else {
    std::sort(order.begin(), order.end(), before);
  }
  const float mx = row[order[0]];
  std::vector<double> probs(static_cast<size_t>(keep));
  double sum = 0.0;
  for (int64_t i = 0; i < keep; ++i) sum += probs[i] = std::exp(static_cast<double>(row[order[i]] - mx));
  if (opt.top_p < 1.0f) {
    // Smallest prefix whose probability mass reaches top_p (at least one token).
    double cum = 0.0;
    int64_t n = 0;
    while (n < keep) {
      cum += probs[n] / sum;
      ++n;
      if (cum >= opt.top_p) break;
    }
    keep = n;
    sum = 0.0;
    for (int64_t i = 0; i < keep; ++i) sum += probs[i];
  }
  const double u = rng_uniform(key, draw) * sum;
  double cum = 0.0;
  for (int64_t i = 0; i < keep; ++i) {
    cum += probs[i];
    if (u < cum) return order[i];
  }
  return order[keep - 1];
}

void sample_tokens(float* logits, int64_t B, int64_t V, const SamplingOptions& opt, uint64_t key, uint64_t step,
                   int64_t* out) {
  for (int64_t b = 0; b < B; ++b)
    out[b] = sample_row(logits + b * V, V, opt, key, step * static_cast<uint64_t>(B) + static_cast<uint64_t>(b));
}

void GPT::check_generate_memory(int64_t B, int64_t T, int64_t max_new_tokens) const {
  if (max_new_tokens == 0) return;  // the output is a copy of the prompt
  // A lower bound of what generate allocates: the output ids [B, T +
  // max_new_tokens] (int64) and, with full attention, the KV cache (K and V
  // for n_layer layers, [B, block_size, n_embd] floats each). The cache never
  // grows past block_size, so long generations cost only their output ids.
  const auto mul = saturating_mul;
  const int64_t ids = mul(mul(B, saturating_add(T, max_new_tokens)), int64_t{sizeof(int64_t)});
  const int64_t per_row = mul(mul(2 * cfg_.n_layer, cfg_.block_size), mul(cfg_.n_embd, int64_t{sizeof(float)}));
  const int64_t cache = cfg_.attention == "full" ? mul(B, per_row) : 0;
  const int64_t need = saturating_add(ids, cache), have = physical_memory_bytes();
  CF_CHECK_VALUE(need <= have, ids >= cache ? "max_new_tokens: " : "idx: ", "generating ", max_new_tokens,
                 " tokens after a [", B, ", ", T, "] prompt needs at least ", need >> 20, " MiB (output ids [", B, ", ",
                 T, " + ", max_new_tokens, "] int64: ", ids >> 20, " MiB; KV cache: ", cache >> 20,
                 " MiB), more than this machine's ", have >> 20, " MiB of memory");
}

Tensor GPT::decode_step(const int64_t* tokens, const int64_t* positions, int64_t B, int64_t n,
                        std::vector<KVCache>& caches, const uint8_t* key_padding) {
  // Decoding never trains: without grad mode the projections may use their
  // weights' pre-packed copies (nn/linear.cpp) instead of re-packing them
  // per call, which is most of a small batch's product.
  const NoGradGuard inference;
  const int64_t C = cfg_.n_embd;
  Tensor x = Tensor::empty({B, n, C});
  Tensor pe = Tensor::empty({B, n, C});
  weight_lookup(x.data(), wte_.weight(), tokens, B * n);
  weight_lookup(pe.data(), wpe_.weight(), positions, B * n);
  residual_forward(x.data(), x.data(), pe.data(), B * n * C);
  for (size_t l = 0; l < h_.size(); ++l) x = h_[l]->forward_cached(x, caches[l], cfg_.block_size, key_padding);
  return head_last(x);
}

std::vector<int64_t> GPT::generate(const int64_t* idx, int64_t B, int64_t T, int64_t max_new_tokens,
                                   const SamplingOptions& opt) {
  GenerationOptions g;
  g.sampling = opt;
  return generate(idx, B, T, max_new_tokens, g);
}

std::vector<int64_t> GPT::generate(const int64_t* idx, int64_t B, int64_t T, int64_t max_new_tokens,
                                   const GenerationOptions& opt, int64_t* steps_out) {
  GPTGeneration request(*this, idx, B, T, max_new_tokens, opt);
  while (request.step(nullptr)) {
  }
  if (steps_out) *steps_out = request.steps();
  return request.result();
}

// ---------------------------------------------------------------------------
// GPTGeneration

namespace {
std::atomic<int64_t> g_live_cache_bytes{0};
}

GPTGeneration::GPTGeneration(GPT& model, const int64_t* idx, int64_t B, int64_t T, int64_t max_new_tokens,
                             GenerationOptions opt)
    : m_(model),
      B_(B),
      T_(T),
      max_new_(max_new_tokens),
      V_(model.config().vocab_size),
      bs_(model.config().block_size),
      W_(0),
      opt_(std::move(opt)) {
  const SamplingOptions& so = opt_.sampling;
  CF_CHECK_VALUE(B >= 1 && T >= 1, "idx: expected a non-empty [batch, seq] prompt, got [", B, ", ", T, "]");
  CF_CHECK_VALUE(max_new_tokens >= 0, "max_new_tokens must be >= 0, got ", max_new_tokens);
  CF_CHECK_VALUE(so.temperature >= 0.0f && std::isfinite(so.temperature), "temperature must be >= 0, got ",
                 so.temperature);
  CF_CHECK_VALUE(so.top_k >= 0, "top_k must be >= 1 (or None), got ", so.top_k);
  CF_CHECK_VALUE(so.top_p > 0.0f && so.top_p <= 1.0f, "top_p must be in (0, 1], got ", so.top_p);
  CF_CHECK_VALUE(opt_.repetition_penalty > 0.0f && std::isfinite(opt_.repetition_penalty),
                 "repetition_penalty must be a finite number > 0 (1 = off), got ", opt_.repetition_penalty);
  CF_CHECK_VALUE(opt_.min_new_tokens >= 0, "min_new_tokens must be >= 0, got ", opt_.min_new_tokens);
  for (size_t i = 0; i < opt_.eos_token_ids.size(); ++i)
    CF_CHECK_INDEX(opt_.eos_token_ids[i] >= 0 && opt_.eos_token_ids[i] < V_, "eos_token_id ",
                   opt_.eos_token_ids[i], " is out of range [0, ", V_, ")");
  CF_CHECK_INDEX(opt_.pad_token_id == -1 || (opt_.pad_token_id >= 0 && opt_.pad_token_id < V_), "pad_token_id ",
                 opt_.pad_token_id, " is out of range [0, ", V_, ")");
  pad_id_ = opt_.pad_token_id >= 0 ? opt_.pad_token_id : (opt_.eos_token_ids.empty() ? 0 : opt_.eos_token_ids[0]);

  // Left padding per row.
  const std::vector<uint8_t>& mask = opt_.attention_mask;
  pad_.assign(static_cast<size_t>(B), 0);
  if (!mask.empty()) {
    CF_CHECK_VALUE(static_cast<int64_t>(mask.size()) == B * T, "attention_mask: expected shape [", B, ", ", T,
                   "] (the prompt's), got ", mask.size(), " elements");
    for (int64_t b = 0; b < B; ++b) {
      const uint8_t* r = mask.data() + b * T;
      int64_t t = 0;
      while (t < T && r[t] == 0) ++t;
      CF_CHECK_VALUE(t < T, "attention_mask: row ", b, " has no tokens (every entry is 0)");
      pad_[b] = t;
      for (; t < T; ++t) {
        CF_CHECK_VALUE(r[t] <= 1, "attention_mask: expected 0 (padding) or 1 (token), got ", int(r[t]), " at [", b,
                       ", ", t, "]");
        CF_CHECK_VALUE(r[t] == 1, "attention_mask: row ", b, " has padding at position ", t, " after a token; "
                       "generation needs LEFT padding (padding first, then the prompt), as Hugging Face pads "
                       "decoder-only batches");
      }
    }
    const bool padded = std::any_of(pad_.begin(), pad_.end(), [](int64_t p) { return p > 0; });
    CF_CHECK_VALUE(!padded || m_.config().attention == "full", "attention_mask: padded prompts need "
                   "attention=\"full\"; this model uses \"", m_.config().attention, "\"");
  }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = pad_[b]; t < T; ++t)
      CF_CHECK_INDEX(idx[b * T + t] >= 0 && idx[b * T + t] < V_, "idx: token id ", idx[b * T + t], " at [", b, ", ",
                     t, "] is out of range [0, ", V_, ")");
  m_.check_generate_memory(B, T, max_new_tokens);  // also refuses a T + max_new_tokens beyond int64

  W_ = T + max_new_tokens;
  seq_.assign(static_cast<size_t>(B * W_), pad_id_);
  for (int64_t b = 0; b < B; ++b) std::copy(idx + b * T, idx + (b + 1) * T, seq_.begin() + b * W_);
  skip_ = *std::min_element(pad_.begin(), pad_.end());
  live_.resize(static_cast<size_t>(B));
  std::iota(live_.begin(), live_.end(), 0);
  if (opt_.repetition_penalty != 1.0f && max_new_tokens > 0) {
    seen_.resize(static_cast<size_t>(B));
    seen_mark_.assign(static_cast<size_t>(B * V_), 0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = pad_[b]; t < T; ++t) {
        const int64_t id = idx[b * T + t];
        if (!seen_mark_[b * V_ + id]) {
          seen_mark_[b * V_ + id] = 1;
          seen_[b].push_back(id);
        }
      }
  }
  key_ = so.has_seed ? rng_bits(so.seed, 0x6E6E) : next_key();
  caches_.resize(m_.h_.size());
}

GPTGeneration::~GPTGeneration() { g_live_cache_bytes -= accounted_; }

int64_t GPTGeneration::live_cache_bytes() { return g_live_cache_bytes.load(); }

int64_t GPTGeneration::cache_bytes() const {
  int64_t n = 0;
  for (const KVCache& c : caches_) n += (c.k.defined() ? c.k.numel() : 0) + (c.v.defined() ? c.v.numel() : 0);
  return n * static_cast<int64_t>(sizeof(float));
}

void GPTGeneration::account() {
  const int64_t now = cache_bytes();
  g_live_cache_bytes += now - accounted_;
  accounted_ = now;
}

void GPTGeneration::release() {
  caches_.clear();
  logits_ = Tensor();
  live_.clear();
  account();
}

std::vector<int64_t> GPTGeneration::result() const {
  const int64_t cols = T_ + steps_;
  std::vector<int64_t> out(static_cast<size_t>(B_ * cols));
  for (int64_t b = 0; b < B_; ++b) std::copy(seq_.begin() + b * W_, seq_.begin() + b * W_ + cols, out.begin() + b * cols);
  return out;
}

void GPTGeneration::feed() {
  const int64_t R = live_rows(), cur = T_ + steps_;  // columns filled so far
  const int64_t len = caches_.empty() ? 0 : caches_[0].len;
  int64_t first, n;
  if (len == 0 || len >= bs_) {  // prefill, or a context past block_size: recompute the last bs_ columns
    for (KVCache& c : caches_) c.len = 0;
    start_ = std::max(skip_, cur - bs_);
    first = start_;
    n = cur - start_;
  } else {
    first = cur - 1;
    n = 1;
  }
  const int64_t S = (first - start_) + n;  // keys after this step
  tokens_.resize(static_cast<size_t>(R * n));
  positions_.resize(static_cast<size_t>(R * n));
  bool padded = false;
  for (int64_t i = 0; i < R; ++i) {
    const int64_t b = live_[i], begin = std::max(pad_[b], start_);
    padded = padded || pad_[b] > start_;
    for (int64_t t = 0; t < n; ++t) {
      const int64_t c = first + t;
      tokens_[i * n + t] = c < pad_[b] ? 0 : seq_[b * W_ + c];  // padding: any valid id, masked out
      positions_[i * n + t] = c < begin ? 0 : c - begin;
    }
  }
  const uint8_t* kp = nullptr;
  if (padded) {
    key_padding_.resize(static_cast<size_t>(R * S));
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < S; ++j) key_padding_[i * S + j] = start_ + j < pad_[live_[i]] ? 1 : 0;
    kp = key_padding_.data();
  }
  logits_ = m_.decode_step(tokens_.data(), positions_.data(), R, n, caches_, kp);
  account();
}

bool GPTGeneration::step(int64_t* tokens, float* logits) {
  if (done()) return false;
  feed();
  const int64_t R = live_rows(), V = V_;
  if (logits) {
    std::fill(logits, logits + B_ * V, std::numeric_limits<float>::quiet_NaN());
    for (int64_t i = 0; i < R; ++i) std::copy(logits_.data() + i * V, logits_.data() + (i + 1) * V, logits + live_[i] * V);
  }
  std::vector<int64_t> next(static_cast<size_t>(R));
  const float pen = opt_.repetition_penalty;
  const bool suppress_eos = steps_ < opt_.min_new_tokens;
  const auto one_row = [&](int64_t i) {
    const int64_t b = live_[i];
    float* row = logits_.data() + i * V;
    if (pen != 1.0f)
      for (int64_t id : seen_[b]) row[id] = row[id] < 0.0f ? row[id] * pen : row[id] / pen;
    if (suppress_eos)
      for (int64_t e : opt_.eos_token_ids) row[e] = -std::numeric_limits<float>::infinity();
    next[i] = sample_row(row, V, opt_.sampling, key_, static_cast<uint64_t>(steps_) * B_ + b);
  };
  if (opt_.sampling.temperature == 0.0f || R == 1) {
    for (int64_t i = 0; i < R; ++i) one_row(i);
  } else {  // sampling sorts the vocabulary: rows in parallel (each row's draw is fixed)
#pragma omp parallel for schedule(dynamic, 1) num_threads(call_threads())
    for (int64_t i = 0; i < R; ++i) one_row(i);
  }
  const int64_t col = T_ + steps_;
  std::vector<int64_t> keep;
  keep.reserve(static_cast<size_t>(R));
  for (int64_t i = 0; i < R; ++i) {
    const int64_t b = live_[i], id = next[i];
    seq_[b * W_ + col] = id;
    if (!seen_.empty() && !seen_mark_[b * V + id]) {
      seen_mark_[b * V + id] = 1;
      seen_[b].push_back(id);
    }
    if (std::find(opt_.eos_token_ids.begin(), opt_.eos_token_ids.end(), id) == opt_.eos_token_ids.end())
      keep.push_back(i);
  }
  if (tokens)
    for (int64_t b = 0; b < B_; ++b) tokens[b] = seq_[b * W_ + col];
  ++steps_;
  if (static_cast<int64_t>(keep.size()) < R) compact(keep);
  if (done()) release();
  return true;
}

void GPTGeneration::compact(const std::vector<int64_t>& keep) {
  std::vector<int64_t> rows(keep.size());
  for (size_t j = 0; j < keep.size(); ++j) rows[j] = live_[keep[j]];
  live_ = std::move(rows);
  if (live_.empty()) return;
  const int64_t R = static_cast<int64_t>(keep.size());
  for (KVCache& c : caches_) {
    if (!c.k.defined()) continue;
    const int64_t cap = c.capacity(), E = c.k.size(2), used = std::min(c.len, cap);
    for (Tensor* t : {&c.k, &c.v}) {
      Tensor fresh = Tensor::empty({R, cap, E});
      const float* from = t->data();
      float* to = fresh.data();
#pragma omp parallel for schedule(static) if (R * used * E >= kParallelMinWork)
      for (int64_t j = 0; j < R; ++j)
        std::copy(from + keep[j] * cap * E, from + (keep[j] * cap + used) * E, to + j * cap * E);
      *t = std::move(fresh);
    }
  }
  account();
}

}  // namespace cpuformer
