#include "cpuformer/io/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string_view>
#include <system_error>
#include <unordered_set>

#include "cpuformer/io/json.hpp"

namespace cpuformer {

namespace {

// ============================================================================
// Element types
// ============================================================================

enum class StDType { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL };

struct DTypeInfo {
  const char* name;
  StDType dtype;
  int64_t size;  // bytes per element
};

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

// Little-endian load of an N-byte unsigned integer (compiles to one load on
// little-endian hosts).
template <int N>
uint64_t load_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int k = 0; k < N; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
  return v;
}

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

// Converts n elements of `dtype` at `src` (little-endian) to float32.
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

// A name or path as it appears in messages (hostile files can hold
// megabyte-long names; paths need not be UTF-8).
std::string show(std::string_view s) { return quote_for_message(s); }

std::string short_shape_str(const Shape& shape) {
  if (shape.size() <= 16) return shape_str(shape);
  std::string s = "[";
  for (size_t i = 0; i < 8; ++i) s += str_cat(shape[i], ", ");
  return s + str_cat("... (", shape.size(), " dimensions)]");
}

std::string where(const std::string& path) { return str_cat("checkpoint ", show(path)); }

[[noreturn]] void throw_file_error(const std::string& path, const std::string& reason, int err) {
  throw FileError(str_cat(where(path), ": ", reason), err, path, reason);
}

// An OS call failed with errno `err`: the reason ends with its description.
[[noreturn]] void throw_os(const std::string& path, const std::string& what, int err) {
  if (err == 0) err = EIO;
  throw_file_error(path, str_cat(what, ": ", std::generic_category().message(err)), err);
}

// The OS call just made failed: errno is read before any message is built
// (building one allocates, which may change errno).
[[noreturn]] void throw_last_error(const std::string& path, const char* what) {
  const int err = errno;
  throw_os(path, what, err);
}

void check_path(const std::string& path) {
  CF_CHECK_VALUE(!path.empty(), "checkpoint path is empty");
  CF_CHECK_VALUE(path.find('\0') == std::string::npos, where(path), ": path contains a NUL byte");
}

// ============================================================================
// Reading
// ============================================================================

class InputFile {
 public:
  explicit InputFile(const std::string& path) : path_(path) {
    do fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    while (fd_ < 0 && errno == EINTR);
    if (fd_ < 0) throw_last_error(path, "cannot open for reading");
    struct stat st;
    if (::fstat(fd_, &st) != 0) throw_last_error(path, "cannot stat");
    if (S_ISDIR(st.st_mode)) throw_os(path, "cannot read", EISDIR);
    if (!S_ISREG(st.st_mode))
      throw_file_error(path, "not a regular file", EINVAL);
    size_ = static_cast<int64_t>(st.st_size);
  }
  ~InputFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  int64_t size() const { return size_; }

