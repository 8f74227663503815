// The C API's generation (c_api.h: cf_generate_options, cf_model_generate,
// cf_model_generate_ex): the options and prompt are checked with their C
// names, then the model's generate runs (see c_api.cpp for the rest).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

#include "c_api_internal.hpp"
#include "cpuformer/c_api.h"
#include "cpuformer/error.hpp"

using namespace cpuformer::detail::capi;

namespace {

// Checks a left-padded prompt [batch, len] and its mask (1 = token, 0 =
// padding before a row's first token) and widens it into m->ids. Ids at
// padded positions are copied but not checked: the model never reads them.
const int64_t* widen_padded_prompt(cf_model* m, const int32_t* prompt, const uint8_t* mask, int64_t batch,
                                   int64_t len) {
  if (!prompt) fail(CF_ERR_INVALID_ARGUMENT, "prompt is NULL");
  const int64_t V = m->ops->vocab_size(*m->loaded.module);
  m->ids.resize(static_cast<size_t>(batch * len));
  for (int64_t b = 0; b < batch; ++b) {
    const uint8_t* r = mask + b * len;
    int64_t first = 0;
    while (first < len && r[first] == 0) ++first;
    if (first == len)
      fail(CF_ERR_INVALID_ARGUMENT, "attention_mask[", b, "] has no tokens (every entry is 0): each row needs at "
           "least one");
    for (int64_t t = first; t < len; ++t) {
      if (r[t] > 1)
        fail(CF_ERR_INVALID_ARGUMENT, "attention_mask[", b, "][", t, "] = ", int(r[t]),
             ": expected 0 (padding) or 1 (token)");
      if (r[t] == 0)
        fail(CF_ERR_INVALID_ARGUMENT, "attention_mask[", b, "][", t, "] = 0 follows a token: padding must come "
             "first in a row (left padding)");
    }
    for (int64_t t = 0; t < len; ++t) {
      const int32_t id = prompt[b * len + t];
      if (t >= first && (id < 0 || id >= V))
        fail(CF_ERR_OUT_OF_RANGE, "prompt[", b, "][", t, "] = ", id, " is out of range [0, ", V, ")");
      m->ids[static_cast<size_t>(b * len + t)] = id;
    }
  }
  return m->ids.data();
}

// The bytes of cf_generate_options this library reads: every field up to
// min_new_tokens. Fields added later go after it and keep their defaults
// when a caller's struct_size stops before them.
constexpr size_t kGenerateOptionsSize = offsetof(cf_generate_options, min_new_tokens) + sizeof(int64_t);

cf_generate_options read_options(const cf_generate_options* opt) {
  cf_generate_options o;
  cf_generate_options_init(&o);
  if (!opt) return o;
  if (opt->struct_size < kGenerateOptionsSize)
    fail(CF_ERR_INVALID_ARGUMENT, "opt->struct_size is ", opt->struct_size, " but cf_generate_options needs at least ",
         kGenerateOptionsSize, " bytes (fill it with cf_generate_options_init first)");
  std::memcpy(&o, opt, std::min(opt->struct_size, sizeof o));
  o.struct_size = sizeof o;
  return o;
}

// cf_model_generate and cf_model_generate_ex (inside guarded). opt NULL = the defaults.
void generate_into(cf_model* m, const int32_t* prompt, int64_t batch, int64_t prompt_len, int64_t max_new_tokens,
                   const cf_generate_options* opt, int32_t* out, int64_t out_len, int64_t* new_tokens) {
  check_model(m);
  if (!m->ops->generate) unsupported(m, "generate");
  BusyScope busy(m);
  const cf_generate_options o = read_options(opt);
  check_sizes("batch", batch, "prompt_len", prompt_len);
  if (max_new_tokens < 0) fail(CF_ERR_INVALID_ARGUMENT, "max_new_tokens must be >= 0, got ", max_new_tokens);
  if (!(o.temperature >= 0.0f) || !std::isfinite(o.temperature))
    fail(CF_ERR_INVALID_ARGUMENT, "temperature must be finite and >= 0 (0 = greedy), got ", o.temperature);
  if (o.top_k < 0) fail(CF_ERR_INVALID_ARGUMENT, "top_k must be >= 0 (0 = off), got ", o.top_k);
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f))
    fail(CF_ERR_INVALID_ARGUMENT, "top_p must be in (0, 1] (1 = off), got ", o.top_p);
  if (!(o.repetition_penalty > 0.0f) || !std::isfinite(o.repetition_penalty))
    fail(CF_ERR_INVALID_ARGUMENT, "repetition_penalty must be finite and > 0 (1 = off), got ", o.repetition_penalty);
  if (o.min_new_tokens < 0) fail(CF_ERR_INVALID_ARGUMENT, "min_new_tokens must be >= 0, got ", o.min_new_tokens);
  if (o.num_eos_token_ids < 0)
    fail(CF_ERR_INVALID_ARGUMENT, "num_eos_token_ids must be >= 0, got ", o.num_eos_token_ids);
  if (o.num_eos_token_ids > 0 && !o.eos_token_ids)
    fail(CF_ERR_INVALID_ARGUMENT, "eos_token_ids is NULL but num_eos_token_ids is ", o.num_eos_token_ids);
  const int64_t V = m->ops->vocab_size(*m->loaded.module);
  for (int64_t i = 0; i < o.num_eos_token_ids; ++i)
    if (o.eos_token_ids[i] < 0 || o.eos_token_ids[i] >= V)
      fail(CF_ERR_OUT_OF_RANGE, "eos_token_ids[", i, "] = ", o.eos_token_ids[i], " is out of range [0, ", V, ")");
  if (o.pad_token_id < -1 || o.pad_token_id >= V)
    fail(CF_ERR_OUT_OF_RANGE, "pad_token_id = ", o.pad_token_id, " is out of range [0, ", V,
         ") (or -1: the first eos id)");
  const int64_t total = max_new_tokens <= std::numeric_limits<int64_t>::max() - prompt_len
                            ? prompt_len + max_new_tokens
                            : -1;
  const int64_t need = total < 0 ? -1 : checked_mul(batch, total);
  if (need < 0)
    fail(CF_ERR_INVALID_ARGUMENT, "the output size overflows: [", batch, ", ", prompt_len, " + ", max_new_tokens, "]");
  if (!out) fail(CF_ERR_INVALID_ARGUMENT, "out is NULL");
  if (out_len < need)
    fail(CF_ERR_BUFFER_TOO_SMALL, "out_len is ", out_len, " but the output [", batch, ", ", prompt_len, " + ",
         max_new_tokens, "] needs ", need, " ints");
  const int64_t* ids = o.attention_mask
                           ? widen_padded_prompt(m, prompt, o.attention_mask, batch, prompt_len)
                           : widen_tokens(m, "prompt", prompt, batch, prompt_len);

  cpuformer::GenerationOptions g;
  g.sampling.temperature = o.temperature;
  g.sampling.top_k = o.top_k;
  g.sampling.top_p = o.top_p;
  g.sampling.seed = o.seed;
  g.sampling.has_seed = true;
  if (o.attention_mask) g.attention_mask.assign(o.attention_mask, o.attention_mask + batch * prompt_len);
  g.eos_token_ids.assign(o.eos_token_ids, o.eos_token_ids + o.num_eos_token_ids);
  g.pad_token_id = o.pad_token_id;
  g.repetition_penalty = o.repetition_penalty;
  g.min_new_tokens = o.min_new_tokens;
  int64_t steps = -1;
  const std::vector<int64_t> seq = m->ops->generate(*m->loaded.module, ids, batch, prompt_len, max_new_tokens, g,
                                                    &steps);
  if (steps < 0 || steps > max_new_tokens || static_cast<int64_t>(seq.size()) != batch * (prompt_len + steps))
    fail(CF_ERR_INTERNAL, "generate produced ", seq.size(), " ids in ", steps, " steps, expected [", batch, ", ",
         prompt_len, " + at most ", max_new_tokens, "]");
  // Columns after the last step (every row stopped): the pad id, as the rows that stopped earlier have.
  const int64_t pad = o.pad_token_id >= 0 ? o.pad_token_id : (o.num_eos_token_ids > 0 ? o.eos_token_ids[0] : 0);
  const int64_t ran = prompt_len + steps;
  for (int64_t b = 0; b < batch; ++b) {
    int32_t* row = out + b * total;
    const int64_t* from = seq.data() + b * ran;
    for (int64_t t = 0; t < ran; ++t) row[t] = static_cast<int32_t>(from[t]);
    std::fill(row + ran, row + total, static_cast<int32_t>(pad));
  }
  if (new_tokens) *new_tokens = steps;
}

}  // namespace

