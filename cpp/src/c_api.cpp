// The C API (c_api.h): argument checks with C names, then the C++ models;
// every entry point is noexcept and turns exceptions into status codes.
#include "cpuformer/c_api.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpuformer/error.hpp"
#include "cpuformer/io/checkpoint.hpp"
#include "cpuformer/models/bert.hpp"
#include "cpuformer/models/gpt.hpp"
#include "cpuformer/models/seq2seq.hpp"
#include "cpuformer/models/vit.hpp"
#include "cpuformer/runtime/build_info.hpp"
#include "cpuformer/runtime/threads.hpp"

using cpuformer::Module;

namespace {

// ============================================================================
// What the C API can do with each model class: one entry per class. A class
// without an entry (or with null operations) loads fine and reports
// CF_ERR_UNSUPPORTED for the operations it lacks.
// ============================================================================

struct ClassOps {
  const char* class_name;
  int64_t (*vocab_size)(Module&);   // token ids are in [0, vocab_size)
  int64_t (*max_seq_len)(Module&);  // longest forward input
  int64_t (*features)(Module&);     // floats per token that forward writes
  // Tokens [B, T] (already range-checked) -> output [B, T, features].
  cpuformer::Tensor (*forward)(Module&, const int64_t* ids, int64_t B, int64_t T);
  // Prompt [B, T] (already checked) -> [B, T + steps] ids; *steps (<= max_new) receives the steps run.
  std::vector<int64_t> (*generate)(Module&, const int64_t* ids, int64_t B, int64_t T, int64_t max_new,
                                   const cpuformer::GenerationOptions&, int64_t* steps);
  // Images: the expected [C, S, S] of one image, the number of classes, and
  // images [B, C, S, S] (already size-checked) -> logits [B, classes].
  void (*image_shape)(Module&, int64_t* channels, int64_t* size, int64_t* classes);
  cpuformer::Tensor (*forward_images)(Module&, const float* images, int64_t B, int64_t C, int64_t H, int64_t W);
};

cpuformer::GPT& gpt(Module& m) { return static_cast<cpuformer::GPT&>(m); }
cpuformer::Seq2Seq& seq2seq(Module& m) { return static_cast<cpuformer::Seq2Seq&>(m); }
cpuformer::BERT& bert(Module& m) { return static_cast<cpuformer::BERT&>(m); }
cpuformer::ViT& vit(Module& m) { return static_cast<cpuformer::ViT&>(m); }

const ClassOps kClassOps[] = {
    {"GPT", [](Module& m) { return gpt(m).config().vocab_size; },
     [](Module& m) { return gpt(m).config().block_size; }, [](Module& m) { return gpt(m).config().vocab_size; },
     [](Module& m, const int64_t* ids, int64_t B, int64_t T) { return gpt(m).forward(ids, B, T); },
     [](Module& m, const int64_t* ids, int64_t B, int64_t T, int64_t max_new, const cpuformer::GenerationOptions& o,
        int64_t* steps) { return gpt(m).generate(ids, B, T, max_new, o, steps); },
     nullptr, nullptr},
    // Seq2Seq takes two sequences (source and target): no single-input forward here yet.
    {"Seq2Seq", [](Module& m) { return seq2seq(m).config().tgt_vocab_size; }, nullptr, nullptr, nullptr, nullptr,
     nullptr, nullptr},
    // BERT: the last hidden state [B, T, H] (token types all 0, no padding).
    {"BERT", [](Module& m) { return bert(m).config().vocab_size; },
     [](Module& m) { return bert(m).config().max_position_embeddings; },
     [](Module& m) { return bert(m).config().hidden_size; },
     [](Module& m, const int64_t* ids, int64_t B, int64_t T) { return bert(m).forward(ids, nullptr, B, T); }, nullptr,
     nullptr, nullptr},
    // ViT: images in, logits [B, num_classes] out; no tokens.
    {"ViT", nullptr, nullptr, nullptr, nullptr, nullptr,
     [](Module& m, int64_t* channels, int64_t* size, int64_t* classes) {
       const cpuformer::ViTConfig& c = vit(m).config();
       *channels = c.num_channels;
       *size = c.image_size;
       *classes = c.num_classes;
     },
     [](Module& m, const float* images, int64_t B, int64_t C, int64_t H, int64_t W) {
       return vit(m).forward(images, B, C, H, W);
     }},
};

const ClassOps kNoOps = {"", nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

const ClassOps& ops_for(const std::string& class_name) {
  for (const auto& c : kClassOps)
    if (class_name == c.class_name) return c;
  return kNoOps;
}

}  // namespace

struct cf_model {
  cpuformer::LoadedModel loaded;
  const ClassOps* ops = &kNoOps;
  std::atomic<bool> busy{false};
  std::vector<int64_t> ids;  // int32 -> int64 token scratch, reused across calls
};

namespace {

// An error raised by the C layer's own checks, with its status code.
struct CError : std::runtime_error {
  CError(int code, const std::string& msg) : std::runtime_error(msg), code(code) {}
  int code;
};

template <class... Args>
[[noreturn]] void fail(int code, const Args&... args) {
  throw CError(code, cpuformer::str_cat(args...));
}

bool is_continuation(char c) noexcept { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Writes "<fn>: <msg>" into err: at most err_len bytes including the NUL,
// cut at a UTF-8 character boundary. Never throws, never allocates (the
// message may be an out-of-memory report).
void write_err(char* err, size_t err_len, const char* fn, const char* msg) noexcept {
  if (!err || err_len == 0) return;
  const char* parts[3] = {fn ? fn : "", fn && *fn ? ": " : "", msg ? msg : ""};
  size_t n = 0;
  for (const char* part : parts) {
    for (const char* c = part; *c; ++c) {
      if (n == err_len - 1) {
        if (is_continuation(*c)) {  // *c continues the last character written: drop that one whole
          while (n > 0 && is_continuation(err[n - 1])) --n;
          if (n > 0 && (static_cast<unsigned char>(err[n - 1]) & 0xC0) == 0xC0) --n;  // its lead byte
        }
        err[n] = '\0';
        return;
      }
      err[n++] = *c;
    }
  }
  err[n] = '\0';
}

void clear_err(char* err, size_t err_len) noexcept {
  if (err && err_len > 0) err[0] = '\0';
}

// Runs body(), mapping every exception to a status code and message.
// `value_error_code` is the code for cpuformer::ValueError (CF_ERR_FORMAT
// while loading a file, CF_ERR_INVALID_ARGUMENT elsewhere).
template <class Body>
int guarded(const char* fn, char* err, size_t err_len, Body&& body,
            int value_error_code = CF_ERR_INVALID_ARGUMENT) noexcept {
  int code = CF_ERR_INTERNAL;
  try {
    const cpuformer::CallTeam team;  // the process-wide thread count, shared among concurrent calls
    body();
    clear_err(err, err_len);
    return CF_OK;
  } catch (const CError& e) {
    code = e.code;
    write_err(err, err_len, fn, e.what());
  } catch (const cpuformer::FileError& e) {
    code = CF_ERR_IO;
    write_err(err, err_len, fn, e.what());
  } catch (const cpuformer::IndexError& e) {
    code = CF_ERR_OUT_OF_RANGE;
    write_err(err, err_len, fn, e.what());
  } catch (const cpuformer::ValueError& e) {
    code = value_error_code;
    write_err(err, err_len, fn, e.what());
  } catch (const cpuformer::TypeError& e) {
    code = value_error_code;
    write_err(err, err_len, fn, e.what());
  } catch (const std::bad_alloc&) {
    code = CF_ERR_OUT_OF_MEMORY;
    write_err(err, err_len, fn, "out of memory");
  } catch (const std::length_error&) {
    code = CF_ERR_OUT_OF_MEMORY;
    write_err(err, err_len, fn, "out of memory (a buffer of that size cannot be allocated)");
  } catch (const std::exception& e) {
    code = CF_ERR_INTERNAL;
    write_err(err, err_len, fn, e.what());
  } catch (...) {
    code = CF_ERR_INTERNAL;
    write_err(err, err_len, fn, "unknown error");
  }
  return code;
}

// Marks the model busy for one call; a second thread entering meanwhile
// gets CF_ERR_BUSY instead of racing on the cached activations.
class BusyScope {
 public:
  explicit BusyScope(cf_model* m) : m_(m) {
    if (m_->busy.exchange(true, std::memory_order_acquire))
      fail(CF_ERR_BUSY, "the model is being used by another thread (one cf_model must not be used by two threads "
                        "at once)");
  }
  ~BusyScope() { m_->busy.store(false, std::memory_order_release); }
  BusyScope(const BusyScope&) = delete;
  BusyScope& operator=(const BusyScope&) = delete;

 private:
  cf_model* m_;
};

// a * b, or -1 when either is negative or the product overflows int64.
int64_t checked_mul(int64_t a, int64_t b) {
  if (a < 0 || b < 0) return -1;
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) return -1;
  return a * b;
}

void check_model(const cf_model* m) {
  if (!m) fail(CF_ERR_INVALID_ARGUMENT, "m is NULL");
}

void check_sizes(const char* what_batch, int64_t batch, const char* what_len, int64_t len) {
  if (batch < 1) fail(CF_ERR_INVALID_ARGUMENT, what_batch, " must be >= 1, got ", batch);
  if (len < 1) fail(CF_ERR_INVALID_ARGUMENT, what_len, " must be >= 1, got ", len);
  if (checked_mul(batch, len) < 0)
    fail(CF_ERR_INVALID_ARGUMENT, what_batch, " * ", what_len, " overflows (", batch, " * ", len, ")");
}

// Checks ids [batch, len] against the vocabulary and widens them into m->ids.
const int64_t* widen_tokens(cf_model* m, const char* what, const int32_t* tokens, int64_t batch, int64_t len) {
  if (!tokens) fail(CF_ERR_INVALID_ARGUMENT, what, " is NULL");
  const int64_t V = m->ops->vocab_size(*m->loaded.module);
  const int64_t n = batch * len;
  m->ids.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= V)
      fail(CF_ERR_OUT_OF_RANGE, what, "[", i / len, "][", i % len, "] = ", tokens[i], " is out of range [0, ", V,
           ")");
    m->ids[static_cast<size_t>(i)] = tokens[i];
  }
  return m->ids.data();
}

