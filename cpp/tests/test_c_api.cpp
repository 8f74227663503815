// The C API (c_api.h): results equal to the C++ models, bad files and
// unsupported operations reported as a status code and a NUL-terminated
// message, and models used from several threads. Generation is tested in
// test_c_api_generate.cpp, bad arguments in test_c_api_bad_args.cpp.
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

#include "c_api_fixtures.hpp"
#include "check.hpp"
#include "cpuformer/cpuformer.hpp"
#include "fixtures.hpp"

using namespace cpuformer;
using namespace capi_test;
using cftest::contains;

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

int main() {
  const int rc = ::cftest::run_all();
  remove_checkpoints();
  return rc;
}