extern "C" {

void cf_generate_options_init(cf_generate_options* opt) {
  if (!opt) return;
  std::memset(opt, 0, sizeof *opt);
  opt->struct_size = sizeof *opt;
  opt->temperature = 1.0f;
  opt->top_k = 0;
  opt->top_p = 1.0f;
  opt->seed = 0;
  opt->attention_mask = nullptr;
  opt->eos_token_ids = nullptr;
  opt->num_eos_token_ids = 0;
  opt->pad_token_id = -1;
  opt->repetition_penalty = 1.0f;
  opt->min_new_tokens = 0;
}

int cf_model_generate(cf_model* m, const int32_t* prompt, int64_t batch, int64_t prompt_len,
                      int64_t max_new_tokens, float temperature, int64_t top_k, float top_p, uint64_t seed,
                      int32_t* out, int64_t out_len, char* err, size_t err_len) {
  return guarded("cf_model_generate", err, err_len, [&] {
    cf_generate_options opt;
    cf_generate_options_init(&opt);
    opt.temperature = temperature;
    opt.top_k = top_k;
    opt.top_p = top_p;
    opt.seed = seed;
    generate_into(m, prompt, batch, prompt_len, max_new_tokens, &opt, out, out_len, nullptr);
  });
}

int cf_model_generate_ex(cf_model* m, const int32_t* prompt, int64_t batch, int64_t prompt_len,
                         int64_t max_new_tokens, const cf_generate_options* opt, int32_t* out, int64_t out_len,
                         int64_t* new_tokens, char* err, size_t err_len) {
  return guarded("cf_model_generate_ex", err, err_len, [&] {
    generate_into(m, prompt, batch, prompt_len, max_new_tokens, opt, out, out_len, new_tokens);
  });
}

}  // extern "C"
