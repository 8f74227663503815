// The C API (c_api.h): argument checks with C names, then the C++ models;
// every entry point is noexcept and turns exceptions into status codes.
// This file: the per-class operations, errors, status names, threads,
// loading and forward; generation is in c_api_generate.cpp.
#include "cpuformer/c_api.h"

#include <cstring>
#include <limits>
#include <memory>
#include <string>

#include "c_api_internal.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/io/checkpoint.hpp"
#include "cpuformer/models/bert.hpp"
#include "cpuformer/models/gpt.hpp"
#include "cpuformer/models/seq2seq.hpp"
#include "cpuformer/models/vit.hpp"
#include "cpuformer/runtime/build_info.hpp"
#include "cpuformer/runtime/threads.hpp"

using cpuformer::Module;

namespace cpuformer {
namespace detail {
namespace capi {

namespace {

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

}  // namespace

const ClassOps kNoOps = {"", nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

const ClassOps& ops_for(const std::string& class_name) {
  for (const auto& c : kClassOps)
    if (class_name == c.class_name) return c;
  return kNoOps;
}

namespace {
bool is_continuation(char c) noexcept { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }
}  // namespace

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

}  // namespace capi
}  // namespace detail
}  // namespace cpuformer

using namespace cpuformer::detail::capi;

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

}  // extern "C"
