// Incremental decoding of TransformerDecoder (post-LN and pre-LN, with and
// without the final norm): a prefill and then one position per step through
// DecoderCache, including a beam-style reorder of the rows, must give the
// full causal forward() of the same histories, with rows sharing a memory
// row by groups and source key padding; argument checks; Seq2Seq greedy
// decoding against the argmax of its full forward, step by step.
#include <algorithm>
#include <cmath>
#include <vector>

#include "check.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/models/seq2seq.hpp"
#include "cpuformer/nn/transformer.hpp"
#include "cpuformer/runtime/grad_mode.hpp"
#include "cpuformer/runtime/rng.hpp"

using namespace cpuformer;

namespace {

Tensor random_tensor(const Shape& shape, uint64_t key) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = 2.0f * rng_uniform(key, static_cast<uint64_t>(i)) - 1.0f;
  return t;
}

// Positions [t0, t1) of x [R, T, d] as a fresh [R, t1 - t0, d].
Tensor positions(const Tensor& x, int64_t t0, int64_t t1) {
  const int64_t R = x.size(0), T = x.size(1), d = x.size(2);
  Tensor out = Tensor::empty({R, t1 - t0, d});
  for (int64_t r = 0; r < R; ++r)
    std::copy(x.data() + (r * T + t0) * d, x.data() + (r * T + t1) * d, out.data() + r * (t1 - t0) * d);
  return out;
}

// max |a[r, :, :] - full[r, t0:t0+Tn, :]| over rows, a [R, Tn, d], full [R, T, d].
double max_diff_at(const Tensor& a, const Tensor& full, int64_t t0) {
  const int64_t R = a.size(0), Tn = a.size(1), d = a.size(2), T = full.size(1);
  double m = 0.0;
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < Tn * d; ++i)
      m = std::max(m, std::fabs(double(a.data()[r * Tn * d + i]) - full.data()[(r * T + t0) * d + i]));
  return m;
}

}  // namespace

CF_TEST(decoder_cached_steps_match_full_forward_with_reorder) {
  const int64_t Bm = 2, G = 3, R = Bm * G, S = 5, T = 7, d = 16, t_reorder = 4;
  // Within each group of G rows: rows copied from others of the group (a beam keeps two continuations of one beam).
  const std::vector<int64_t> src_rows = {1, 1, 0, 5, 3, 3};
  for (const bool norm_first : {false, true})
    for (const bool final_norm : {true, false}) {
      TransformerLayerOptions opt;
      opt.d_model = d;
      opt.nhead = 2;
      opt.dim_feedforward = 24;
      opt.dropout = 0.1f;  // eval(): off in both paths
      opt.norm_first = norm_first;
      TransformerDecoder dec(opt, 2, final_norm);
      dec.eval();
      const Tensor memory = random_tensor({Bm, S, d}, 11);
      std::vector<uint8_t> pad(Bm * S, 0);
      pad[1 * S + 3] = pad[1 * S + 4] = 1;  // source row 1 is 3 tokens long
      const Tensor x = random_tensor({R, T, d}, 12);
      // Histories after the reorder: x[src_rows[r], :t_reorder] then x[r, t_reorder:].
      Tensor x2 = x.clone();
      for (int64_t r = 0; r < R; ++r)
        std::copy(x.data() + src_rows[r] * T * d, x.data() + (src_rows[r] * T + t_reorder) * d, x2.data() + r * T * d);
      // Reference: the full causal forward over memory and padding repeated per row.
      Tensor mem_rows = Tensor::empty({R, S, d});
      std::vector<uint8_t> pad_rows;
      for (int64_t r = 0; r < R; ++r) {
        std::copy(memory.data() + (r / G) * S * d, memory.data() + (r / G + 1) * S * d, mem_rows.data() + r * S * d);
        pad_rows.insert(pad_rows.end(), pad.begin() + (r / G) * S, pad.begin() + (r / G + 1) * S);
      }
      AttentionMask causal, mem_mask;
      causal.is_causal = true;
      mem_mask.key_padding = pad_rows;
      const Tensor full = dec.forward(x, mem_rows, causal, mem_mask);
      const Tensor full2 = dec.forward(x2, mem_rows, causal, mem_mask);

      NoGradGuard no_grad;
      DecoderCache cache = dec.start_cached(memory, pad, T);
      CHECK(cache.memory.size() == 2 && cache.memory[0].k.shape() == Shape({Bm, S, d}));
      double err = max_diff_at(dec.forward_cached(positions(x, 0, 2), cache), full, 0);  // prefill
      for (int64_t t = 2; t < T; ++t) {
        if (t == t_reorder) cache.reorder(src_rows);
        const Tensor y = dec.forward_cached(positions(t < t_reorder ? x : x2, t, t + 1), cache);
        CHECK(y.shape() == Shape({R, 1, d}));
        err = std::max(err, max_diff_at(y, t < t_reorder ? full : full2, t));
      }
      CHECK(cache.len() == T);
      if (!(err < 1e-5)) std::printf("  norm_first=%d final_norm=%d: max diff %g\n", norm_first, final_norm, err);
      CHECK(err < 1e-5);
      // The reference is not trivially close: padding and the reorder both change the outputs.
      CHECK(max_diff_at(positions(full2, t_reorder, T), positions(full, t_reorder, T), 0) > 1e-3);
      mem_mask.key_padding.assign(pad_rows.size(), 0);
      CHECK(max_diff_at(dec.forward(x, mem_rows, causal, mem_mask), full, 0) > 1e-3);
    }
}