void unsupported(const cf_model* m, const char* what) {
  fail(CF_ERR_UNSUPPORTED, what, " is not supported for model class '", m->loaded.class_name, "'");
}

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

const char* cf_status_name(int status) {
  switch (status) {
    case CF_OK: return "CF_OK";
    case CF_ERR_INVALID_ARGUMENT: return "CF_ERR_INVALID_ARGUMENT";
    case CF_ERR_OUT_OF_RANGE: return "CF_ERR_OUT_OF_RANGE";
    case CF_ERR_BUFFER_TOO_SMALL: return "CF_ERR_BUFFER_TOO_SMALL";
    case CF_ERR_IO: return "CF_ERR_IO";
    case CF_ERR_FORMAT: return "CF_ERR_FORMAT";
    case CF_ERR_UNSUPPORTED: return "CF_ERR_UNSUPPORTED";
    case CF_ERR_OUT_OF_MEMORY: return "CF_ERR_OUT_OF_MEMORY";
    case CF_ERR_BUSY: return "CF_ERR_BUSY";
    case CF_ERR_INTERNAL: return "CF_ERR_INTERNAL";
    default: return "CF_ERR_UNKNOWN";
  }
}

const char* cf_version(void) { return cpuformer::version(); }

int cf_set_num_threads(int n) {
  return guarded("cf_set_num_threads", nullptr, 0, [&] { cpuformer::set_num_threads(n); });
}

