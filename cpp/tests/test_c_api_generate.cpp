// The C API's generation (cf_model_generate, cf_model_generate_ex): results
// equal to the C++ model's, left-padded batches, eos ids and padding.
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

int main() {
  const int rc = ::cftest::run_all();
  remove_checkpoints();
  return rc;
}
