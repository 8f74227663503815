// Seq2Seq decoding: greedy and beam search over the decoder's KV cache.
//   memory = encoder(src)                        [B, S, d], once
//   per layer: cross-attention k, v of memory    [B, S, d], once (DecoderCache)
//   step t:  x = tgt_embed[last] * sqrt(d) + PE[t-1]  [R, 1, d]
//            logp = log_softmax(generator(decoder_step(x)))  [R, V]
// R = B rows (greedy) or B * K beams; beam r belongs to source row r / K, so
// the beams share their source's cross-attention keys/values, and only the
// self-attention caches follow the beams when they are reordered.
#include "cpuformer/models/seq2seq.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "cpuformer/error.hpp"
#include "cpuformer/ops/linear.hpp"
#include "cpuformer/runtime/memory.hpp"

namespace cpuformer {

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

DecoderCache Seq2Seq::start_decoding(const int64_t* src, int64_t B, int64_t S, const std::vector<uint8_t>& src_padding,
                                     int64_t capacity) {
  AttentionMask pad;
  pad.key_padding = src_padding;
  const Tensor memory = transformer_.encode(embed(src_embed_, src, B, S, false), pad);  // [B, S, d]
  return transformer_.decoder().start_cached(memory, src_padding, capacity);
}

Tensor Seq2Seq::decode_step(DecoderCache& cache, const std::vector<int64_t>& last) {
  const int64_t R = static_cast<int64_t>(last.size()), d = cfg_.d_model, V = cfg_.tgt_vocab_size;
  const int64_t pos = cache.len();  // < capacity = decode max_len < cfg_.max_len
  // x [R, 1, d] = tgt_embed[last] * sqrt(d) + PE[pos], as embed() computes it.
  Tensor x = Tensor::empty({R, 1, d});
  const float scale = std::sqrt(static_cast<float>(d));
  weight_lookup(x.data(), tgt_embed_.weight(), last.data(), R);
  const float* pe = pe_.data() + pos * d;
  for (int64_t r = 0; r < R; ++r) {
    float* dst = x.data() + r * d;
    for (int64_t c = 0; c < d; ++c) dst[c] = dst[c] * scale + pe[c];
  }
  const Tensor h = transformer_.decoder().forward_cached(x, cache);  // [R, 1, d]
  Tensor logp = Tensor::empty({R, V});
  weight_linear(logp.data(), h.data(), generator_.weight(), generator_.bias()->value.data(), R);
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
    DecoderCache cache = start_decoding(src, B, S, src_padding, max_len);
    std::vector<int64_t> last(static_cast<size_t>(B), bos_id);  // each row's latest token
    std::vector<uint8_t> done(static_cast<size_t>(B), 0);
    for (int64_t t = 1; t <= max_len; ++t) {
      const Tensor logp = decode_step(cache, last);
      bool all_done = true;
      for (int64_t b = 0; b < B; ++b) {
        const float* row = logp.data() + b * cfg_.tgt_vocab_size;
        const int64_t tok = done[b] ? eos_id : std::max_element(row, row + cfg_.tgt_vocab_size) - row;
        out[b * max_len + t - 1] = tok;
        if (tok == eos_id) done[b] = 1;
        all_done = all_done && done[b];
        last[b] = tok;
      }
      if (all_done) break;
    }
  } catch (...) {
    train(was_training);
    throw;
  }
  train(was_training);
  return out;
}

