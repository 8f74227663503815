// The C API (c_api.h): results equal to the C++ models, every kind of bad
// input reported as a status code and a NUL-terminated message, and models
// used from several threads.
#include "cpuformer/c_api.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"
#include "cpuformer/cpuformer.hpp"
#include "fixtures.hpp"

using namespace cpuformer;
using cftest::contains;

namespace {

const char kPrefix[] = "test_c_api";

std::string scratch_path(const std::string& stem) { return cftest::scratch_path(kPrefix, stem); }

// The C API runs in inference mode: the configs' dropout has no effect.
GPTConfig gpt_config(int64_t vocab, int64_t layers, int64_t embd) {
  return cftest::gpt_config(vocab, 12, layers, embd, 0.1f);
}

// Checkpoints written once per process (main removes them).
const std::string& gpt_path() {
  static const std::string path = [] {
    manual_seed(11);
    GPT g(gpt_config(23, 2, 16));
    return cftest::save_scratch_model(kPrefix, "gpt", g);
  }();
  return path;
}

const std::string& gpt2_path() {
  static const std::string path = [] {
    manual_seed(12);
    GPT g(gpt_config(31, 1, 24));
    return cftest::save_scratch_model(kPrefix, "gpt2", g);
  }();
  return path;
}

const std::string& seq2seq_path() {
  static const std::string path = [] {
    Seq2SeqConfig c = cftest::seq2seq_config(9, 7, 8, 16);
    c.max_len = 16;
    Seq2Seq s(c);
    return cftest::save_scratch_model(kPrefix, "seq2seq", s);
  }();
  return path;
}

const std::string& bert_path() {
  static const std::string path = [] {
    const BERTConfig c = cftest::bert_config(19, 9, 16);  // dropout 0.1 (the default)
    manual_seed(13);
    BERT b(c);
    return cftest::save_scratch_model(kPrefix, "bert", b);
  }();
  return path;
}

// ViT: 2 channels of 8x8 pixels in 4x4 patches, 5 classes.
const std::string& vit_path() {
  static const std::string path = [] {
    ViTConfig c = cftest::vit_config(8, 4, 2, 5, 2, 16);
    c.dropout = 0.1f;
    manual_seed(14);
    ViT v(c);
    return cftest::save_scratch_model(kPrefix, "vit", v);
  }();
  return path;
}

std::vector<float> images(int64_t n, int64_t salt) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = std::sin(0.37f * static_cast<float>(i + salt));
  return x;
}

std::vector<int32_t> tokens(int64_t n, int64_t vocab, int64_t salt) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7 + salt * 3 + 1) % vocab);
  return t;
}

std::vector<int64_t> widen(const std::vector<int32_t>& t) { return std::vector<int64_t>(t.begin(), t.end()); }

// Reference outputs from the C++ model.
std::vector<float> reference_logits(const std::string& path, const std::vector<int32_t>& tok, int64_t B, int64_t T) {
  auto g = load_gpt(path);
  g->eval();
  const std::vector<int64_t> ids = widen(tok);
  Tensor y = g->forward(ids.data(), B, T);
  return std::vector<float>(y.data(), y.data() + y.numel());
}

std::vector<int32_t> reference_generate(const std::string& path, const std::vector<int32_t>& prompt, int64_t B,
                                        int64_t T, int64_t n, float temperature, int64_t top_k, float top_p,
                                        uint64_t seed) {
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
std::vector<int32_t> reference_generate_ex(const std::string& path, const std::vector<int32_t>& prompt, int64_t B,
                                           int64_t T, int64_t n, const GenerationOptions& o, int64_t* steps) {
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

}  // namespace

CF_TEST(load_reports_the_model) {
  Model m(gpt_path());
  CHECK(m.m != nullptr);
  if (!m.m) return;
  CHECK(std::string(cf_model_class_name(m.m)) == "GPT");
  CHECK(cf_model_vocab_size(m.m) == 23);
  CHECK(cf_model_max_seq_len(m.m) == 12);
  CHECK(cf_model_output_size(m.m, 3, 5) == 3 * 5 * 23);
  CHECK(cf_model_output_size(m.m, 0, 5) == -1);
  CHECK(cf_model_output_size(m.m, 3, -1) == -1);
  CHECK(cf_model_output_size(m.m, std::numeric_limits<int64_t>::max(), 2) == -1);
  CHECK(cf_model_output_size(nullptr, 1, 1) == -1);
  CHECK(cf_model_vocab_size(nullptr) == -1);
  CHECK(cf_model_class_name(nullptr) == nullptr);
  CHECK(std::string(cf_version()) == version());
  CHECK(std::string(cf_status_name(CF_ERR_OUT_OF_RANGE)) == "CF_ERR_OUT_OF_RANGE");
  CHECK(std::string(cf_status_name(12345)) == "CF_ERR_UNKNOWN");
  cf_model_free(nullptr);
}

CF_TEST(forward_equals_the_cpp_model) {
  Model m(gpt_path());
  if (!m.m) {
    CHECK(m.m != nullptr);
    return;
  }
  const int64_t B = 2, T = 12, V = 23;
  const auto tok = tokens(B * T, V, 1);
  const auto ref = reference_logits(gpt_path(), tok, B, T);
  std::vector<float> out(static_cast<size_t>(B * T * V), -1.0f);
  Err e;
  CHECK(cf_model_forward(m.m, tok.data(), B, T, out.data(), static_cast<int64_t>(out.size()), e.buf, sizeof e.buf) ==
        CF_OK);
  CHECK(e.str().empty());  // success clears err
  double worst = 0.0;
  for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(out[i] - ref[i])));
  CHECK(worst == 0.0);
  // A second call of another shape on the same model (caches replaced).
  std::vector<float> out1(static_cast<size_t>(V * 3));
  CHECK(cf_model_forward(m.m, tok.data(), 1, 3, out1.data(), V * 3, nullptr, 0) == CF_OK);
  const auto ref1 = reference_logits(gpt_path(), std::vector<int32_t>(tok.begin(), tok.begin() + 3), 1, 3);
  CHECK(out1 == ref1);
}

