// The C API's argument checks: every kind of bad argument to forward and
// generate reported as a status code and a NUL-terminated message.
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
  remove_checkpoints();
  return rc;
}