int cf_get_num_threads(void) { return cpuformer::get_num_threads(); }

cf_model* cf_model_load(const char* path, char* err, size_t err_len) {
  cf_model* result = nullptr;
  guarded(
      "cf_model_load", err, err_len,
      [&] {
        if (!path) fail(CF_ERR_INVALID_ARGUMENT, "path is NULL");
        if (!*path) fail(CF_ERR_INVALID_ARGUMENT, "path is empty");
        auto m = std::make_unique<cf_model>();
        m->loaded = cpuformer::load_model(path);
        m->loaded.module->eval();
        m->ops = &ops_for(m->loaded.class_name);
        result = m.release();
      },
      CF_ERR_FORMAT);
  return result;
}

void cf_model_free(cf_model* m) { delete m; }

const char* cf_model_class_name(const cf_model* m) { return m ? m->loaded.class_name.c_str() : nullptr; }

const char* cf_model_dtype(const cf_model* m) { return m ? cpuformer::dtype_name(m->loaded.module->dtype()) : nullptr; }

int64_t cf_model_vocab_size(const cf_model* m) {
  if (!m || !m->ops->vocab_size) return -1;
  return m->ops->vocab_size(*m->loaded.module);
}

int64_t cf_model_max_seq_len(const cf_model* m) {
  if (!m || !m->ops->max_seq_len || !m->ops->forward) return -1;
  return m->ops->max_seq_len(*m->loaded.module);
}