CF_TEST(generate_equals_the_cpp_model) {
  Model m(gpt_path());
  if (!m.m) {
    CHECK(m.m != nullptr);
    return;
  }
  const int64_t B = 2, T = 3, N = 15;  // runs past block_size 12: context cropping
  const auto prompt = tokens(B * T, 23, 2);
  std::vector<int32_t> out(static_cast<size_t>(B * (T + N)), -1);
  // Greedy.
  CHECK(cf_model_generate(m.m, prompt.data(), B, T, N, 0.0f, 0, 1.0f, 0, out.data(), static_cast<int64_t>(out.size()),
                          nullptr, 0) == CF_OK);
  CHECK(out == reference_generate(gpt_path(), prompt, B, T, N, 0.0f, 0, 1.0f, 0));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) CHECK(out[b * (T + N) + t] == prompt[b * T + t]);
  // Sampled: a pure function of the seed.
  std::vector<int32_t> again(out.size());
  CHECK(cf_model_generate(m.m, prompt.data(), B, T, N, 0.9f, 10, 0.95f, 1234, out.data(),
                          static_cast<int64_t>(out.size()), nullptr, 0) == CF_OK);
  CHECK(cf_model_generate(m.m, prompt.data(), B, T, N, 0.9f, 10, 0.95f, 1234, again.data(),
                          static_cast<int64_t>(again.size()), nullptr, 0) == CF_OK);
  CHECK(out == again);
  CHECK(out == reference_generate(gpt_path(), prompt, B, T, N, 0.9f, 10, 0.95f, 1234));
  CHECK(cf_model_generate(m.m, prompt.data(), B, T, N, 0.9f, 10, 0.95f, 1235, again.data(),
                          static_cast<int64_t>(again.size()), nullptr, 0) == CF_OK);
  CHECK(out != again);
  // Zero new tokens copies the prompt.
  std::vector<int32_t> copy(prompt.size());
  CHECK(cf_model_generate(m.m, prompt.data(), B, T, 0, 1.0f, 0, 1.0f, 0, copy.data(),
                          static_cast<int64_t>(copy.size()), nullptr, 0) == CF_OK);
  CHECK(copy == prompt);
}

CF_TEST(bad_files_fail_with_a_message) {
  Err e;
  CHECK(cf_model_load(scratch_path("missing").c_str(), e.buf, sizeof e.buf) == nullptr);
  CHECK(contains(e.str(), "cf_model_load: checkpoint") && contains(e.str(), "No such file"));
  CHECK(cf_model_load(nullptr, e.buf, sizeof e.buf) == nullptr);
  CHECK(e.str() == "cf_model_load: path is NULL");
  CHECK(cf_model_load("", e.buf, sizeof e.buf) == nullptr);
  CHECK(cf_model_load(scratch_path("missing").c_str(), nullptr, 0) == nullptr);  // err may be NULL

  const cftest::ScratchFile garbage_file(kPrefix, "garbage");
  const std::string& garbage = garbage_file.path;
  FILE* f = std::fopen(garbage.c_str(), "wb");
  std::fputs("this is not a checkpoint at all, just some text that is long enough", f);
  std::fclose(f);
  CHECK(cf_model_load(garbage.c_str(), e.buf, sizeof e.buf) == nullptr);
  CHECK(contains(e.str(), "cf_model_load: checkpoint"));

  // A valid safetensors file that is not a cpuformer checkpoint.
  const cftest::ScratchFile plain_file(kPrefix, "plain");
  const std::string& plain = plain_file.path;
  save_safetensors(plain, {{"w", Tensor::zeros({2, 2})}});
  CHECK(cf_model_load(plain.c_str(), e.buf, sizeof e.buf) == nullptr);
  CHECK(contains(e.str(), "not a cpuformer checkpoint"));

  // A truncated checkpoint.
  const cftest::ScratchFile cut_file(kPrefix, "cut");
  const std::string& cut = cut_file.path;
  {
    FILE* in = std::fopen(gpt_path().c_str(), "rb");
    std::vector<char> bytes(1 << 20);
    const size_t n = std::fread(bytes.data(), 1, bytes.size(), in);
    std::fclose(in);
    FILE* out = std::fopen(cut.c_str(), "wb");
    std::fwrite(bytes.data(), 1, n - 100, out);
    std::fclose(out);
  }
  CHECK(cf_model_load(cut.c_str(), e.buf, sizeof e.buf) == nullptr);
  CHECK(contains(e.str(), "cf_model_load:") && !e.str().empty());
}

