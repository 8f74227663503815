// Private: what the C API's files (c_api.cpp, c_api_generate.cpp) share:
// the model handle, the per-class operations, the mapping of exceptions to
// status codes, and the argument checks that name C arguments.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpuformer/c_api.h"
#include "cpuformer/error.hpp"
#include "cpuformer/io/checkpoint.hpp"
#include "cpuformer/models/gpt.hpp"
#include "cpuformer/runtime/threads.hpp"

namespace cpuformer {
namespace detail {
namespace capi {

// ============================================================================
// What the C API can do with each model class: one entry per class (the
// table is in c_api.cpp). A class without an entry (or with null operations)
// loads fine and reports CF_ERR_UNSUPPORTED for the operations it lacks.
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

// The operations of a class; an entry of null operations for unknown classes.
const ClassOps& ops_for(const std::string& class_name);
extern const ClassOps kNoOps;

}  // namespace capi
}  // namespace detail
}  // namespace cpuformer

struct cf_model {
  cpuformer::LoadedModel loaded;
  const cpuformer::detail::capi::ClassOps* ops = &cpuformer::detail::capi::kNoOps;
  std::atomic<bool> busy{false};
  std::vector<int64_t> ids;  // int32 -> int64 token scratch, reused across calls
};

namespace cpuformer {
namespace detail {
namespace capi {

// An error raised by the C layer's own checks, with its status code.
struct CError : std::runtime_error {
  CError(int code, const std::string& msg) : std::runtime_error(msg), code(code) {}
  int code;
};

template <class... Args>
[[noreturn]] void fail(int code, const Args&... args) {
  throw CError(code, str_cat(args...));
}

// Writes "<fn>: <msg>" into err: at most err_len bytes including the NUL,
// cut at a UTF-8 character boundary. Never throws, never allocates (the
// message may be an out-of-memory report).
void write_err(char* err, size_t err_len, const char* fn, const char* msg) noexcept;
void clear_err(char* err, size_t err_len) noexcept;

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
int64_t checked_mul(int64_t a, int64_t b);
// CF_ERR_INVALID_ARGUMENT unless m is set.
void check_model(const cf_model* m);
// batch >= 1, len >= 1, and batch * len fits int64, or CF_ERR_INVALID_ARGUMENT.
void check_sizes(const char* what_batch, int64_t batch, const char* what_len, int64_t len);
// Checks ids [batch, len] against the vocabulary and widens them into m->ids.
const int64_t* widen_tokens(cf_model* m, const char* what, const int32_t* tokens, int64_t batch, int64_t len);
// CF_ERR_UNSUPPORTED: `what` is not available for the model's class.
void unsupported(const cf_model* m, const char* what);

}  // namespace capi
}  // namespace detail
}  // namespace cpuformer
