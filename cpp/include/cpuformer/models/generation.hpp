// GPTGeneration: one generation request, decoded one step at a time (the
// engine behind GPT::generate, Python's generate_stream and the C API).
//
// The prompt [B, T] may be left-padded (GenerationOptions::attention_mask).
// Leading columns that are padding in every row are never fed; the others
// go through one prefill, then each step feeds one token per running row
// through the KV cache. Per row, positions count from its first token and
// its padding is masked out as keys, so a row generates what it would alone.
//
// Each step applies, per running row and in this order (Hugging Face's):
// the repetition penalty over the row's tokens (its prompt tokens, padding
// excluded, and what it generated), eos suppression before min_new_tokens,
// then greedy choice or temperature / top-k / top-p sampling. The random draw
// of row b at step s is s * B + b, whatever the other rows do.
//
// A row that emits an eos id stops: its later tokens are pad_token_id, and
// its keys and values leave the cache (the cache is compacted to the rows
// still running, so a batch that mostly finished costs what its live rows
// cost). The request ends after max_new_tokens steps or when every row
// stopped. Beyond block_size the context is cropped to the last block_size
// columns and recomputed each step, as GPT::generate always did.
#pragma once
#include <cstdint>
#include <vector>

#include "cpuformer/models/gpt.hpp"

namespace cpuformer {

class GPTGeneration {
 public:
  // Validates everything (ValueError / IndexError) and checks the memory of
  // the request up front; allocates nothing else until the first step. The
  // model must outlive this object and must not be changed while it runs.
  GPTGeneration(GPT& model, const int64_t* idx, int64_t B, int64_t T, int64_t max_new_tokens,
                GenerationOptions opt);
  ~GPTGeneration();
  GPTGeneration(const GPTGeneration&) = delete;
  GPTGeneration& operator=(const GPTGeneration&) = delete;

  // Runs one step: tokens [B] receives each row's new token (pad_token_id for
  // rows stopped before this step); logits, if not null, [B, V] the step's
  // raw logits (before penalties and sampling; NaN for stopped rows).
  // Returns false, writing nothing, when the request is over.
  bool step(int64_t* tokens, float* logits = nullptr);
  bool done() const { return steps_ >= max_new_ || live_.empty(); }

  int64_t batch() const { return B_; }
  int64_t prompt_len() const { return T_; }
  int64_t steps() const { return steps_; }  // new tokens per row so far
  int64_t live_rows() const { return static_cast<int64_t>(live_.size()); }
  int64_t pad_token_id() const { return pad_id_; }
  // The prompt followed by the new tokens so far: [B, T + steps()].
  std::vector<int64_t> result() const;
  // Frees the KV cache and ends the request (step() then returns false).
  void release();
  // Bytes of KV cache held by this request, and by every live request.
  int64_t cache_bytes() const;
  static int64_t live_cache_bytes();

 private:
  void feed();                                           // the forward of one step -> logits_
  void compact(const std::vector<int64_t>& keep_local);  // cache rows to keep, in order
  void account();                                        // cache bytes into the global counter

  GPT& m_;
  int64_t B_, T_, max_new_, V_, bs_, W_;  // W_ = T + max_new: columns of seq_
  GenerationOptions opt_;
  int64_t pad_id_ = 0;
  uint64_t key_ = 0;
  std::vector<int64_t> seq_;       // [B, W] prompt then new tokens
  std::vector<int64_t> pad_;       // leading padding columns per row
  int64_t skip_ = 0;               // columns that are padding in every row (never fed)
  std::vector<int64_t> live_;      // rows still running, in cache order
  std::vector<std::vector<int64_t>> seen_;  // per row: distinct tokens so far (repetition penalty)
  std::vector<uint8_t> seen_mark_;          // [B, V] membership of seen_
  std::vector<KVCache> caches_;
  int64_t start_ = 0;              // column of cache slot 0
  int64_t steps_ = 0;
  int64_t accounted_ = 0;
  Tensor logits_;                  // [live, V] of the current step
  std::vector<int64_t> tokens_, positions_;
  std::vector<uint8_t> key_padding_;
};

}  // namespace cpuformer
