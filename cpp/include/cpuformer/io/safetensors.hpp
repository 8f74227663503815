// Checkpoints in the safetensors format.
//
// File layout:
//   u64 N (little-endian)            header length in bytes
//   N bytes of UTF-8 JSON             {"name": {"dtype": "F32", "shape": [2, 3],
//                                      "data_offsets": [begin, end]}, ...,
//                                      "__metadata__": {"key": "value", ...}}
//                                     (may be padded with trailing spaces)
//   data buffer                       tensors, row-major little-endian; offsets
//                                     are relative to the buffer's start
//
// Writing stores float32 ("F32") tensors contiguously in the order given (the
// header is padded so the data buffer starts 8-byte aligned) and replaces the
// destination atomically. Reading accepts
// F64/F32/F16/BF16, I64/I32/I16/I8, U64/U32/U16/U8 and BOOL, converting to
// float32, and treats the file as untrusted: every header field is validated
// against the file size before anything is allocated or read.
//
// Errors: ValueError for invalid arguments and for corrupt or invalid files
// (the message names the file, the tensor and what is wrong); FileError (an
// Error) for I/O failures, carrying the errno value.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cpuformer/error.hpp"
#include "cpuformer/tensor.hpp"

namespace cpuformer {

// An operating-system failure on a file (open, read, write, fsync, rename).
// what() is "checkpoint '<path>': <reason>".
struct FileError : Error {
  FileError(const std::string& message, int code, std::string path, std::string reason)
      : Error(message), code(code), path(std::move(path)), reason(std::move(reason)) {}
  int code;            // errno value (EIO when the OS gave none)
  std::string path;    // the file the operation was about
  std::string reason;  // the message without the path: "cannot open for reading: No such file or directory"
};

struct NamedTensor {
  NamedTensor() = default;
  NamedTensor(std::string n, Tensor v) : name(std::move(n)), value(std::move(v)) {}
  std::string name;
  Tensor value;  // float32; undefined for a raw tensor
  // A tensor kept in its stored low precision (quantized weights): raw_dtype
  // "I8" or "BF16", its shape, and its little-endian bytes.
  std::string raw_dtype;
  Shape raw_shape;
  std::shared_ptr<std::vector<uint8_t>> raw;
  bool is_raw() const { return raw != nullptr; }
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

struct SafetensorsContent {
  std::vector<NamedTensor> tensors;  // in header order
  Metadata metadata;                 // in header order
};

// Largest header the reader accepts.
constexpr int64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// Writes `tensors` as F32 (raw ones as their I8 / BF16 bytes) plus string
// `metadata`. Names must be non-empty, unique, valid UTF-8 and not
// "__metadata__"; metadata keys must be unique; every tensor must be defined
// and a raw one's byte count must match its shape (ValueError, before any
// file is touched).
// Atomic: the data goes to "<path>.tmp-<pid>-<random>" in the same directory,
// is flushed and fsync'ed, renamed over `path`, and the directory is fsync'ed.
// On failure the temporary file is removed, `path` is left as it was, and
// FileError is thrown.
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const Metadata& metadata = {});

// Reads every tensor, converted to float32, and the metadata. With
// keep_low_precision, I8 and BF16 tensors come back raw (is_raw()) instead.
SafetensorsContent load_safetensors(const std::string& path, bool keep_low_precision = false);

// Reads and validates only the header; returns the metadata.
Metadata read_safetensors_metadata(const std::string& path);

}  // namespace cpuformer