  // Reads exactly n bytes at `offset`; the caller has checked the range
  // against size(), so a short read means the file shrank meanwhile.
  void read_at(int64_t offset, void* dst, int64_t n) const {
    auto* p = static_cast<unsigned char*>(dst);
    while (n > 0) {
      const size_t want = static_cast<size_t>(std::min<int64_t>(n, int64_t{1} << 30));
      const ssize_t r = ::pread(fd_, p, want, static_cast<off_t>(offset));
      if (r < 0) {
        const int err = errno;
        if (err == EINTR) continue;
        throw_os(path_, str_cat("read of ", want, " bytes at offset ", offset, " failed"), err);
      }
      if (r == 0)
        throw_file_error(path_, str_cat("unexpected end of file at offset ", offset,
                                        " (was the file truncated while being read?)"),
                         EIO);
      p += r;
      offset += r;
      n -= r;
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  int64_t size_ = 0;
};

struct Entry {
  std::string name;
  const DTypeInfo* dtype;
  Shape shape;
  int64_t numel;
  int64_t begin, end;  // byte range within the data buffer
};

struct Header {
  std::vector<Entry> entries;
  Metadata metadata;
  int64_t data_start = 0;  // file offset of the data buffer
  int64_t data_size = 0;
};

Metadata parse_metadata(const std::string& path, const Json& j) {
  CF_CHECK_VALUE(j.is_object(), where(path), ": \"__metadata__\" is a JSON ", j.type_name(),
                 ", expected an object of strings");
  Metadata out;
  out.reserve(j.size());
  for (const auto& [key, value] : j.as_object()) {
    CF_CHECK_VALUE(value.is_string(), where(path), ": metadata value for key ", show(key), " is a JSON ",
                   value.type_name(), ", expected a string");
    out.emplace_back(key, value.as_string());
  }
  return out;
}

Entry parse_entry(const std::string& path, std::string name, const Json& j, int64_t data_size) {
  // Messages are built only on failure (headers can hold millions of entries).
  const auto ctx = [&]() { return str_cat(where(path), ": tensor ", show(name), ": "); };
  CF_CHECK_VALUE(j.is_object(), ctx(), "entry is a JSON ", j.type_name(),
                 ", expected an object with \"dtype\", \"shape\" and \"data_offsets\"");
  const Json* dtype = j.find("dtype");
  const Json* shape = j.find("shape");
  const Json* offsets = j.find("data_offsets");
  CF_CHECK_VALUE(dtype, ctx(), "missing \"dtype\"");
  CF_CHECK_VALUE(shape, ctx(), "missing \"shape\"");
  CF_CHECK_VALUE(offsets, ctx(), "missing \"data_offsets\"");

  Entry e;
  CF_CHECK_VALUE(dtype->is_string(), ctx(), "dtype is a JSON ", dtype->type_name(), ", expected a string");
  e.dtype = find_dtype(dtype->as_string());
  CF_CHECK_VALUE(e.dtype, ctx(), "unsupported dtype ", show(dtype->as_string()), " (supported: ", supported_dtypes(),
                 ")");

  CF_CHECK_VALUE(shape->is_array(), ctx(), "shape is a JSON ", shape->type_name(),
                 ", expected an array of non-negative integers");
  e.shape.reserve(shape->size());
  for (const Json& d : shape->as_array()) {
    CF_CHECK_VALUE(d.is_int(), ctx(), "shape has a JSON ", d.type_name(),
                   " element, expected an array of non-negative integers");
    e.shape.push_back(d.as_int());
  }
  // Element count. The product of the non-zero dimensions must stay small
  // enough that numel * 8 fits in int64, whatever order the dims come in.
  const int64_t limit = std::numeric_limits<int64_t>::max() / 8;
  int64_t nonzero_product = 1;
  bool has_zero = false;
  for (int64_t d : e.shape) {
    CF_CHECK_VALUE(d >= 0, ctx(), "shape ", short_shape_str(e.shape), " has a negative dimension");
    if (d == 0) {
      has_zero = true;
      continue;
    }
    CF_CHECK_VALUE(nonzero_product <= limit / d, ctx(), "shape ", short_shape_str(e.shape),
                   " has too many elements");
    nonzero_product *= d;
  }
  e.numel = has_zero ? 0 : nonzero_product;
  const int64_t nbytes = e.numel * e.dtype->size;  // cannot overflow: numel <= INT64_MAX / 8

  const auto offsets_error = [&]() {
    return ValueError(str_cat(ctx(), "data_offsets must be an array of 2 non-negative integers [begin, end], got ",
                              offsets->is_array() ? str_cat("an array of ", offsets->size(), " elements")
                                                  : str_cat("a JSON ", offsets->type_name())));
  };
  if (!offsets->is_array() || offsets->size() != 2) throw offsets_error();
  const Json& jb = (*offsets)[0];
  const Json& je = (*offsets)[1];
  if (!jb.is_int() || !je.is_int() || jb.as_int() < 0 || je.as_int() < 0) throw offsets_error();
  e.begin = jb.as_int();
  e.end = je.as_int();
  const auto range = [&]() { return str_cat("data_offsets [", e.begin, ", ", e.end, "]"); };
  CF_CHECK_VALUE(e.begin <= e.end, ctx(), range(), " are reversed (begin > end)");
  CF_CHECK_VALUE(e.end - e.begin == nbytes, ctx(), range(), " do not match shape ", short_shape_str(e.shape), " of ",
                 e.dtype->name, " (", nbytes, " bytes)");
  CF_CHECK_VALUE(e.end <= data_size, ctx(), range(), " extend past the end of the data buffer (", data_size,
                 " bytes after the header)");
  e.name = std::move(name);
  return e;
}

// No tensor format in use goes near this many dimensions (NumPy and PyTorch
// stop at 64); it bounds every array in a header.
constexpr size_t kMaxRank = 1024;

Header read_header(const std::string& path, const InputFile& file) {
  const int64_t size = file.size();
  CF_CHECK_VALUE(size >= 8, where(path), ": file is ", size,
                 " bytes, too small to be a safetensors file (the header length alone takes 8)");
  unsigned char len_bytes[8];
  file.read_at(0, len_bytes, 8);
  const uint64_t header_len = load_le<8>(len_bytes);
  CF_CHECK_VALUE(header_len <= static_cast<uint64_t>(size - 8), where(path), ": header length ", header_len,
                 " exceeds the ", size - 8, " bytes that follow it (truncated or not a safetensors file)");
  CF_CHECK_VALUE(header_len <= static_cast<uint64_t>(kSafetensorsMaxHeaderBytes), where(path), ": header length ",
                 header_len, " exceeds the limit of ", kSafetensorsMaxHeaderBytes, " bytes");

  std::string text(static_cast<size_t>(header_len), '\0');
  if (header_len) file.read_at(8, text.data(), static_cast<int64_t>(header_len));
  // The header must be an object (checked up front for a clear message).
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] != '{') {
    const char c = text[first];
    throw ValueError(str_cat(where(path), ": header is ",
                             c == '[' ? "a JSON array" : c == '"' ? "a JSON string" : "not a JSON object",
                             ", expected a JSON object of tensor entries"));
  }
  // Its only arrays are shapes and offsets.
  JsonLimits limits;
  limits.max_array_size = kMaxRank;
  Header h;
  h.data_start = 8 + static_cast<int64_t>(header_len);
  h.data_size = size - h.data_start;
  // Each entry is validated as soon as it is parsed, so a hostile header
  // fails at its first bad entry and never becomes a large document.
  struct EntryError {
    ValueError error;
  };
  try {
    Json::parse_members(
        text,
        [&](std::string&& name, Json&& value) {
          try {
            if (name == "__metadata__")
              h.metadata = parse_metadata(path, value);
            else
              h.entries.push_back(parse_entry(path, std::move(name), value, h.data_size));
          } catch (const ValueError& e) {
            throw EntryError{e};
          }
        },
        limits);
  } catch (const EntryError& e) {
    throw e.error;
  } catch (const ValueError& e) {
    throw ValueError(str_cat(where(path), ": header is not valid JSON: ", e.what()));
  }

