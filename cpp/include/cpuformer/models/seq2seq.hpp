// Seq2Seq: the original encoder-decoder transformer ("Attention Is All You Need").
//   src_x = drop(src_embed[src] * sqrt(d) + PE)        [B, S, d]
//   tgt_x = drop(tgt_embed[tgt_in] * sqrt(d) + PE)     [B, T, d]
//   h = transformer(src_x, tgt_x)                      post-LN, ReLU, causal decoder self-attention
//   logits = generator(h)                              [B, T, Vt]
// Parameter names: src_embed.weight, tgt_embed.weight, transformer.{encoder,decoder}.*, generator.{weight,bias}.
#pragma once
#include <vector>

#include "cpuformer/nn/activation.hpp"
#include "cpuformer/nn/embedding.hpp"
#include "cpuformer/nn/linear.hpp"
#include "cpuformer/nn/transformer.hpp"

namespace cpuformer {

struct Seq2SeqConfig {
  int64_t src_vocab_size = 0, tgt_vocab_size = 0;
  int64_t d_model = 512, nhead = 8, num_encoder_layers = 6, num_decoder_layers = 6, dim_feedforward = 2048;
  float dropout = 0.1f;
  int64_t max_len = 512;
  void validate() const;
};

class Seq2Seq : public Module {
 public:
  explicit Seq2Seq(const Seq2SeqConfig& cfg);
  const Seq2SeqConfig& config() const { return cfg_; }

  // src [B, S], tgt_in [B, T] ids; src_padding [B, S] (nonzero = pad) or empty.
  Tensor forward(const int64_t* src, int64_t B, int64_t S, const int64_t* tgt_in, int64_t T,
                 const std::vector<uint8_t>& src_padding = {});
  // Mean cross-entropy of the logits against tgt_out [B, T] (-100 ignored).
  float loss(const int64_t* src, int64_t B, int64_t S, const int64_t* tgt_in, const int64_t* tgt_out, int64_t T,
             const std::vector<uint8_t>& src_padding = {});
  void backward();

  // Decoding (seq2seq_decode.cpp) is incremental: the source is encoded once,
  // each decoder layer projects it to cross-attention keys/values once, and
  // every step feeds one position per row through a KV cache, so a step costs
  // O(t) attention instead of rerunning the decoder over all t positions.
  // Generated ids [B, max_len] (BOS excluded; rows padded with eos after they stop).
  std::vector<int64_t> greedy_decode(const int64_t* src, int64_t B, int64_t S, int64_t bos_id, int64_t eos_id,
                                     int64_t max_len, const std::vector<uint8_t>& src_padding = {});
  // ValueError, before anything is allocated, when the beams could not fit in
  // this machine's memory (beam_size = 10^12).
  std::vector<int64_t> beam_search(const int64_t* src, int64_t B, int64_t S, int64_t bos_id, int64_t eos_id,
                                   int64_t max_len, int64_t beam_size, float length_penalty = 1.0f,
                                   const std::vector<uint8_t>& src_padding = {});

 private:
  Tensor embed(Embedding& emb, const int64_t* ids, int64_t B, int64_t T, bool save);
  void embed_backward(Embedding& emb, const Tensor& dx);
  void check_ids(const int64_t* ids, int64_t n, int64_t V, const char* what) const;
  void check_decode_args(int64_t B, int64_t S, int64_t bos, int64_t eos, int64_t max_len) const;
  void check_beam_memory(int64_t B, int64_t S, int64_t max_len, int64_t beam_size) const;
  // Encodes src [B, S] and starts the decoder's cache for `capacity` positions per row.
  DecoderCache start_decoding(const int64_t* src, int64_t B, int64_t S, const std::vector<uint8_t>& src_padding,
                              int64_t capacity);
  // Feeds last [R] (each row's latest token, at position cache.len()) and
  // returns the log-probabilities of the next token [R, V].
  Tensor decode_step(DecoderCache& cache, const std::vector<int64_t>& last);

  Seq2SeqConfig cfg_;
  Embedding src_embed_, tgt_embed_;
  Transformer transformer_;
  Linear generator_;
  Dropout drop_src_, drop_tgt_;
  Tensor pe_;  // [max_len, d]

  int64_t B_ = 0, T_ = 0;
  Tensor logits_;
  std::vector<int64_t> targets_;
  bool have_loss_ = false;
};

}  // namespace cpuformer