CF_TEST(decoder_cache_argument_checks) {
  TransformerLayerOptions opt;
  opt.d_model = 8;
  opt.nhead = 2;
  opt.dim_feedforward = 16;
  TransformerDecoder dec(opt, 1, true);
  dec.eval();
  const Tensor memory = random_tensor({2, 3, 8}, 1);
  CHECK_THROWS(ValueError, dec.start_cached(memory, std::vector<uint8_t>(5, 0), 4));  // padding not [2, 3]
  CHECK_THROWS(ValueError, dec.start_cached(memory, {}, 0));
  DecoderCache cache = dec.start_cached(memory, {}, 2);
  CHECK_THROWS(ValueError, dec.forward_cached(random_tensor({3, 1, 8}, 2), cache));  // 3 rows over 2 memory rows
  CHECK_THROWS(ValueError, dec.forward_cached(random_tensor({4, 1, 6}, 2), cache));  // wrong width
  dec.forward_cached(random_tensor({4, 1, 8}, 3), cache);
  dec.forward_cached(random_tensor({4, 1, 8}, 4), cache);
  CHECK_THROWS(ValueError, dec.forward_cached(random_tensor({4, 1, 8}, 5), cache));  // capacity 2 used up
  CHECK_THROWS(IndexError, cache.reorder({0, 1, 4, 2}));
  CHECK_THROWS(ValueError, cache.reorder({0, 0, 1}));  // 3 rows for a cache of 4
  cache.reorder({1, 0, 3, 3});
  CHECK(cache.len() == 2);
}

CF_TEST(seq2seq_greedy_is_the_argmax_of_the_full_forward) {
  Seq2SeqConfig c;
  c.src_vocab_size = 11;
  c.tgt_vocab_size = 13;
  c.d_model = 16;
  c.nhead = 2;
  c.num_encoder_layers = 2;
  c.num_decoder_layers = 2;
  c.dim_feedforward = 32;
  c.max_len = 12;
  Seq2Seq m(c);
  const int64_t B = 3, S = 4, max_len = 6, bos = 1, eos = 2;
  std::vector<int64_t> src(B * S);
  for (int64_t i = 0; i < B * S; ++i) src[i] = 3 + static_cast<int64_t>(rng_uniform(5, static_cast<uint64_t>(i)) * 8);
  std::vector<uint8_t> pad(B * S, 0);
  pad[2 * S + 3] = 1;
  const std::vector<int64_t> out = m.greedy_decode(src.data(), B, S, bos, eos, max_len, pad);
  CHECK(m.training());  // restored
  m.eval();
  std::vector<int64_t> tgt(B, bos);
  std::vector<uint8_t> done(B, 0);
  for (int64_t t = 1; t <= max_len; ++t) {
    const Tensor logits = m.forward(src.data(), B, S, tgt.data(), t, pad);  // [B, t, V]
    std::vector<int64_t> grown;
    for (int64_t b = 0; b < B; ++b) {
      const float* row = logits.data() + (b * t + t - 1) * c.tgt_vocab_size;
      const int64_t tok = done[b] ? eos : std::max_element(row, row + c.tgt_vocab_size) - row;
      CHECK(out[b * max_len + t - 1] == tok);
      done[b] = done[b] || tok == eos;
      grown.insert(grown.end(), tgt.begin() + b * t, tgt.begin() + (b + 1) * t);
      grown.push_back(tok);
    }
    tgt.swap(grown);
  }
  // Beam search with one beam is greedy; more beams than target tokens leave
  // dead beams and reorder the caches every step.
  CHECK(m.beam_search(src.data(), B, S, bos, eos, max_len, 1, 1.0f, pad) == out);
  const std::vector<int64_t> wide = m.beam_search(src.data(), B, S, bos, eos, max_len, 20, 0.7f, pad);
  CHECK(wide.size() == out.size());
  for (const int64_t tok : wide) CHECK(tok >= 0 && tok < c.tgt_vocab_size);
}

CF_TEST_MAIN()