  // No two tensors may share bytes (empty tensors own no bytes).
  std::vector<const Entry*> by_offset;
  for (const Entry& e : h.entries)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const Entry& a = *by_offset[k - 1];
    const Entry& b = *by_offset[k];
    CF_CHECK_VALUE(b.begin >= a.end, where(path), ": tensors ", show(a.name), " (data_offsets [", a.begin, ", ",
                   a.end, "]) and ", show(b.name), " (data_offsets [", b.begin, ", ", b.end, "]) overlap");
  }
  return h;
}

Tensor read_tensor(const InputFile& file, const Header& h, const Entry& e) {
  Tensor t = Tensor::empty(e.shape);  // numel <= data buffer size, validated
  if (e.numel == 0) return t;
  const int64_t offset = h.data_start + e.begin;
  if (e.dtype->dtype == StDType::F32 && host_is_little_endian()) {
    file.read_at(offset, t.data(), e.end - e.begin);
    return t;
  }
  // Other dtypes: convert through a bounded scratch buffer.
  const int64_t item = e.dtype->size;
  const int64_t chunk_elems = std::min<int64_t>(e.numel, (int64_t{1} << 20) / item);
  std::vector<unsigned char> scratch(static_cast<size_t>(chunk_elems * item));
  for (int64_t done = 0; done < e.numel; done += chunk_elems) {
    const int64_t n = std::min(chunk_elems, e.numel - done);
    file.read_at(offset + done * item, scratch.data(), n * item);
    convert_to_float(e.dtype->dtype, scratch.data(), n, t.data() + done);
  }
  return t;
}

// ============================================================================
// Writing
// ============================================================================

