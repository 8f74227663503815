// Reading safetensors files (cpuformer/io/safetensors.hpp): the header is
// parsed and every field validated against the file size before anything is
// allocated or read; tensors are then read and converted to float32.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <string_view>
#include <utility>
#include <vector>

#include "cpuformer/io/json.hpp"
#include "cpuformer/io/safetensors.hpp"
#include "safetensors_internal.hpp"

namespace cpuformer {

using namespace detail::safetensors_io;

namespace {

std::string short_shape_str(const Shape& shape) {
  if (shape.size() <= 16) return shape_str(shape);
  std::string s = "[";
  for (size_t i = 0; i < 8; ++i) s += str_cat(shape[i], ", ");
  return s + str_cat("... (", shape.size(), " dimensions)]");
}

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

}  // namespace

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
