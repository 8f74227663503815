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
  std::string name;
  Tensor value;
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

struct SafetensorsContent {
  std::vector<NamedTensor> tensors;  // in header order
  Metadata metadata;                 // in header order
};

// Largest header the reader accepts.
constexpr int64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// Writes `tensors` as F32 plus string `metadata`. Names must be non-empty,
// unique, valid UTF-8 and not "__metadata__"; metadata keys must be unique;
// every tensor must be defined (ValueError, before any file is touched).
// Atomic: the data goes to "<path>.tmp-<pid>-<random>" in the same directory,
// is flushed and fsync'ed, renamed over `path`, and the directory is fsync'ed.
// On failure the temporary file is removed, `path` is left as it was, and
// FileError is thrown.
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const Metadata& metadata = {});

// Reads every tensor, converted to float32, and the metadata.
SafetensorsContent load_safetensors(const std::string& path);

// Reads and validates only the header; returns the metadata.
Metadata read_safetensors_metadata(const std::string& path);

}  // namespace cpuformer
