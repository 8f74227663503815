// Private: what the safetensors reader (safetensors_read.cpp) and writer
// (safetensors_write.cpp) share, defined in safetensors.cpp: the element
// types and their conversion to float32, byte order, and the messages and
// errors that name the file. Format and contract: cpuformer/io/safetensors.hpp.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "cpuformer/io/safetensors.hpp"

namespace cpuformer {
namespace detail {
namespace safetensors_io {

// ============================================================================
// Element types
// ============================================================================

enum class StDType { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL };

struct DTypeInfo {
  const char* name;
  StDType dtype;
  int64_t size;  // bytes per element
};

// The entry of a dtype name ("F32"), or null when unsupported.
const DTypeInfo* find_dtype(std::string_view name);
// "F64, F32, ..." for messages.
std::string supported_dtypes();
bool host_is_little_endian();

// Little-endian load of an N-byte unsigned integer (compiles to one load on
// little-endian hosts).
template <int N>
inline uint64_t load_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int k = 0; k < N; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
  return v;
}

// Converts n elements of `dtype` at `src` (little-endian) to float32.
void convert_to_float(StDType dtype, const unsigned char* src, int64_t n, float* dst);

// ============================================================================
// Messages and errors
// ============================================================================

// A name or path as it appears in messages (hostile files can hold
// megabyte-long names; paths need not be UTF-8).
std::string show(std::string_view s);
// "checkpoint " followed by the quoted path: how messages name the file.
std::string where(const std::string& path);
// A FileError whose message is where(path) + ": " + reason, carrying errno `err`.
[[noreturn]] void throw_file_error(const std::string& path, const std::string& reason, int err);
// An OS call failed with errno `err`: the reason ends with its description.
[[noreturn]] void throw_os(const std::string& path, const std::string& what, int err);
// The OS call just made failed: errno is read before any message is built
// (building one allocates, which may change errno).
[[noreturn]] void throw_last_error(const std::string& path, const char* what);
// ValueError unless the path is non-empty and free of NUL bytes.
void check_path(const std::string& path);

}  // namespace safetensors_io
}  // namespace detail
}  // namespace cpuformer
