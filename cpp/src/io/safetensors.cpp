// The safetensors code the reader (safetensors_read.cpp) and the writer
// (safetensors_write.cpp) share: element types, conversion to float32,
// messages and errors (declared in safetensors_internal.hpp).
#include <cerrno>
#include <cstring>
#include <system_error>

#include "cpuformer/io/json.hpp"
#include "safetensors_internal.hpp"

namespace cpuformer {
namespace detail {
namespace safetensors_io {

// ============================================================================
// Element types
// ============================================================================

constexpr DTypeInfo kDTypes[] = {
    {"F64", StDType::F64, 8}, {"F32", StDType::F32, 4}, {"F16", StDType::F16, 2}, {"BF16", StDType::BF16, 2},
    {"I64", StDType::I64, 8}, {"I32", StDType::I32, 4}, {"I16", StDType::I16, 2}, {"I8", StDType::I8, 1},
    {"U64", StDType::U64, 8}, {"U32", StDType::U32, 4}, {"U16", StDType::U16, 2}, {"U8", StDType::U8, 1},
    {"BOOL", StDType::BOOL, 1},
};

const DTypeInfo* find_dtype(std::string_view name) {
  for (const DTypeInfo& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

std::string supported_dtypes() {
  std::string s;
  for (const DTypeInfo& d : kDTypes) s += str_cat(s.empty() ? "" : ", ", d.name);
  return s;
}

bool host_is_little_endian() {
  const uint16_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

namespace {

float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// IEEE binary16 -> binary32, exact (subnormals, infinities and NaN payloads
// included).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return bits_to_float(sign | 0x7F800000u | (mant << 13));
  if (exp != 0) return bits_to_float(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return bits_to_float(sign);
  // Subnormal half: shift the mantissa up until its leading 1 is the implicit bit.
  uint32_t e = 113;  // exponent of 2^-14 in binary32, plus one for the first shift
  do {
    mant <<= 1;
    --e;
  } while ((mant & 0x400u) == 0);
  return bits_to_float(sign | (e << 23) | ((mant & 0x3FFu) << 13));
}

float bf16_to_float(uint16_t b) { return bits_to_float(static_cast<uint32_t>(b) << 16); }

}  // namespace

void convert_to_float(StDType dtype, const unsigned char* src, int64_t n, float* dst) {
  switch (dtype) {
    case StDType::F64:
      for (int64_t k = 0; k < n; ++k) {
        const uint64_t bits = load_le<8>(src + 8 * k);
        double d;
        std::memcpy(&d, &bits, sizeof d);
        dst[k] = static_cast<float>(d);
      }
      break;
    case StDType::F32:
      for (int64_t k = 0; k < n; ++k) dst[k] = bits_to_float(static_cast<uint32_t>(load_le<4>(src + 4 * k)));
      break;
    case StDType::F16:
      for (int64_t k = 0; k < n; ++k) dst[k] = half_to_float(static_cast<uint16_t>(load_le<2>(src + 2 * k)));
      break;
    case StDType::BF16:
      for (int64_t k = 0; k < n; ++k) dst[k] = bf16_to_float(static_cast<uint16_t>(load_le<2>(src + 2 * k)));
      break;
    case StDType::I64:
      for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<float>(static_cast<int64_t>(load_le<8>(src + 8 * k)));
      break;
    case StDType::I32:
      for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<float>(static_cast<int32_t>(load_le<4>(src + 4 * k)));
      break;
    case StDType::I16:
      for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<float>(static_cast<int16_t>(load_le<2>(src + 2 * k)));
      break;
    case StDType::I8:
      for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<float>(static_cast<int8_t>(src[k]));
      break;
    case StDType::U64:
      for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<float>(load_le<8>(src + 8 * k));
      break;
    case StDType::U32:
      for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<float>(static_cast<uint32_t>(load_le<4>(src + 4 * k)));
      break;
    case StDType::U16:
      for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<float>(static_cast<uint16_t>(load_le<2>(src + 2 * k)));
      break;
    case StDType::U8:
      for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<float>(src[k]);
      break;
    case StDType::BOOL:
      for (int64_t k = 0; k < n; ++k) dst[k] = src[k] != 0 ? 1.0f : 0.0f;
      break;
  }
}

// ============================================================================
// Messages
// ============================================================================

std::string show(std::string_view s) { return quote_for_message(s); }

std::string where(const std::string& path) { return str_cat("checkpoint ", show(path)); }

[[noreturn]] void throw_file_error(const std::string& path, const std::string& reason, int err) {
  throw FileError(str_cat(where(path), ": ", reason), err, path, reason);
}

[[noreturn]] void throw_os(const std::string& path, const std::string& what, int err) {
  if (err == 0) err = EIO;
  throw_file_error(path, str_cat(what, ": ", std::generic_category().message(err)), err);
}

[[noreturn]] void throw_last_error(const std::string& path, const char* what) {
  const int err = errno;
  throw_os(path, what, err);
}

void check_path(const std::string& path) {
  CF_CHECK_VALUE(!path.empty(), "checkpoint path is empty");
  CF_CHECK_VALUE(path.find('\0') == std::string::npos, where(path), ": path contains a NUL byte");
}

}  // namespace safetensors_io
}  // namespace detail
}  // namespace cpuformer