void Seq2Seq::check_beam_memory(int64_t B, int64_t S, int64_t max_len, int64_t beam_size) const {
  // A lower bound of what beam search allocates for R = B * beam_size beams:
  // the decoder's self-attention keys and values per beam (two [R, max_len,
  // d_model] per decoder layer) and the next-token log-probabilities [R, V]
  // (floats), one row's candidates (beam_size * V (score, index) pairs) and
  // the beams' tokens (two [R, 2] int64 at least). S does not scale with the
  // beams: the encoder output and its cross-attention keys/values are per
  // source row.
  const auto mul = saturating_mul;
  const auto sum = saturating_add;
  const int64_t R = mul(B, beam_size), V = cfg_.tgt_vocab_size;
  const int64_t kv = mul(mul(2, cfg_.num_decoder_layers), mul(max_len, cfg_.d_model));
  int64_t need = mul(mul(R, sum(kv, V)), int64_t{sizeof(float)});
  need = sum(need, mul(mul(beam_size, V), int64_t{sizeof(std::pair<float, int64_t>)}));
  need = sum(need, mul(R, 4 * int64_t{sizeof(int64_t)}));
  const int64_t have = physical_memory_bytes();
  CF_CHECK_VALUE(need <= have, "beam_size: ", beam_size, " beams for each of ", B, " source rows of length ", S,
                 " need at least ", need >> 20, " MiB (the decoder's cached keys and values per beam, "
                 "log-probabilities over ", V, " target tokens and candidates), more than this machine's ", have >> 20,
                 " MiB of memory");
}

std::vector<int64_t> Seq2Seq::beam_search(const int64_t* src, int64_t B, int64_t S, int64_t bos_id, int64_t eos_id,
                                          int64_t max_len, int64_t beam_size, float length_penalty,
                                          const std::vector<uint8_t>& src_padding) {
  check_decode_args(B, S, bos_id, eos_id, max_len);
  CF_CHECK_VALUE(beam_size >= 1, "beam_size must be >= 1, got ", beam_size);
  check_beam_memory(B, S, max_len, beam_size);
  check_ids(src, B * S, cfg_.src_vocab_size, "src");
  const int64_t K = beam_size, V = cfg_.tgt_vocab_size, R = B * K;
  const bool was_training = training();
  eval();
  std::vector<int64_t> out(static_cast<size_t>(B * max_len), eos_id);
  try {
    // Cross-attention keys/values stay [B, S, d]: beam r reads source row r / K.
    DecoderCache cache = start_decoding(src, B, S, src_padding, max_len);
    const float neg_inf = -std::numeric_limits<float>::infinity();
    std::vector<float> score(static_cast<size_t>(R), neg_inf);  // sum of log-probs per beam
    for (int64_t b = 0; b < B; ++b) score[b * K] = 0.0f;      // one live beam at the start
    std::vector<uint8_t> finished(static_cast<size_t>(R), 0);
    std::vector<int64_t> length(static_cast<size_t>(R), 0);   // tokens generated before EOS (EOS counted)
    std::vector<int64_t> tgt(static_cast<size_t>(R), bos_id);  // [R, t] each beam's tokens so far
    std::vector<int64_t> last(static_cast<size_t>(R), bos_id);  // [R] each beam's latest token
    std::vector<int64_t> src_rows(static_cast<size_t>(R));      // [R] the beam each new beam extends
    for (int64_t t = 1; t <= max_len; ++t) {
      const Tensor logp = decode_step(cache, last);
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
            // A dead beam (fewer candidates than beams): never extended again.
            new_score[r] = neg_inf;
            new_finished[r] = 1;
            new_length[r] = t;
            std::fill(grown.begin() + r * (t + 1), grown.begin() + (r + 1) * (t + 1), eos_id);
            src_rows[r] = r;
            last[r] = eos_id;
            continue;
          }
          const int64_t src_beam = b * K + cand[k].second / V, tok = cand[k].second % V;
          new_score[r] = cand[k].first;
          new_finished[r] = finished[src_beam] || tok == eos_id;
          new_length[r] = finished[src_beam] ? length[src_beam] : t;
          std::copy(tgt.begin() + src_beam * t, tgt.begin() + (src_beam + 1) * t, grown.begin() + r * (t + 1));
          grown[r * (t + 1) + t] = tok;
          src_rows[r] = src_beam;
          last[r] = tok;
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
      // The new beams' self-attention histories are their source beams'.
      cache.reorder(src_rows);
    }
  } catch (...) {
    train(was_training);
    throw;
  }
  train(was_training);
  return out;
}

}  // namespace cpuformer
