// Setup shared by the C API tests (test_c_api*.cpp): checkpoints of each
// model class written once per process, inputs, reference outputs from the
// C++ models, and small wrappers around the C calls.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cpuformer/c_api.h"
#include "cpuformer/cpuformer.hpp"
#include "fixtures.hpp"

namespace capi_test {

using namespace cpuformer;

const char kPrefix[] = "test_c_api";

inline std::string scratch_path(const std::string& stem) { return cftest::scratch_path(kPrefix, stem); }

// The C API runs in inference mode: the configs' dropout has no effect.
inline GPTConfig gpt_config(int64_t vocab, int64_t layers, int64_t embd) {
  return cftest::gpt_config(vocab, 12, layers, embd, 0.1f);
}

// Checkpoints written once per process (main removes them).
inline const std::string& gpt_path() {
  static const std::string path = [] {
    manual_seed(11);
    GPT g(gpt_config(23, 2, 16));
    return cftest::save_scratch_model(kPrefix, "gpt", g);
  }();
  return path;
}

inline const std::string& gpt2_path() {
  static const std::string path = [] {
    manual_seed(12);
    GPT g(gpt_config(31, 1, 24));
    return cftest::save_scratch_model(kPrefix, "gpt2", g);
  }();
  return path;
}

inline const std::string& seq2seq_path() {
  static const std::string path = [] {
    Seq2SeqConfig c = cftest::seq2seq_config(9, 7, 8, 16);
    c.max_len = 16;
    Seq2Seq s(c);
    return cftest::save_scratch_model(kPrefix, "seq2seq", s);
  }();
  return path;
}

inline const std::string& bert_path() {
  static const std::string path = [] {
    const BERTConfig c = cftest::bert_config(19, 9, 16);  // dropout 0.1 (the default)
    manual_seed(13);
    BERT b(c);
    return cftest::save_scratch_model(kPrefix, "bert", b);
  }();
  return path;
}

// ViT: 2 channels of 8x8 pixels in 4x4 patches, 5 classes.
inline const std::string& vit_path() {
  static const std::string path = [] {
    ViTConfig c = cftest::vit_config(8, 4, 2, 5, 2, 16);
    c.dropout = 0.1f;
    manual_seed(14);
    ViT v(c);
    return cftest::save_scratch_model(kPrefix, "vit", v);
  }();
  return path;
}

inline std::vector<float> images(int64_t n, int64_t salt) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = std::sin(0.37f * static_cast<float>(i + salt));
  return x;
}

inline std::vector<int32_t> tokens(int64_t n, int64_t vocab, int64_t salt) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7 + salt * 3 + 1) % vocab);
  return t;
}

inline std::vector<int64_t> widen(const std::vector<int32_t>& t) { return std::vector<int64_t>(t.begin(), t.end()); }

// Reference outputs from the C++ model.
inline std::vector<float> reference_logits(const std::string& path, const std::vector<int32_t>& tok, int64_t B,
                                          int64_t T) {
  auto g = load_gpt(path);
  g->eval();
  const std::vector<int64_t> ids = widen(tok);
  Tensor y = g->forward(ids.data(), B, T);
  return std::vector<float>(y.data(), y.data() + y.numel());
}

inline std::vector<int32_t> reference_generate(const std::string& path, const std::vector<int32_t>& prompt,
                                               int64_t B, int64_t T, int64_t n, float temperature, int64_t top_k,
                                               float top_p, uint64_t seed) {
  auto g = load_gpt(path);
  g->eval();
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.seed = seed;
  o.has_seed = true;
  const std::vector<int64_t> ids = widen(prompt);
  const std::vector<int64_t> out = g->generate(ids.data(), B, T, n, o);
  return std::vector<int32_t>(out.begin(), out.end());
}

// GPT::generate with every option: [B, T + steps] and the steps run.
inline std::vector<int32_t> reference_generate_ex(const std::string& path, const std::vector<int32_t>& prompt,
                                                  int64_t B, int64_t T, int64_t n, const GenerationOptions& o,
                                                  int64_t* steps) {
  auto g = load_gpt(path);
  g->eval();
  const std::vector<int64_t> ids = widen(prompt);
  const std::vector<int64_t> out = g->generate(ids.data(), B, T, n, o, steps);
  return std::vector<int32_t>(out.begin(), out.end());
}

struct Model {
  cf_model* m = nullptr;
  explicit Model(const std::string& path) {
    char err[512];
    m = cf_model_load(path.c_str(), err, sizeof err);
    if (!m) std::printf("  cf_model_load(%s) failed: %s\n", path.c_str(), err);
  }
  ~Model() { cf_model_free(m); }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
};

// Runs a failing call and returns its message; checks the code.
struct Err {
  char buf[512];
  Err() { std::memset(buf, 'x', sizeof buf); }
  std::string str() const { return buf; }
};

// ---- cf_model_generate_ex ---------------------------------------------------

inline cf_generate_options greedy_options(float repetition_penalty = 1.0f) {
  cf_generate_options o;
  cf_generate_options_init(&o);
  o.temperature = 0.0f;
  o.repetition_penalty = repetition_penalty;
  return o;
}

// Without a penalty the tiny test model's greedy output soon repeats one
// token; with it the rows vary (and the penalty must skip the padding).
constexpr float kPenalty = 3.0f;

// Runs cf_model_generate_ex into a [B, T + N] buffer; *steps receives new_tokens.
inline int generate_ex(cf_model* m, const std::vector<int32_t>& prompt, int64_t B, int64_t T, int64_t N,
                       const cf_generate_options* o, std::vector<int32_t>* out, int64_t* steps, Err* e = nullptr) {
  out->assign(static_cast<size_t>(B * (T + N)), -1);
  return cf_model_generate_ex(m, prompt.data(), B, T, N, o, out->data(), static_cast<int64_t>(out->size()), steps,
                              e ? e->buf : nullptr, e ? sizeof e->buf : 0);
}

// Removes the checkpoints above that this process wrote (the test files'
// main), without writing the others.
inline void remove_checkpoints() {
  for (const char* stem : {"gpt", "gpt2", "seq2seq", "bert", "vit"}) std::remove(scratch_path(stem).c_str());
}

}  // namespace capi_test