int64_t cf_model_output_size(const cf_model* m, int64_t batch, int64_t seq_len) {
  if (!m || !m->ops->forward || batch < 1 || seq_len < 1) return -1;
  return checked_mul(checked_mul(batch, seq_len), m->ops->features(*m->loaded.module));
}

int cf_model_forward(cf_model* m, const int32_t* tokens, int64_t batch, int64_t seq_len, float* out,
                     int64_t out_len, char* err, size_t err_len) {
  return guarded("cf_model_forward", err, err_len, [&] {
    check_model(m);
    if (!m->ops->forward && m->ops->forward_images)
      fail(CF_ERR_UNSUPPORTED, "model class '", m->loaded.class_name,
           "' takes images, not tokens: use cf_model_forward_images");
    if (!m->ops->forward) unsupported(m, "forward over one token sequence");
    BusyScope busy(m);
    Module& model = *m->loaded.module;
    check_sizes("batch", batch, "seq_len", seq_len);
    const int64_t max_len = m->ops->max_seq_len(model);
    if (seq_len > max_len)
      fail(CF_ERR_INVALID_ARGUMENT, "seq_len ", seq_len, " exceeds the model's maximum sequence length ", max_len);
    const int64_t features = m->ops->features(model);
    const int64_t need = checked_mul(batch * seq_len, features);
    if (need < 0) fail(CF_ERR_INVALID_ARGUMENT, "the output size overflows: [", batch, ", ", seq_len, ", ", features, "]");
    if (!out) fail(CF_ERR_INVALID_ARGUMENT, "out is NULL");
    if (out_len < need)
      fail(CF_ERR_BUFFER_TOO_SMALL, "out_len is ", out_len, " but the output [", batch, ", ", seq_len, ", ", features,
           "] needs ", need, " floats");
    const int64_t* ids = widen_tokens(m, "tokens", tokens, batch, seq_len);
    const cpuformer::Tensor y = m->ops->forward(model, ids, batch, seq_len);
    if (y.numel() != need)
      fail(CF_ERR_INTERNAL, "forward produced ", y.numel(), " floats, expected ", need);
    std::memcpy(out, y.data(), static_cast<size_t>(need) * sizeof(float));
  });
}

int cf_model_forward_images(cf_model* m, const float* images, int64_t batch, int64_t channels, int64_t height,
                            int64_t width, float* out, int64_t out_len, char* err, size_t err_len) {
  return guarded("cf_model_forward_images", err, err_len, [&] {
    check_model(m);
    if (!m->ops->forward_images) unsupported(m, "forward over images");
    BusyScope busy(m);
    Module& model = *m->loaded.module;
    int64_t want_channels = 0, size = 0, classes = 0;
    m->ops->image_shape(model, &want_channels, &size, &classes);
    if (batch < 1) fail(CF_ERR_INVALID_ARGUMENT, "batch must be >= 1, got ", batch);
    if (channels != want_channels)
      fail(CF_ERR_INVALID_ARGUMENT, "channels is ", channels, " but the model expects ", want_channels,
           " (num_channels)");
    if (height != size || width != size)
      fail(CF_ERR_INVALID_ARGUMENT, "height x width is ", height, " x ", width, " but the model expects ", size, " x ",
           size, " (image_size)");
    if (checked_mul(batch, checked_mul(channels, checked_mul(height, width))) < 0)
      fail(CF_ERR_INVALID_ARGUMENT, "the input size overflows: [", batch, ", ", channels, ", ", height, ", ", width,
           "]");
    const int64_t need = checked_mul(batch, classes);
    if (need < 0) fail(CF_ERR_INVALID_ARGUMENT, "the output size overflows: [", batch, ", ", classes, "]");
    if (!images) fail(CF_ERR_INVALID_ARGUMENT, "images is NULL");
    if (!out) fail(CF_ERR_INVALID_ARGUMENT, "out is NULL");
    if (out_len < need)
      fail(CF_ERR_BUFFER_TOO_SMALL, "out_len is ", out_len, " but the output [", batch, ", ", classes, "] needs ", need,
           " floats");
    const cpuformer::Tensor y = m->ops->forward_images(model, images, batch, channels, height, width);
    if (y.numel() != need) fail(CF_ERR_INTERNAL, "forward produced ", y.numel(), " floats, expected ", need);
    std::memcpy(out, y.data(), static_cast<size_t>(need) * sizeof(float));
  });
}

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