uint64_t random_suffix() {
  static std::atomic<uint64_t> counter{0};
  uint64_t x = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  x ^= (counter.fetch_add(1) + 1) * 0x9E3779B97F4A7C15ull;
  try {
    std::random_device rd;
    x ^= (static_cast<uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {
    // No entropy source: the clock and counter still make collisions unlikely,
    // and O_EXCL plus retries handle the rest.
  }
  // splitmix64 finaliser
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::string directory_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// A temporary file beside the destination; removed on destruction unless
// committed.
class TempFile {
 public:
  explicit TempFile(const std::string& dest) : dest_(dest) {
    for (int attempt = 0;; ++attempt) {
      char suffix[40];
      std::snprintf(suffix, sizeof suffix, ".tmp-%ld-%012llx", static_cast<long>(::getpid()),
                    static_cast<unsigned long long>(random_suffix() & 0xFFFFFFFFFFFFull));
      path_ = dest + suffix;
      int fd;
      do fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      while (fd < 0 && errno == EINTR);
      if (fd >= 0) {
        file_ = ::fdopen(fd, "wb");
        if (!file_) {
          const int err = errno;
          ::close(fd);
          ::unlink(path_.c_str());
          throw_os(dest_, "cannot open temporary file " + show(path_), err);
        }
        return;
      }
      const int err = errno;
      if (err != EEXIST || attempt >= 16) throw_os(dest_, "cannot create temporary file " + show(path_), err);
    }
  }
  ~TempFile() {
    if (file_) std::fclose(file_);
    if (!committed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const void* data, size_t n) {
    errno = 0;
    if (n && std::fwrite(data, 1, n, file_) != n) {
      const int err = errno;
      throw_os(dest_, "write to " + show(path_) + " failed", err);
    }
  }

  // Flush, fsync, close, rename over the destination, fsync the directory.
  void commit() {
    errno = 0;
    if (std::fflush(file_) != 0) {
      const int err = errno;
      throw_os(dest_, "write to " + show(path_) + " failed", err);
    }
    if (::fsync(::fileno(file_)) != 0) {
      const int err = errno;
      throw_os(dest_, "fsync of " + show(path_) + " failed", err);
    }
    FILE* f = file_;
    file_ = nullptr;
    errno = 0;
    if (std::fclose(f) != 0) {
      const int err = errno;
      throw_os(dest_, "closing " + show(path_) + " failed", err);
    }
    if (std::rename(path_.c_str(), dest_.c_str()) != 0) {
      const int err = errno;
      throw_os(dest_, "cannot rename " + show(path_) + " over it", err);
    }
    committed_ = true;
    sync_directory();
  }

 private:
  void sync_directory() const {
    const std::string dir = directory_of(dest_);
    int fd;
    do fd = ::open(dir.c_str(), O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      const int err = errno;
      throw_os(dest_, "saved, but cannot open its directory " + show(dir) + " to fsync it", err);
    }
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    // Some file systems cannot fsync a directory (EINVAL): nothing more to do.
    if (rc != 0 && err != EINVAL && err != ENOTSUP)
      throw_os(dest_, "saved, but fsync of its directory " + show(dir) + " failed", err);
  }

  std::string dest_;
  std::string path_;
  FILE* file_ = nullptr;
  bool committed_ = false;
};

std::string build_header(const std::string& path, const std::vector<NamedTensor>& tensors, const Metadata& metadata) {
  std::unordered_set<std::string_view> names;
  names.reserve(tensors.size());
  for (size_t k = 0; k < tensors.size(); ++k) {
    const NamedTensor& t = tensors[k];
    CF_CHECK_VALUE(!t.name.empty(), where(path), ": tensor ", k, " has an empty name");
    CF_CHECK_VALUE(t.name != "__metadata__", where(path), ": \"__metadata__\" is reserved and cannot name a tensor");
    CF_CHECK_VALUE(names.insert(t.name).second, where(path), ": duplicate tensor name ", show(t.name));
    if (t.is_raw()) {
      const int64_t item = t.raw_dtype == "I8" ? 1 : 2;
      CF_CHECK_VALUE(t.raw_dtype == "I8" || t.raw_dtype == "BF16", where(path), ": tensor ", show(t.name),
                     ": raw dtype must be \"I8\" or \"BF16\", got ", show(t.raw_dtype));
      CF_CHECK_VALUE(static_cast<int64_t>(t.raw->size()) == shape_numel(t.raw_shape) * item, where(path), ": tensor ",
                     show(t.name), ": ", t.raw->size(), " bytes of ", t.raw_dtype, " for shape ",
                     shape_str(t.raw_shape));
      continue;
    }
    CF_CHECK_VALUE(t.value.defined(), where(path), ": tensor ", show(t.name), " is undefined (has no storage)");
  }
  std::unordered_set<std::string_view> keys;
  for (const auto& kv : metadata)
    CF_CHECK_VALUE(keys.insert(kv.first).second, where(path), ": duplicate metadata key ", show(kv.first));

  Json header = Json::object();
  Json::Object& members = header.as_object();
  members.reserve(tensors.size() + 1);
  if (!metadata.empty()) {
    Json meta = Json::object();
    Json::Object& m = meta.as_object();
    m.reserve(metadata.size());
    for (const auto& [k, v] : metadata) m.emplace_back(k, Json(v));
    members.emplace_back("__metadata__", std::move(meta));
  }
  int64_t offset = 0;
  for (const NamedTensor& t : tensors) {
    const int64_t nbytes = t.is_raw() ? static_cast<int64_t>(t.raw->size())
                                      : t.value.numel() * static_cast<int64_t>(sizeof(float));
    Json entry = Json::object();
    Json::Object& e = entry.as_object();
    e.emplace_back("dtype", Json(t.is_raw() ? t.raw_dtype : std::string("F32")));
    const Shape& tshape = t.is_raw() ? t.raw_shape : t.value.shape();
    Json::Array shape(tshape.begin(), tshape.end());
    e.emplace_back("shape", Json(std::move(shape)));
    e.emplace_back("data_offsets", Json(Json::Array{Json(offset), Json(offset + nbytes)}));
    members.emplace_back(t.name, std::move(entry));
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const ValueError& e) {
    throw ValueError(str_cat(where(path), ": cannot write the header: ", e.what()));
  }
  // Pad with spaces so the data buffer starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  CF_CHECK_VALUE(static_cast<int64_t>(text.size()) <= kSafetensorsMaxHeaderBytes, where(path), ": header of ",
                 text.size(), " bytes exceeds the limit of ", kSafetensorsMaxHeaderBytes, " bytes");
  return text;
}

}  // namespace

void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors, const Metadata& metadata) {
  check_path(path);
  const std::string header = build_header(path, tensors, metadata);  // validates; touches no file

  TempFile tmp(path);
  unsigned char len_bytes[8];
  const uint64_t n = header.size();
  for (int k = 0; k < 8; ++k) len_bytes[k] = static_cast<unsigned char>(n >> (8 * k));
  tmp.write(len_bytes, 8);
  tmp.write(header.data(), header.size());
  const bool little = host_is_little_endian();
  std::vector<unsigned char> scratch;
  for (const NamedTensor& t : tensors) {
    if (t.is_raw()) {
      if (t.raw->empty()) continue;
      if (little || t.raw_dtype == "I8") {
        tmp.write(t.raw->data(), t.raw->size());
      } else {  // BF16 on a big-endian host: swap each element's bytes
        std::vector<uint8_t> swapped(*t.raw);
        for (size_t k = 0; k + 1 < swapped.size(); k += 2) std::swap(swapped[k], swapped[k + 1]);
        tmp.write(swapped.data(), swapped.size());
      }
      continue;
    }
    const size_t numel = static_cast<size_t>(t.value.numel());
    if (little) {
      tmp.write(t.value.data(), numel * sizeof(float));
      continue;
    }
    scratch.resize(std::min<size_t>(numel, 1 << 18) * 4);
    for (size_t done = 0; done < numel;) {
      const size_t m = std::min<size_t>(numel - done, scratch.size() / 4);
      for (size_t k = 0; k < m; ++k) {
        uint32_t bits;
        std::memcpy(&bits, t.value.data() + done + k, 4);
        for (int b = 0; b < 4; ++b) scratch[4 * k + b] = static_cast<unsigned char>(bits >> (8 * b));
      }
      tmp.write(scratch.data(), m * 4);
      done += m;
    }
  }
  tmp.commit();
}

SafetensorsContent load_safetensors(const std::string& path, bool keep_low_precision) {
  check_path(path);
  InputFile file(path);
  Header h = read_header(path, file);
  SafetensorsContent out;
  out.tensors.reserve(h.entries.size());
  for (const Entry& e : h.entries) {
    const bool raw = keep_low_precision && (e.dtype->dtype == StDType::I8 || e.dtype->dtype == StDType::BF16);
    if (!raw) {
      out.tensors.push_back({e.name, read_tensor(file, h, e)});
      continue;
    }
    NamedTensor t;
    t.name = e.name;
    t.raw_dtype = e.dtype->name;
    t.raw_shape = e.shape;
    t.raw = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(e.end - e.begin));
    if (e.end > e.begin) file.read_at(h.data_start + e.begin, t.raw->data(), e.end - e.begin);
    if (e.dtype->dtype == StDType::BF16 && !host_is_little_endian())
      for (size_t k = 0; k + 1 < t.raw->size(); k += 2) std::swap((*t.raw)[k], (*t.raw)[k + 1]);
    out.tensors.push_back(std::move(t));
  }
  out.metadata = std::move(h.metadata);
  return out;
}

Metadata read_safetensors_metadata(const std::string& path) {
  check_path(path);
  InputFile file(path);
  return read_header(path, file).metadata;
}

}  // namespace cpuformer
