// Setup shared by the model-level C++ tests (checkpoints, C API, BERT/ViT):
// small model configs, scratch files, error-message helpers and weight
// filling. check.hpp is the harness; this header only builds things.
#pragma once
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "cpuformer/io/checkpoint.hpp"
#include "cpuformer/models/bert.hpp"
#include "cpuformer/models/gpt.hpp"
#include "cpuformer/models/seq2seq.hpp"
#include "cpuformer/models/vit.hpp"
#include "cpuformer/runtime/rng.hpp"

namespace cftest {

// "<prefix>_<pid>_<stem>.safetensors" in the working directory: unique to
// this process, so parallel test runs do not share files.
inline std::string scratch_path(const std::string& prefix, const std::string& stem) {
  return prefix + "_" + std::to_string(static_cast<long>(::getpid())) + "_" + stem + ".safetensors";
}

// A scratch file name whose file (if one was written) is removed at the end
// of the scope, also when a test throws.
struct ScratchFile {
  std::string path;
  ScratchFile(const std::string& prefix, const std::string& stem) : path(scratch_path(prefix, stem)) {}
  ~ScratchFile() { std::remove(path.c_str()); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
};

// Saves `m` as a checkpoint under scratch_path(prefix, stem); returns the path.
inline std::string save_scratch_model(const std::string& prefix, const std::string& stem, cpuformer::Module& m) {
  const std::string path = scratch_path(prefix, stem);
  cpuformer::save_model(path, m);
  return path;
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The message of the exception fn() throws ("" when it does not throw).
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Small configs. The sizes the tests vary are arguments; the rest is fixed
// (two heads; one encoder and one decoder layer for Seq2Seq; width 8 for
// BERT and ViT) or left at the struct's default (dropout unless given).
inline cpuformer::GPTConfig gpt_config(int64_t vocab, int64_t block_size, int64_t n_layer, int64_t n_embd,
                                       float dropout) {
  cpuformer::GPTConfig c;
  c.vocab_size = vocab;
  c.block_size = block_size;
  c.n_layer = n_layer;
  c.n_head = 2;
  c.n_embd = n_embd;
  c.dropout = dropout;
  return c;
}

inline cpuformer::Seq2SeqConfig seq2seq_config(int64_t src_vocab, int64_t tgt_vocab, int64_t d_model,
                                               int64_t dim_feedforward) {
  cpuformer::Seq2SeqConfig c;
  c.src_vocab_size = src_vocab;
  c.tgt_vocab_size = tgt_vocab;
  c.d_model = d_model;
  c.nhead = 2;
  c.num_encoder_layers = 1;
  c.num_decoder_layers = 1;
  c.dim_feedforward = dim_feedforward;
  return c;
}

inline cpuformer::BERTConfig bert_config(int64_t vocab, int64_t max_positions, int64_t intermediate_size) {
  cpuformer::BERTConfig c;
  c.vocab_size = vocab;
  c.max_position_embeddings = max_positions;
  c.type_vocab_size = 2;
  c.n_layer = 2;
  c.n_head = 2;
  c.hidden_size = 8;
  c.intermediate_size = intermediate_size;
  return c;
}

inline cpuformer::ViTConfig vit_config(int64_t image_size, int64_t patch_size, int64_t num_channels,
                                       int64_t num_classes, int64_t n_layer, int64_t intermediate_size) {
  cpuformer::ViTConfig c;
  c.image_size = image_size;
  c.patch_size = patch_size;
  c.num_channels = num_channels;
  c.num_classes = num_classes;
  c.hidden_size = 8;
  c.n_layer = n_layer;
  c.n_head = 2;
  c.intermediate_size = intermediate_size;
  return c;
}

// n values uniform in [-scale, scale), a pure function of (key, index).
inline std::vector<float> uniform(int64_t n, uint64_t key, float scale = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[i] = scale * (2.0f * cpuformer::rng_uniform(key, static_cast<uint64_t>(i)) - 1.0f);
  return v;
}

// Overwrites every matrix parameter (dim >= 2) of m with uniform values in
// [-scale, scale), keyed by salt + its element count: larger weights than
// the models' init so every path carries a visible gradient.
inline void fill_matrices_uniform(cpuformer::Module& m, uint64_t salt, float scale) {
  for (auto& p : m.named_parameters()) {
    cpuformer::Tensor& v = p.second->value;
    if (v.dim() < 2) continue;
    const std::vector<float> w = uniform(v.numel(), salt + static_cast<uint64_t>(v.numel()), scale);
    std::copy(w.begin(), w.end(), v.data());
  }
}

}  // namespace cftest
