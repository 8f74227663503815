#include "cpuformer/models/seq2seq.hpp"
#include "cpuformer/runtime/threads.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "cpuformer/error.hpp"
#include "cpuformer/ops/cross_entropy.hpp"
#include "cpuformer/ops/embedding.hpp"
#include "cpuformer/ops/linear.hpp"
#include "cpuformer/runtime/memory.hpp"

namespace cpuformer {

void Seq2SeqConfig::validate() const {
  CF_CHECK_VALUE(src_vocab_size >= 1, "Seq2SeqConfig.src_vocab_size must be >= 1, got ", src_vocab_size);
  CF_CHECK_VALUE(tgt_vocab_size >= 1, "Seq2SeqConfig.tgt_vocab_size must be >= 1, got ", tgt_vocab_size);
  CF_CHECK_VALUE(max_len >= 1, "Seq2SeqConfig.max_len must be >= 1, got ", max_len);
  CF_CHECK_VALUE(d_model >= 1 && nhead >= 1 && d_model % nhead == 0, "Seq2SeqConfig: d_model (", d_model,
                 ") must be a positive multiple of nhead (", nhead, ")");
}

namespace {
TransformerLayerOptions layer_opts(const Seq2SeqConfig& c);

// The config's own checks, then whether its layer stacks fit in memory.
const Seq2SeqConfig& validated(const Seq2SeqConfig& c) {
  c.validate();
  check_layer_stack("Seq2SeqConfig.num_encoder_layers", c.num_encoder_layers, layer_opts(c));
  check_layer_stack("Seq2SeqConfig.num_decoder_layers", c.num_decoder_layers, layer_opts(c), true);
  return c;
}
TransformerLayerOptions layer_opts(const Seq2SeqConfig& c) {
  TransformerLayerOptions o;
  o.d_model = c.d_model;
  o.nhead = c.nhead;
  o.dim_feedforward = c.dim_feedforward;
  o.dropout = c.dropout;
  o.activation = "relu";
  o.norm_first = false;
  return o;
}
AttentionMask padding_mask(const std::vector<uint8_t>& pad) {
  AttentionMask m;
  m.key_padding = pad;
  return m;
}
}  // namespace

Seq2Seq::Seq2Seq(const Seq2SeqConfig& cfg)
    : cfg_(validated(cfg)),
      src_embed_(cfg.src_vocab_size, cfg.d_model),
      tgt_embed_(cfg.tgt_vocab_size, cfg.d_model),
      transformer_(layer_opts(cfg), cfg.num_encoder_layers, cfg.num_decoder_layers),
      generator_(cfg.d_model, cfg.tgt_vocab_size),
      drop_src_(cfg.dropout),
      drop_tgt_(cfg.dropout) {
  register_module("src_embed", &src_embed_);
  register_module("tgt_embed", &tgt_embed_);
  register_module("transformer", &transformer_);
  register_module("generator", &generator_);
  // No parameters; registered so train()/eval() reach them.
  register_module("drop_src", &drop_src_);
  register_module("drop_tgt", &drop_tgt_);
  // Embeddings ~ N(0, 1/d) so that scaled by sqrt(d) they have unit variance.
  init_normal(src_embed_.weight().value, 0.0f, 1.0f / std::sqrt(static_cast<float>(cfg.d_model)));
  init_normal(tgt_embed_.weight().value, 0.0f, 1.0f / std::sqrt(static_cast<float>(cfg.d_model)));
  pe_ = Tensor::empty({cfg.max_len, cfg.d_model});
  sinusoidal_positional_encoding(pe_.data(), cfg.max_len, cfg.d_model);
}

void Seq2Seq::check_ids(const int64_t* ids, int64_t n, int64_t V, const char* what) const {
  for (int64_t i = 0; i < n; ++i)
    CF_CHECK_INDEX(ids[i] >= 0 && ids[i] < V, what, ": token id ", ids[i], " at flat position ", i,
                   " is out of range [0, ", V, ")");
}

Tensor Seq2Seq::embed(Embedding& emb, const int64_t* ids, int64_t B, int64_t T, bool save) {
  const int64_t d = cfg_.d_model;
  Tensor x;
  if (save) {
    x = emb.forward(ids, {B, T});
  } else {
    x = Tensor::empty({B, T, d});
    embedding_forward(x.data(), ids, emb.weight().value.data(), B * T, emb.num_embeddings(), d);
  }
  const float scale = std::sqrt(static_cast<float>(d));
  float* xd = x.data();
  const float* pe = pe_.data();
#pragma omp parallel for schedule(static) if (B * T * d >= kParallelMinWork)
  for (int64_t bt = 0; bt < B * T; ++bt)
    for (int64_t c = 0; c < d; ++c) xd[bt * d + c] = xd[bt * d + c] * scale + pe[(bt % T) * d + c];
  return x;
}

void Seq2Seq::embed_backward(Embedding& emb, const Tensor& dx) {
  Tensor scaled = dx.clone();
  const float scale = std::sqrt(static_cast<float>(cfg_.d_model));
  for (int64_t i = 0; i < scaled.numel(); ++i) scaled.data()[i] *= scale;
  emb.backward(scaled);
}

Tensor Seq2Seq::forward(const int64_t* src, int64_t B, int64_t S, const int64_t* tgt_in, int64_t T,
                        const std::vector<uint8_t>& src_padding) {
  CF_CHECK_VALUE(B >= 1 && S >= 1 && T >= 1, "src/tgt: expected non-empty [batch, seq] arrays");
  CF_CHECK_VALUE(S <= cfg_.max_len, "src: length ", S, " exceeds max_len ", cfg_.max_len);
  CF_CHECK_VALUE(T <= cfg_.max_len, "tgt: length ", T, " exceeds max_len ", cfg_.max_len);
  CF_CHECK_VALUE(src_padding.empty() || static_cast<int64_t>(src_padding.size()) == B * S,
                 "src_key_padding_mask: expected shape [", B, ", ", S, "]");
  check_ids(src, B * S, cfg_.src_vocab_size, "src");
  check_ids(tgt_in, B * T, cfg_.tgt_vocab_size, "tgt");
  have_loss_ = false;
  const Tensor xs = drop_src_.forward(embed(src_embed_, src, B, S, true));
  const Tensor xt = drop_tgt_.forward(embed(tgt_embed_, tgt_in, B, T, true));
  AttentionMask causal;
  causal.is_causal = true;
  const AttentionMask pad = padding_mask(src_padding);
  const Tensor h = transformer_.forward(xs, xt, pad, causal, pad);
  logits_ = generator_.forward(h);
  B_ = B;
  T_ = T;
  return logits_;
}

float Seq2Seq::loss(const int64_t* src, int64_t B, int64_t S, const int64_t* tgt_in, const int64_t* tgt_out,
                    int64_t T, const std::vector<uint8_t>& src_padding) {
  for (int64_t i = 0; i < B * T; ++i)
    CF_CHECK_INDEX(tgt_out[i] == -100 || (tgt_out[i] >= 0 && tgt_out[i] < cfg_.tgt_vocab_size), "tgt_out: value ",
                   tgt_out[i], " at flat position ", i, " is out of range [0, ", cfg_.tgt_vocab_size, ") (or -100)");
  forward(src, B, S, tgt_in, T, src_padding);
  targets_.assign(tgt_out, tgt_out + B * T);
  const float l = cross_entropy_forward(logits_.data(), tgt_out, B * T, cfg_.tgt_vocab_size, -100, 0.0f);
  have_loss_ = true;
  return l;
}

void Seq2Seq::backward() {
  CF_CHECK_STATE(have_loss_, "Seq2Seq.backward() needs a loss: call loss(src, tgt_in, tgt_out) first");
  Tensor dlogits = Tensor::zeros(logits_.shape());
  cross_entropy_backward(dlogits.data(), logits_.data(), targets_.data(), B_ * T_, cfg_.tgt_vocab_size, -100, 0.0f);
  const std::array<Tensor, 2> g = transformer_.backward(generator_.backward(dlogits));
  embed_backward(src_embed_, drop_src_.backward(g[0]));
  embed_backward(tgt_embed_, drop_tgt_.backward(g[1]));
}

void Seq2Seq::check_decode_args(int64_t B, int64_t S, int64_t bos, int64_t eos, int64_t max_len) const {
  CF_CHECK_VALUE(B >= 1 && S >= 1, "src: expected a non-empty [batch, seq] array");
  CF_CHECK_VALUE(S <= cfg_.max_len, "src: length ", S, " exceeds max_len ", cfg_.max_len);
  CF_CHECK_INDEX(bos >= 0 && bos < cfg_.tgt_vocab_size, "bos_id ", bos, " is out of range [0, ", cfg_.tgt_vocab_size,
                 ")");
  CF_CHECK_INDEX(eos >= 0 && eos < cfg_.tgt_vocab_size, "eos_id ", eos, " is out of range [0, ", cfg_.tgt_vocab_size,
                 ")");
  CF_CHECK_VALUE(max_len >= 1 && max_len < cfg_.max_len, "max_len must be in [1, ", cfg_.max_len - 1,
                 "] (the model's max_len minus the BOS position), got ", max_len);
}

Tensor Seq2Seq::next_log_probs(const Tensor& memory, const std::vector<int64_t>& tgt, int64_t R, int64_t t,
                               const AttentionMask& memory_mask) {
  const int64_t d = cfg_.d_model, V = cfg_.tgt_vocab_size;
  const Tensor x = embed(tgt_embed_, tgt.data(), R, t, false);
  AttentionMask causal;
  causal.is_causal = true;
  const Tensor h = transformer_.decode(x, memory, causal, memory_mask);  // [R, t, d]
  Tensor last = Tensor::empty({R, d});
  for (int64_t r = 0; r < R; ++r)
    std::copy(h.data() + (r * t + t - 1) * d, h.data() + (r * t + t) * d, last.data() + r * d);
  Tensor logp = Tensor::empty({R, V});
  linear_forward(logp.data(), last.data(), generator_.weight().value.data(), generator_.bias()->value.data(), R, d, V);
  for (int64_t r = 0; r < R; ++r) {
    float* row = logp.data() + r * V;
    const float mx = *std::max_element(row, row + V);
    double s = 0.0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(static_cast<double>(row[v] - mx));
    const float lse = mx + static_cast<float>(std::log(s));
    for (int64_t v = 0; v < V; ++v) row[v] -= lse;
  }
  return logp;
}

std::vector<int64_t> Seq2Seq::greedy_decode(const int64_t* src, int64_t B, int64_t S, int64_t bos_id, int64_t eos_id,
                                            int64_t max_len, const std::vector<uint8_t>& src_padding) {
  check_decode_args(B, S, bos_id, eos_id, max_len);
  check_ids(src, B * S, cfg_.src_vocab_size, "src");
  const bool was_training = training();
  eval();
  std::vector<int64_t> out(static_cast<size_t>(B * max_len), eos_id);
  try {
    const AttentionMask pad = padding_mask(src_padding);
    const Tensor memory = transformer_.encode(embed(src_embed_, src, B, S, false), pad);
    std::vector<int64_t> tgt(static_cast<size_t>(B), bos_id);  // [B, t]
    std::vector<uint8_t> done(static_cast<size_t>(B), 0);
    for (int64_t t = 1; t <= max_len; ++t) {
      const Tensor logp = next_log_probs(memory, tgt, B, t, pad);
      std::vector<int64_t> grown(static_cast<size_t>(B * (t + 1)));
      bool all_done = true;
      for (int64_t b = 0; b < B; ++b) {
        const float* row = logp.data() + b * cfg_.tgt_vocab_size;
        const int64_t tok = done[b] ? eos_id : std::max_element(row, row + cfg_.tgt_vocab_size) - row;
        out[b * max_len + t - 1] = tok;
        if (tok == eos_id) done[b] = 1;
        all_done = all_done && done[b];
        std::copy(tgt.begin() + b * t, tgt.begin() + (b + 1) * t, grown.begin() + b * (t + 1));
        grown[b * (t + 1) + t] = tok;
      }
      tgt.swap(grown);
      if (all_done) break;
    }
  } catch (...) {
    train(was_training);
    throw;
  }
  train(was_training);
  return out;
}

void Seq2Seq::check_beam_memory(int64_t B, int64_t S, int64_t beam_size) const {
  // A lower bound of what beam search allocates for R = B * beam_size beams:
  // the encoder memory repeated per beam [R, S, d_model] and the next-token
  // log-probabilities [R, V] (floats), one row's candidates (beam_size * V
  // (score, index) pairs) and the beams' tokens (two [R, 2] int64 at least).
  const auto mul = saturating_mul;
  const auto sum = saturating_add;
  const int64_t R = mul(B, beam_size), V = cfg_.tgt_vocab_size;
  int64_t need = mul(mul(R, sum(mul(S, cfg_.d_model), V)), int64_t{sizeof(float)});
  need = sum(need, mul(mul(beam_size, V), int64_t{sizeof(std::pair<float, int64_t>)}));
  need = sum(need, mul(R, 4 * int64_t{sizeof(int64_t)}));
  const int64_t have = physical_memory_bytes();
  CF_CHECK_VALUE(need <= have, "beam_size: ", beam_size, " beams for each of ", B, " source rows of length ", S,
                 " need at least ", need >> 20, " MiB (the encoder output repeated per beam, log-probabilities over ", V,
                 " target tokens and candidates), more than this machine's ", have >> 20, " MiB of memory");
}

std::vector<int64_t> Seq2Seq::beam_search(const int64_t* src, int64_t B, int64_t S, int64_t bos_id, int64_t eos_id,
                                          int64_t max_len, int64_t beam_size, float length_penalty,
                                          const std::vector<uint8_t>& src_padding) {
  check_decode_args(B, S, bos_id, eos_id, max_len);
  CF_CHECK_VALUE(beam_size >= 1, "beam_size must be >= 1, got ", beam_size);
  check_beam_memory(B, S, beam_size);
  check_ids(src, B * S, cfg_.src_vocab_size, "src");
  const int64_t K = beam_size, V = cfg_.tgt_vocab_size, d = cfg_.d_model, R = B * K;
  const bool was_training = training();
  eval();
  std::vector<int64_t> out(static_cast<size_t>(B * max_len), eos_id);
  try {
    const AttentionMask pad = padding_mask(src_padding);
    const Tensor mem1 = transformer_.encode(embed(src_embed_, src, B, S, false), pad);
    // Repeat each row's memory (and padding) for its K beams.
    Tensor memory = Tensor::empty({R, S, d});
    std::vector<uint8_t> pad_r;
    for (int64_t r = 0; r < R; ++r) {
      std::copy(mem1.data() + (r / K) * S * d, mem1.data() + (r / K + 1) * S * d, memory.data() + r * S * d);
      if (!src_padding.empty())
        pad_r.insert(pad_r.end(), src_padding.begin() + (r / K) * S, src_padding.begin() + (r / K + 1) * S);
    }
    const AttentionMask pad_beams = padding_mask(pad_r);
    const float neg_inf = -std::numeric_limits<float>::infinity();
    std::vector<float> score(static_cast<size_t>(R), neg_inf);  // sum of log-probs per beam
    for (int64_t b = 0; b < B; ++b) score[b * K] = 0.0f;      // one live beam at the start
    std::vector<uint8_t> finished(static_cast<size_t>(R), 0);
    std::vector<int64_t> length(static_cast<size_t>(R), 0);   // tokens generated before EOS (EOS counted)
    std::vector<int64_t> tgt(static_cast<size_t>(R), bos_id);
    for (int64_t t = 1; t <= max_len; ++t) {
      const Tensor logp = next_log_probs(memory, tgt, R, t, pad_beams);
      std::vector<int64_t> grown(static_cast<size_t>(R * (t + 1)));
      std::vector<float> new_score(static_cast<size_t>(R));
      std::vector<uint8_t> new_finished(static_cast<size_t>(R));
      std::vector<int64_t> new_length(static_cast<size_t>(R));
      bool all_finished = true;
      for (int64_t b = 0; b < B; ++b) {
        // Candidates: (score, beam, token). Finished beams extend only with EOS at no cost.
        std::vector<std::pair<float, int64_t>> cand;  // (score, beam * V + token)
        cand.reserve(static_cast<size_t>(K * V));
        for (int64_t k = 0; k < K; ++k) {
          const int64_t r = b * K + k;
          if (score[r] == neg_inf) continue;
          if (finished[r]) {
            cand.emplace_back(score[r], k * V + eos_id);
            continue;
          }
          const float* row = logp.data() + r * V;
          for (int64_t v = 0; v < V; ++v) cand.emplace_back(score[r] + row[v], k * V + v);
        }
        auto ranked = [&](const std::pair<float, int64_t>& c) {
          // Rank by length-normalised score, as the final choice does.
          const int64_t k = c.second / V;
          const int64_t r = b * K + k;
          const int64_t len = finished[r] ? length[r] : t;
          return c.first / std::pow(static_cast<float>(len), length_penalty);
        };
        const int64_t keep = std::min<int64_t>(K, static_cast<int64_t>(cand.size()));
        std::partial_sort(cand.begin(), cand.begin() + keep, cand.end(), [&](const auto& a, const auto& c) {
          const float ra = ranked(a), rc = ranked(c);
          return ra > rc || (ra == rc && a.second < c.second);
        });
        for (int64_t k = 0; k < K; ++k) {
          const int64_t r = b * K + k;
          if (k >= keep) {
            new_score[r] = neg_inf;
            new_finished[r] = 1;
            new_length[r] = t;
            std::fill(grown.begin() + r * (t + 1), grown.begin() + (r + 1) * (t + 1), eos_id);
            continue;
          }
          const int64_t src_beam = b * K + cand[k].second / V, tok = cand[k].second % V;
          new_score[r] = cand[k].first;
          new_finished[r] = finished[src_beam] || tok == eos_id;
          new_length[r] = finished[src_beam] ? length[src_beam] : t;
          std::copy(tgt.begin() + src_beam * t, tgt.begin() + (src_beam + 1) * t, grown.begin() + r * (t + 1));
          grown[r * (t + 1) + t] = tok;
          all_finished = all_finished && new_finished[r];
        }
      }
      tgt.swap(grown);
      score.swap(new_score);
      finished.swap(new_finished);
      length.swap(new_length);
      if (all_finished || t == max_len) {
        for (int64_t b = 0; b < B; ++b) {
          int64_t best = b * K;
          float best_v = neg_inf;
          for (int64_t k = 0; k < K; ++k) {
            const int64_t r = b * K + k;
            if (score[r] == neg_inf) continue;
            const float v = score[r] / std::pow(static_cast<float>(std::max<int64_t>(1, length[r])), length_penalty);
            if (v > best_v) {
              best_v = v;
              best = r;
            }
          }
          bool stopped = false;
          for (int64_t i = 0; i < max_len; ++i) {
            const int64_t tok = i < t ? tgt[best * (t + 1) + 1 + i] : eos_id;
            out[b * max_len + i] = stopped ? eos_id : tok;
            if (tok == eos_id) stopped = true;
          }
        }
        break;
      }
    }
  } catch (...) {
    train(was_training);
    throw;
  }
  train(was_training);
  return out;
}

}  // namespace cpuformer