CF_TEST(bad_forward_arguments_return_codes) {
  Model m(gpt_path());
  if (!m.m) {
    CHECK(m.m != nullptr);
    return;
  }
  const int64_t V = 23;
  auto tok = tokens(2 * 4, V, 3);
  std::vector<float> out(static_cast<size_t>(2 * 4 * V));
  const int64_t n = static_cast<int64_t>(out.size());
  Err e;
  auto fwd = [&](cf_model* mm, const int32_t* t, int64_t B, int64_t T, float* o, int64_t len) {
    return cf_model_forward(mm, t, B, T, o, len, e.buf, sizeof e.buf);
  };
  CHECK(fwd(nullptr, tok.data(), 2, 4, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_forward: m is NULL");
  CHECK(fwd(m.m, nullptr, 2, 4, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_forward: tokens is NULL");
  CHECK(fwd(m.m, tok.data(), 2, 4, nullptr, n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_forward: out is NULL");
  CHECK(fwd(m.m, tok.data(), 0, 4, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_forward: batch must be >= 1, got 0");
  CHECK(fwd(m.m, tok.data(), 2, -3, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_forward: seq_len must be >= 1, got -3");
  CHECK(fwd(m.m, tok.data(), std::numeric_limits<int64_t>::max(), 4, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(contains(e.str(), "overflows"));
  CHECK(fwd(m.m, tok.data(), 1, 13, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_forward: seq_len 13 exceeds the model's maximum sequence length 12");
  CHECK(fwd(m.m, tok.data(), 2, 4, out.data(), n - 1) == CF_ERR_BUFFER_TOO_SMALL);
  CHECK(e.str() == "cf_model_forward: out_len is 183 but the output [2, 4, 23] needs 184 floats");
  tok[5] = 23;
  CHECK(fwd(m.m, tok.data(), 2, 4, out.data(), n) == CF_ERR_OUT_OF_RANGE);
  CHECK(e.str() == "cf_model_forward: tokens[1][1] = 23 is out of range [0, 23)");
  tok[5] = -1;
  CHECK(fwd(m.m, tok.data(), 2, 4, out.data(), n) == CF_ERR_OUT_OF_RANGE);
  tok[5] = 0;
  // The model still works after all of that.
  CHECK(fwd(m.m, tok.data(), 2, 4, out.data(), n) == CF_OK);
}

CF_TEST(bad_generate_arguments_return_codes) {
  Model m(gpt_path());
  if (!m.m) {
    CHECK(m.m != nullptr);
    return;
  }
  const auto prompt = tokens(2 * 3, 23, 4);
  std::vector<int32_t> out(2 * (3 + 5));
  const int64_t n = static_cast<int64_t>(out.size());
  Err e;
  auto gen = [&](const int32_t* p, int64_t B, int64_t T, int64_t N, float temp, int64_t k, float top_p, int32_t* o,
                 int64_t len) {
    return cf_model_generate(m.m, p, B, T, N, temp, k, top_p, 7, o, len, e.buf, sizeof e.buf);
  };
  CHECK(gen(prompt.data(), 2, 3, 5, 1.0f, 0, 1.0f, out.data(), n) == CF_OK);
  CHECK(gen(nullptr, 2, 3, 5, 1.0f, 0, 1.0f, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate: prompt is NULL");
  CHECK(gen(prompt.data(), 2, 3, 5, 1.0f, 0, 1.0f, nullptr, n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(gen(prompt.data(), 2, 0, 5, 1.0f, 0, 1.0f, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(gen(prompt.data(), -2, 3, 5, 1.0f, 0, 1.0f, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(gen(prompt.data(), 2, 3, -1, 1.0f, 0, 1.0f, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate: max_new_tokens must be >= 0, got -1");
  CHECK(gen(prompt.data(), 2, 3, std::numeric_limits<int64_t>::max(), 1.0f, 0, 1.0f, out.data(), n) ==
        CF_ERR_INVALID_ARGUMENT);
  CHECK(contains(e.str(), "overflows"));
  CHECK(gen(prompt.data(), 2, 3, 5, -0.5f, 0, 1.0f, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(gen(prompt.data(), 2, 3, 5, NAN, 0, 1.0f, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(gen(prompt.data(), 2, 3, 5, INFINITY, 0, 1.0f, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(gen(prompt.data(), 2, 3, 5, 1.0f, -1, 1.0f, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(gen(prompt.data(), 2, 3, 5, 1.0f, 0, 0.0f, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(gen(prompt.data(), 2, 3, 5, 1.0f, 0, 1.5f, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(gen(prompt.data(), 2, 3, 5, 1.0f, 0, NAN, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(contains(e.str(), "top_p must be in (0, 1]"));
  CHECK(gen(prompt.data(), 2, 3, 5, 1.0f, 0, 1.0f, out.data(), n - 1) == CF_ERR_BUFFER_TOO_SMALL);
  CHECK(e.str() == "cf_model_generate: out_len is 15 but the output [2, 3 + 5] needs 16 ints");
  // More new tokens than this machine's memory could hold: refused before anything is allocated or written
  // (so claiming an out_len to match is harmless here), not a std::bad_alloc part-way through.
  const int64_t huge = 1000000000000;  // 10^12 new tokens: 16 TB of int64 ids for two rows
  CHECK(gen(prompt.data(), 2, 3, huge, 1.0f, 0, 1.0f, out.data(), 2 * (3 + huge)) == CF_ERR_INVALID_ARGUMENT);
  CHECK(contains(e.str(), "cf_model_generate: max_new_tokens: generating 1000000000000 tokens after a [2, 3] prompt "
                          "needs at least 15258789 MiB"));
  CHECK(contains(e.str(), "MiB of memory"));
  CHECK(gen(prompt.data(), 2, 3, 5, 1.0f, 0, 1.0f, out.data(), n) == CF_OK);  // the model still works
  auto bad = prompt;
  bad[4] = 1000;
  CHECK(gen(bad.data(), 2, 3, 5, 1.0f, 0, 1.0f, out.data(), n) == CF_ERR_OUT_OF_RANGE);
  CHECK(e.str() == "cf_model_generate: prompt[1][1] = 1000 is out of range [0, 23)");
  CHECK(cf_model_generate(nullptr, prompt.data(), 2, 3, 5, 1.0f, 0, 1.0f, 0, out.data(), n, nullptr, 0) ==
        CF_ERR_INVALID_ARGUMENT);
}

CF_TEST(operations_a_class_lacks_are_unsupported) {
  Model m(seq2seq_path());
  if (!m.m) {
    CHECK(m.m != nullptr);
    return;
  }
  CHECK(std::string(cf_model_class_name(m.m)) == "Seq2Seq");
  CHECK(cf_model_vocab_size(m.m) == 7);
  CHECK(cf_model_output_size(m.m, 1, 4) == -1);
  CHECK(cf_model_max_seq_len(m.m) == -1);
  const auto tok = tokens(4, 7, 0);
  std::vector<float> out(100);
  std::vector<int32_t> ids(100);
  Err e;
  CHECK(cf_model_forward(m.m, tok.data(), 1, 4, out.data(), 100, e.buf, sizeof e.buf) == CF_ERR_UNSUPPORTED);
  CHECK(e.str() == "cf_model_forward: forward over one token sequence is not supported for model class 'Seq2Seq'");
  CHECK(cf_model_generate(m.m, tok.data(), 1, 4, 3, 0.0f, 0, 1.0f, 0, ids.data(), 100, e.buf, sizeof e.buf) ==
        CF_ERR_UNSUPPORTED);
  CHECK(e.str() == "cf_model_generate: generate is not supported for model class 'Seq2Seq'");
}

CF_TEST(messages_are_truncated_safely) {
  // A path with multi-byte UTF-8 characters so cuts can fall inside one.
  const std::string path = scratch_path("\xC3\xA9\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80_missing");
  char full[1024];
  CHECK(cf_model_load(path.c_str(), full, sizeof full) == nullptr);
  const std::string msg = full;
  CHECK(contains(msg, "\xE2\x82\xAC"));
  for (size_t len = 1; len <= msg.size() + 2; ++len) {
    std::vector<char> buf(len + 8, 'Z');
    CHECK(cf_model_load(path.c_str(), buf.data(), len) == nullptr);
    const size_t n = std::strlen(buf.data());
    CHECK(n < len);                                 // NUL within err_len
    CHECK(buf[len] == 'Z');                         // nothing written past it
    CHECK(msg.compare(0, n, buf.data()) == 0);      // a prefix of the message
    CHECK(is_valid_utf8(std::string(buf.data())));  // never cut inside a character
    CHECK(n + 4 > std::min(len - 1, msg.size()));   // and not shorter than needed
  }
  char one = 'Z';
  CHECK(cf_model_load(path.c_str(), &one, 1) == nullptr);
  CHECK(one == '\0');
}

CF_TEST(threads_setting) {
  const int before = cf_get_num_threads();
  CHECK(before >= 1);
  CHECK(cf_set_num_threads(0) == CF_ERR_INVALID_ARGUMENT);
  CHECK(cf_set_num_threads(-3) == CF_ERR_INVALID_ARGUMENT);
  CHECK(cf_set_num_threads(1) == CF_OK);
  CHECK(cf_get_num_threads() == 1);
  CHECK(cf_set_num_threads(before) == CF_OK);
  CHECK(cf_get_num_threads() == before);
}

// Two models (and two copies of one file) used from different threads at
// the same time give the single-threaded results.
CF_TEST(different_models_run_concurrently) {
  const int64_t B = 2, T = 10;
  struct Job {
    std::string path;
    int64_t vocab;
    std::vector<int32_t> tok, prompt;
    std::vector<float> logits;
    std::vector<int32_t> generated;
  };
  std::vector<Job> jobs = {{gpt_path(), 23, {}, {}, {}, {}}, {gpt2_path(), 31, {}, {}, {}, {}},
                           {gpt_path(), 23, {}, {}, {}, {}}};
  for (size_t j = 0; j < jobs.size(); ++j) {
    jobs[j].tok = tokens(B * T, jobs[j].vocab, static_cast<int64_t>(j));
    jobs[j].prompt = tokens(B * 2, jobs[j].vocab, static_cast<int64_t>(j) + 5);
    jobs[j].logits = reference_logits(jobs[j].path, jobs[j].tok, B, T);
    jobs[j].generated = reference_generate(jobs[j].path, jobs[j].prompt, B, 2, 8, 0.8f, 5, 0.9f, 99 + j);
  }
  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::thread> threads;
  for (size_t j = 0; j < jobs.size(); ++j) {
    threads.emplace_back([&, j] {
      const Job& job = jobs[j];
      char err[256];
      cf_model* m = cf_model_load(job.path.c_str(), err, sizeof err);
      if (!m) {
        ++failures;
        return;
      }
      std::vector<float> out(job.logits.size());
      std::vector<int32_t> gen(job.generated.size());
      for (int rep = 0; rep < 20; ++rep) {
        if (cf_model_forward(m, job.tok.data(), B, T, out.data(), static_cast<int64_t>(out.size()), err,
                             sizeof err) != CF_OK)
          ++failures;
        else if (out != job.logits)
          ++mismatches;
        if (cf_model_generate(m, job.prompt.data(), B, 2, 8, 0.8f, 5, 0.9f, 99 + j, gen.data(),
                              static_cast<int64_t>(gen.size()), err, sizeof err) != CF_OK)
          ++failures;
        else if (gen != job.generated)
          ++mismatches;
      }
      cf_model_free(m);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures.load() == 0);
  CHECK(mismatches.load() == 0);
}

// One model shared by two threads is a caller bug; the API reports it
// (CF_ERR_BUSY) instead of computing garbage. Every call that succeeds is
// correct, whatever the interleaving.
CF_TEST(one_model_shared_by_threads_is_refused_not_corrupted) {
  Model m(gpt_path());
  if (!m.m) {
    CHECK(m.m != nullptr);
    return;
  }
  const int64_t B = 2, T = 12;
  const auto tok = tokens(B * T, 23, 9);
  const auto ref = reference_logits(gpt_path(), tok, B, T);
  std::atomic<int> ok{0}, busy{0}, other{0}, wrong{0};
  auto worker = [&] {
    std::vector<float> out(ref.size());
    char err[256];
    for (int rep = 0; rep < 50; ++rep) {
      const int rc =
          cf_model_forward(m.m, tok.data(), B, T, out.data(), static_cast<int64_t>(out.size()), err, sizeof err);
      if (rc == CF_OK) {
        ++ok;
        if (out != ref) ++wrong;
      } else if (rc == CF_ERR_BUSY) {
        ++busy;
        if (!contains(err, "two threads")) ++other;
      } else {
        ++other;
      }
    }
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  CHECK(ok.load() > 0);
  CHECK(wrong.load() == 0);
  CHECK(other.load() == 0);
  CHECK(ok.load() + busy.load() == 100);
}

CF_TEST(bert_forward_writes_the_last_hidden_state) {
  Model m(bert_path());
  if (!m.m) {
    CHECK(m.m != nullptr);
    return;
  }
  const int64_t B = 2, T = 9, V = 19, H = 8;
  CHECK(std::string(cf_model_class_name(m.m)) == "BERT");
  CHECK(cf_model_vocab_size(m.m) == V);
  CHECK(cf_model_max_seq_len(m.m) == 9);
  CHECK(cf_model_output_size(m.m, B, T) == B * T * H);
  const auto tok = tokens(B * T, V, 5);
  auto ref_model = load_bert(bert_path());
  ref_model->eval();
  const std::vector<int64_t> ids = widen(tok);
  const Tensor ref = ref_model->forward(ids.data(), nullptr, B, T);
  std::vector<float> out(static_cast<size_t>(B * T * H), -1.0f);
  Err e;
  CHECK(cf_model_forward(m.m, tok.data(), B, T, out.data(), static_cast<int64_t>(out.size()), e.buf, sizeof e.buf) ==
        CF_OK);
  CHECK(e.str().empty());
  CHECK(out == std::vector<float>(ref.data(), ref.data() + ref.numel()));
  // Inference mode: the default dropout 0.1 is off, so a second call agrees.
  std::vector<float> again(out.size());
  CHECK(cf_model_forward(m.m, tok.data(), B, T, again.data(), static_cast<int64_t>(again.size()), nullptr, 0) ==
        CF_OK);
  CHECK(again == out);

  // Bad input.
  const int64_t n = static_cast<int64_t>(out.size());
  auto bad = tok;
  bad[10] = V;
  CHECK(cf_model_forward(m.m, bad.data(), B, T, out.data(), n, e.buf, sizeof e.buf) == CF_ERR_OUT_OF_RANGE);
  CHECK(e.str() == "cf_model_forward: tokens[1][1] = 19 is out of range [0, 19)");
  bad[10] = -1;
  CHECK(cf_model_forward(m.m, bad.data(), B, T, out.data(), n, e.buf, sizeof e.buf) == CF_ERR_OUT_OF_RANGE);
  CHECK(cf_model_forward(m.m, tok.data(), 1, 10, out.data(), n, e.buf, sizeof e.buf) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_forward: seq_len 10 exceeds the model's maximum sequence length 9");
  CHECK(cf_model_forward(m.m, tok.data(), B, T, out.data(), n - 1, e.buf, sizeof e.buf) == CF_ERR_BUFFER_TOO_SMALL);
  CHECK(e.str() == "cf_model_forward: out_len is 143 but the output [2, 9, 8] needs 144 floats");
  // Not a GPT: no generate, no images.
  std::vector<int32_t> gen(100);
  CHECK(cf_model_generate(m.m, tok.data(), 1, 2, 3, 0.0f, 0, 1.0f, 0, gen.data(), 100, e.buf, sizeof e.buf) ==
        CF_ERR_UNSUPPORTED);
  const auto img = images(64, 0);
  CHECK(cf_model_forward_images(m.m, img.data(), 1, 1, 8, 8, out.data(), n, e.buf, sizeof e.buf) ==
        CF_ERR_UNSUPPORTED);
  CHECK(e.str() == "cf_model_forward_images: forward over images is not supported for model class 'BERT'");
}

CF_TEST(vit_forward_images_writes_logits) {
  Model m(vit_path());
  if (!m.m) {
    CHECK(m.m != nullptr);
    return;
  }
  const int64_t B = 3, C = 2, S = 8, K = 5;
  CHECK(std::string(cf_model_class_name(m.m)) == "ViT");
  CHECK(cf_model_vocab_size(m.m) == -1);
  CHECK(cf_model_max_seq_len(m.m) == -1);
  CHECK(cf_model_output_size(m.m, 1, 4) == -1);
  const auto img = images(B * C * S * S, 3);
  auto ref_model = load_vit(vit_path());
  ref_model->eval();
  const Tensor ref = ref_model->forward(img.data(), B, C, S, S);
  std::vector<float> out(static_cast<size_t>(B * K), -1.0f);
  const int64_t n = static_cast<int64_t>(out.size());
  Err e;
  CHECK(cf_model_forward_images(m.m, img.data(), B, C, S, S, out.data(), n, e.buf, sizeof e.buf) == CF_OK);
  CHECK(e.str().empty());
  CHECK(out == std::vector<float>(ref.data(), ref.data() + ref.numel()));
  // One image of the batch alone gives its row.
  std::vector<float> one(static_cast<size_t>(K));
  CHECK(cf_model_forward_images(m.m, img.data() + C * S * S, 1, C, S, S, one.data(), K, nullptr, 0) == CF_OK);
  for (int64_t k = 0; k < K; ++k) CHECK(std::fabs(one[k] - out[K + k]) <= 1e-5f);

  // Tokens are not its input.
  const auto tok = tokens(4, 5, 0);
  CHECK(cf_model_forward(m.m, tok.data(), 1, 4, out.data(), n, e.buf, sizeof e.buf) == CF_ERR_UNSUPPORTED);
  CHECK(e.str() == "cf_model_forward: model class 'ViT' takes images, not tokens: use cf_model_forward_images");
  std::vector<int32_t> gen(100);
  CHECK(cf_model_generate(m.m, tok.data(), 1, 4, 3, 0.0f, 0, 1.0f, 0, gen.data(), 100, e.buf, sizeof e.buf) ==
        CF_ERR_UNSUPPORTED);

  // Bad input.
  auto fwd = [&](cf_model* mm, const float* x, int64_t b, int64_t c, int64_t h, int64_t w, float* o, int64_t len) {
    return cf_model_forward_images(mm, x, b, c, h, w, o, len, e.buf, sizeof e.buf);
  };
  CHECK(fwd(nullptr, img.data(), B, C, S, S, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_forward_images: m is NULL");
  CHECK(fwd(m.m, nullptr, B, C, S, S, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_forward_images: images is NULL");
  CHECK(fwd(m.m, img.data(), B, C, S, S, nullptr, n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_forward_images: out is NULL");
  CHECK(fwd(m.m, img.data(), 0, C, S, S, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_forward_images: batch must be >= 1, got 0");
  CHECK(fwd(m.m, img.data(), B, 3, S, S, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_forward_images: channels is 3 but the model expects 2 (num_channels)");
  CHECK(fwd(m.m, img.data(), B, C, S, 4, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_forward_images: height x width is 8 x 4 but the model expects 8 x 8 (image_size)");
  CHECK(fwd(m.m, img.data(), B, C, -8, -8, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(fwd(m.m, img.data(), std::numeric_limits<int64_t>::max(), C, S, S, out.data(), n) == CF_ERR_INVALID_ARGUMENT);
  CHECK(contains(e.str(), "overflows"));
  CHECK(fwd(m.m, img.data(), B, C, S, S, out.data(), n - 1) == CF_ERR_BUFFER_TOO_SMALL);
  CHECK(e.str() == "cf_model_forward_images: out_len is 14 but the output [3, 5] needs 15 floats");
  // Still works after the errors.
  std::vector<float> after(out.size());
  CHECK(fwd(m.m, img.data(), B, C, S, S, after.data(), n) == CF_OK);
  CHECK(after == out);
}

CF_TEST(token_models_do_not_take_images) {
  Model m(gpt_path());
  if (!m.m) {
    CHECK(m.m != nullptr);
    return;
  }
  const auto img = images(64, 0);
  std::vector<float> out(64);
  Err e;
  CHECK(cf_model_forward_images(m.m, img.data(), 1, 1, 8, 8, out.data(), 64, e.buf, sizeof e.buf) ==
        CF_ERR_UNSUPPORTED);
  CHECK(e.str() == "cf_model_forward_images: forward over images is not supported for model class 'GPT'");
}

// ---- cf_model_generate_ex ---------------------------------------------------

namespace {

cf_generate_options greedy_options(float repetition_penalty = 1.0f) {
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
int generate_ex(cf_model* m, const std::vector<int32_t>& prompt, int64_t B, int64_t T, int64_t N,
                const cf_generate_options* o, std::vector<int32_t>* out, int64_t* steps, Err* e = nullptr) {
  out->assign(static_cast<size_t>(B * (T + N)), -1);
  return cf_model_generate_ex(m, prompt.data(), B, T, N, o, out->data(), static_cast<int64_t>(out->size()), steps,
                              e ? e->buf : nullptr, e ? sizeof e->buf : 0);
}

}  // namespace

CF_TEST(generate_options_init_sets_the_defaults) {
  cf_generate_options o;
  std::memset(&o, 0x5A, sizeof o);
  cf_generate_options_init(&o);
  CHECK(o.struct_size == sizeof(cf_generate_options));
  CHECK(o.temperature == 1.0f);  // Python's default
  CHECK(o.top_k == 0);
  CHECK(o.top_p == 1.0f);
  CHECK(o.seed == 0);
  CHECK(o.attention_mask == nullptr);
  CHECK(o.eos_token_ids == nullptr);
  CHECK(o.num_eos_token_ids == 0);
  CHECK(o.pad_token_id == -1);
  CHECK(o.repetition_penalty == 1.0f);
  CHECK(o.min_new_tokens == 0);
  cf_generate_options_init(nullptr);  // allowed
}

// A left-padded batch: each row generates what it generates alone, and the
// ids at padded positions (any value) come back unchanged.
CF_TEST(generate_ex_padded_rows_equal_the_rows_alone) {
  Model m(gpt_path());
  if (!m.m) {
    CHECK(m.m != nullptr);
    return;
  }
  const int64_t B = 3, T = 5, N = 6, V = 23;
  const int64_t lens[B] = {5, 3, 1};
  std::vector<int32_t> prompt = tokens(B * T, V, 6);
  std::vector<uint8_t> mask(static_cast<size_t>(B * T), 1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T - lens[b]; ++t) {
      mask[b * T + t] = 0;
      prompt[b * T + t] = t % 2 ? -7 : 1000;  // out of range, but padding: never read
    }
  cf_generate_options o = greedy_options(kPenalty);
  o.attention_mask = mask.data();
  std::vector<int32_t> out;
  int64_t steps = -1;
  Err e;
  CHECK(generate_ex(m.m, prompt, B, T, N, &o, &out, &steps, &e) == CF_OK);
  CHECK(e.str().empty());
  CHECK(steps == N);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) CHECK(out[b * (T + N) + t] == prompt[b * T + t]);
    const std::vector<int32_t> row(prompt.begin() + b * T + (T - lens[b]), prompt.begin() + (b + 1) * T);
    const cf_generate_options plain = greedy_options(kPenalty);
    std::vector<int32_t> alone;
    CHECK(generate_ex(m.m, row, 1, lens[b], N, &plain, &alone, nullptr) == CF_OK);
    for (int64_t s = 0; s < N; ++s) CHECK(out[b * (T + N) + T + s] == alone[lens[b] + s]);
  }
  // The same through the C++ model.
  GenerationOptions g;
  g.sampling.temperature = 0.0f;
  g.attention_mask = mask;
  g.repetition_penalty = kPenalty;
  int64_t ref_steps = -1;
  CHECK(out == reference_generate_ex(gpt_path(), prompt, B, T, N, g, &ref_steps));
  CHECK(ref_steps == N);
  // A mask of ones is no padding.
  std::vector<uint8_t> ones(static_cast<size_t>(B * T), 1);
  const std::vector<int32_t> plain = tokens(B * T, V, 6);
  o.attention_mask = ones.data();
  o.repetition_penalty = 1.0f;
  CHECK(generate_ex(m.m, plain, B, T, N, &o, &out, nullptr) == CF_OK);
  std::vector<int32_t> expect(out.size());
  CHECK(cf_model_generate(m.m, plain.data(), B, T, N, 0.0f, 0, 1.0f, 0, expect.data(),
                          static_cast<int64_t>(expect.size()), nullptr, 0) == CF_OK);
  CHECK(out == expect);
}

// A row that emits an eos id stops; its later columns are the pad id, and
// when every row stopped generation ends early: *new_tokens < max_new_tokens
// and the columns after it are the pad id too.
CF_TEST(generate_ex_eos_stops_rows_and_pads) {
  Model m(gpt_path());
  if (!m.m) {
    CHECK(m.m != nullptr);
    return;
  }
  const int64_t B = 2, T = 3, N = 8, V = 23, W = T + N;
  const auto prompt = tokens(B * T, V, 7);
  cf_generate_options o = greedy_options(kPenalty);
  std::vector<int32_t> free_run;
  int64_t steps = -1;
  CHECK(generate_ex(m.m, prompt, B, T, N, &o, &free_run, &steps) == CF_OK);
  CHECK(steps == N);
  // Stop ids: what row 0 generates at step 2 and row 1 at step 4, so every row stops by step 5.
  const std::vector<int32_t> eos = {free_run[0 * W + T + 2], free_run[1 * W + T + 4]};
  o.eos_token_ids = eos.data();
  o.num_eos_token_ids = static_cast<int64_t>(eos.size());
  // Where each row stops, from the run without stop ids (greedy: identical until then).
  int64_t stop[B], last = 0;
  for (int64_t b = 0; b < B; ++b) {
    stop[b] = N;
    for (int64_t s = 0; s < N && stop[b] == N; ++s)
      if (free_run[b * W + T + s] == eos[0] || free_run[b * W + T + s] == eos[1]) stop[b] = s;
    CHECK(stop[b] <= 2 + 2 * b);
    last = std::max(last, stop[b] + 1);
  }
  CHECK(stop[0] != stop[1]);  // true of this model: one row stops while the other runs on
  for (const int64_t pad : {int64_t{-1}, int64_t{5}}) {
    o.pad_token_id = pad;
    const int32_t fill = pad < 0 ? eos[0] : static_cast<int32_t>(pad);
    std::vector<int32_t> out;
    steps = -1;
    Err e;
    CHECK(generate_ex(m.m, prompt, B, T, N, &o, &out, &steps, &e) == CF_OK);
    CHECK(steps == last);
    CHECK(steps < N);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < W; ++t) {
        const int32_t want = t < T + stop[b] + 1 ? free_run[b * W + t] : fill;
        CHECK(out[b * W + t] == want);
      }
    // The C++ model, padded to max_new_tokens columns.
    GenerationOptions g;
    g.sampling.temperature = 0.0f;
    g.repetition_penalty = kPenalty;
    g.eos_token_ids.assign(eos.begin(), eos.end());
    g.pad_token_id = pad;
    int64_t ref_steps = -1;
    const auto ref = reference_generate_ex(gpt_path(), prompt, B, T, N, g, &ref_steps);
    CHECK(ref_steps == steps);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T + ref_steps; ++t) CHECK(out[b * W + t] == ref[b * (T + ref_steps) + t]);
    // new_tokens may be NULL.
    std::vector<int32_t> again;
    CHECK(generate_ex(m.m, prompt, B, T, N, &o, &again, nullptr) == CF_OK);
    CHECK(again == out);
  }
  // min_new_tokens suppresses the stop ids: all N steps, none of them emitted.
  o.pad_token_id = -1;
  o.min_new_tokens = N;
  std::vector<int32_t> out;
  CHECK(generate_ex(m.m, prompt, B, T, N, &o, &out, &steps) == CF_OK);
  CHECK(steps == N);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < N; ++s) CHECK(out[b * W + T + s] != eos[0] && out[b * W + T + s] != eos[1]);
}

// Seeded sampling with every option equals the C++ model; opt NULL is the
// defaults (temperature 1, seed 0), the same as cf_model_generate with them.
CF_TEST(generate_ex_sampling_equals_the_cpp_model) {
  Model m(gpt_path());
  if (!m.m) {
    CHECK(m.m != nullptr);
    return;
  }
  const int64_t B = 3, T = 4, N = 14, V = 23;  // past block_size 12: context cropping with padding
  const auto prompt = tokens(B * T, V, 8);
  const std::vector<uint8_t> mask = {1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1};
  const std::vector<int32_t> eos = {4, 9};
  cf_generate_options o;
  cf_generate_options_init(&o);
  o.temperature = 0.9f;
  o.top_k = 8;
  o.top_p = 0.9f;
  o.seed = 4321;
  o.attention_mask = mask.data();
  o.eos_token_ids = eos.data();
  o.num_eos_token_ids = 2;
  o.pad_token_id = 0;
  o.repetition_penalty = 1.2f;
  o.min_new_tokens = 3;
  std::vector<int32_t> out, again;
  int64_t steps = -1, steps2 = -1;
  CHECK(generate_ex(m.m, prompt, B, T, N, &o, &out, &steps) == CF_OK);
  CHECK(generate_ex(m.m, prompt, B, T, N, &o, &again, &steps2) == CF_OK);
  CHECK(out == again);
  CHECK(steps == steps2);
  GenerationOptions g;
  g.sampling.temperature = 0.9f;
  g.sampling.top_k = 8;
  g.sampling.top_p = 0.9f;
  g.sampling.seed = 4321;
  g.sampling.has_seed = true;
  g.attention_mask = mask;
  g.eos_token_ids = {4, 9};
  g.pad_token_id = 0;
  g.repetition_penalty = 1.2f;
  g.min_new_tokens = 3;
  int64_t ref_steps = -1;
  const auto ref = reference_generate_ex(gpt_path(), prompt, B, T, N, g, &ref_steps);
  CHECK(ref_steps == steps);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T + N; ++t)
      CHECK(out[b * (T + N) + t] == (t < T + ref_steps ? ref[b * (T + ref_steps) + t] : 0));

  // opt NULL: the defaults.
  std::vector<int32_t> expect(static_cast<size_t>(B * (T + N)));
  CHECK(generate_ex(m.m, prompt, B, T, N, nullptr, &out, &steps) == CF_OK);
  CHECK(steps == N);
  CHECK(cf_model_generate(m.m, prompt.data(), B, T, N, 1.0f, 0, 1.0f, 0, expect.data(),
                          static_cast<int64_t>(expect.size()), nullptr, 0) == CF_OK);
  CHECK(out == expect);
  // A struct_size larger than this library's struct (a newer header): the known fields are read.
  struct Newer {
    cf_generate_options o;
    int64_t later_field;
  } newer;
  cf_generate_options_init(&newer.o);
  newer.o.struct_size = sizeof newer;
  newer.o.temperature = 0.0f;
  newer.later_field = 77;
  cf_generate_options greedy = greedy_options();
  CHECK(generate_ex(m.m, prompt, B, T, N, &newer.o, &out, &steps) == CF_OK);
  CHECK(generate_ex(m.m, prompt, B, T, N, &greedy, &again, &steps) == CF_OK);
  CHECK(out == again);
}

CF_TEST(bad_generate_ex_arguments_return_codes) {
  Model m(gpt_path());
  if (!m.m) {
    CHECK(m.m != nullptr);
    return;
  }
  const int64_t B = 2, T = 4, N = 3, V = 23;
  const auto prompt = tokens(B * T, V, 9);
  std::vector<int32_t> out(static_cast<size_t>(B * (T + N)));
  const int64_t n = static_cast<int64_t>(out.size());
  int64_t steps = 0;
  Err e;
  auto gen = [&](const std::vector<int32_t>& p, const cf_generate_options* o) {
    return cf_model_generate_ex(m.m, p.data(), B, T, N, o, out.data(), n, &steps, e.buf, sizeof e.buf);
  };
  cf_generate_options o;
  cf_generate_options_init(&o);
  CHECK(gen(prompt, &o) == CF_OK);

  // struct_size: uninitialised or from a struct without every field this library reads.
  o.struct_size = 0;
  CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
  CHECK(contains(e.str(), "cf_model_generate_ex: opt->struct_size is 0 but cf_generate_options needs at least"));
  CHECK(contains(e.str(), "cf_generate_options_init"));
  o.struct_size = sizeof o - sizeof(int64_t);  // min_new_tokens missing
  CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
  CHECK(contains(e.str(), "opt->struct_size is " + std::to_string(sizeof o - sizeof(int64_t))));
  cf_generate_options_init(&o);

  // The attention mask.
  std::vector<uint8_t> mask(static_cast<size_t>(B * T), 1);
  o.attention_mask = mask.data();
  mask[5] = 2;
  CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate_ex: attention_mask[1][1] = 2: expected 0 (padding) or 1 (token)");
  mask[5] = 1;
  mask[4] = 255;
  CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate_ex: attention_mask[1][0] = 255: expected 0 (padding) or 1 (token)");
  mask[4] = 1;
  mask[7] = 0;  // right padding
  CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate_ex: attention_mask[1][3] = 0 follows a token: padding must come first in a "
                   "row (left padding)");
  mask[7] = 1;
  mask[1] = 0;  // a hole inside row 0
  CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
  CHECK(contains(e.str(), "attention_mask[0][1] = 0 follows a token"));
  mask[1] = 1;
  for (int64_t t = 0; t < T; ++t) mask[T + t] = 0;  // row 1 is all padding
  CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate_ex: attention_mask[1] has no tokens (every entry is 0): each row needs at least "
                   "one");
  for (int64_t t = 0; t < T; ++t) mask[T + t] = t < 2 ? 0 : 1;  // row 1: two padding, two tokens

  // Prompt ids: checked at tokens, ignored at padding.
  auto bad = prompt;
  bad[T + 1] = 1000;
  bad[T + 0] = -1;
  CHECK(gen(bad, &o) == CF_OK);
  CHECK(out[(T + N) + 0] == -1 && out[(T + N) + 1] == 1000);  // copied back unchanged
  bad[T + 2] = V;
  CHECK(gen(bad, &o) == CF_ERR_OUT_OF_RANGE);
  CHECK(e.str() == "cf_model_generate_ex: prompt[1][2] = 23 is out of range [0, 23)");
  o.attention_mask = nullptr;  // without a mask every id is checked
  CHECK(gen(bad, &o) == CF_ERR_OUT_OF_RANGE);
  CHECK(e.str() == "cf_model_generate_ex: prompt[1][0] = -1 is out of range [0, 23)");
  CHECK(cf_model_generate_ex(m.m, nullptr, B, T, N, &o, out.data(), n, &steps, e.buf, sizeof e.buf) ==
        CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate_ex: prompt is NULL");
  o.attention_mask = mask.data();
  CHECK(cf_model_generate_ex(m.m, nullptr, B, T, N, &o, out.data(), n, &steps, e.buf, sizeof e.buf) ==
        CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate_ex: prompt is NULL");
  cf_generate_options_init(&o);

  // Stop and pad ids.
  std::vector<int32_t> eos = {3, V};
  o.eos_token_ids = eos.data();
  o.num_eos_token_ids = 2;
  CHECK(gen(prompt, &o) == CF_ERR_OUT_OF_RANGE);
  CHECK(e.str() == "cf_model_generate_ex: eos_token_ids[1] = 23 is out of range [0, 23)");
  eos[1] = -4;
  CHECK(gen(prompt, &o) == CF_ERR_OUT_OF_RANGE);
  CHECK(e.str() == "cf_model_generate_ex: eos_token_ids[1] = -4 is out of range [0, 23)");
  eos[1] = 22;
  CHECK(gen(prompt, &o) == CF_OK);
  o.num_eos_token_ids = -1;
  CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate_ex: num_eos_token_ids must be >= 0, got -1");
  o.num_eos_token_ids = 2;
  o.eos_token_ids = nullptr;
  CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate_ex: eos_token_ids is NULL but num_eos_token_ids is 2");
  o.num_eos_token_ids = 0;  // NULL with no stop ids is fine
  CHECK(gen(prompt, &o) == CF_OK);
  o.pad_token_id = V;
  CHECK(gen(prompt, &o) == CF_ERR_OUT_OF_RANGE);
  CHECK(e.str() == "cf_model_generate_ex: pad_token_id = 23 is out of range [0, 23) (or -1: the first eos id)");
  o.pad_token_id = -2;
  CHECK(gen(prompt, &o) == CF_ERR_OUT_OF_RANGE);
  CHECK(contains(e.str(), "pad_token_id = -2 is out of range"));
  cf_generate_options_init(&o);

  // Penalty and min_new_tokens.
  for (const float pen : {0.0f, -1.0f, NAN, INFINITY}) {
    o.repetition_penalty = pen;
    CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
    CHECK(contains(e.str(), "cf_model_generate_ex: repetition_penalty must be finite and > 0 (1 = off), got "));
  }
  o.repetition_penalty = 1.0f;
  o.min_new_tokens = -1;
  CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate_ex: min_new_tokens must be >= 0, got -1");
  o.min_new_tokens = 100;  // more than max_new_tokens: allowed (no stop id is ever emitted)
  CHECK(gen(prompt, &o) == CF_OK);
  cf_generate_options_init(&o);

  // The sampling options and the sizes, as cf_model_generate checks them.
  o.temperature = -1.0f;
  CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
  CHECK(contains(e.str(), "cf_model_generate_ex: temperature must be finite and >= 0"));
  o.temperature = 1.0f;
  o.top_k = -3;
  CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
  CHECK(contains(e.str(), "top_k must be >= 0"));
  o.top_k = 0;
  o.top_p = 0.0f;
  CHECK(gen(prompt, &o) == CF_ERR_INVALID_ARGUMENT);
  CHECK(contains(e.str(), "top_p must be in (0, 1]"));
  o.top_p = 1.0f;
  CHECK(cf_model_generate_ex(m.m, prompt.data(), B, T, N, &o, out.data(), n - 1, &steps, e.buf, sizeof e.buf) ==
        CF_ERR_BUFFER_TOO_SMALL);
  CHECK(e.str() == "cf_model_generate_ex: out_len is 13 but the output [2, 4 + 3] needs 14 ints");
  CHECK(cf_model_generate_ex(m.m, prompt.data(), B, T, N, &o, nullptr, n, &steps, e.buf, sizeof e.buf) ==
        CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate_ex: out is NULL");
  CHECK(cf_model_generate_ex(m.m, prompt.data(), B, T, -1, &o, out.data(), n, &steps, e.buf, sizeof e.buf) ==
        CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate_ex: max_new_tokens must be >= 0, got -1");
  CHECK(cf_model_generate_ex(m.m, prompt.data(), 0, T, N, &o, out.data(), n, &steps, e.buf, sizeof e.buf) ==
        CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate_ex: batch must be >= 1, got 0");
  CHECK(cf_model_generate_ex(nullptr, prompt.data(), B, T, N, &o, out.data(), n, &steps, e.buf, sizeof e.buf) ==
        CF_ERR_INVALID_ARGUMENT);
  CHECK(e.str() == "cf_model_generate_ex: m is NULL");
  const int64_t huge = 1000000000000;
  CHECK(cf_model_generate_ex(m.m, prompt.data(), B, T, huge, &o, out.data(), B * (T + huge), &steps, e.buf,
                             sizeof e.buf) == CF_ERR_INVALID_ARGUMENT);
  CHECK(contains(e.str(), "cf_model_generate_ex: max_new_tokens: generating 1000000000000 tokens"));

  // Zero new tokens copies the prompt.
  CHECK(cf_model_generate_ex(m.m, prompt.data(), B, T, 0, nullptr, out.data(), n, &steps, e.buf, sizeof e.buf) ==
        CF_OK);
  CHECK(steps == 0);
  CHECK(std::vector<int32_t>(out.begin(), out.begin() + B * T) == prompt);

  // Not a GPT.
  Model s(seq2seq_path());
  if (s.m) {
    const auto tok = tokens(4, 7, 0);
    CHECK(cf_model_generate_ex(s.m, tok.data(), 1, 4, 3, nullptr, out.data(), n, &steps, e.buf, sizeof e.buf) ==
          CF_ERR_UNSUPPORTED);
    CHECK(e.str() == "cf_model_generate_ex: generate is not supported for model class 'Seq2Seq'");
  }
  // The model still works after every error above.
  CHECK(gen(prompt, nullptr) == CF_OK);
  CHECK(steps == N);
}

int main() {
  const int rc = ::cftest::run_all();
  std::remove(bert_path().c_str());
  std::remove(vit_path().c_str());
  std::remove(gpt_path().c_str());
  std::remove(gpt2_path().c_str());
  std::remove(seq2seq_path().c_str());
  return rc;
}
