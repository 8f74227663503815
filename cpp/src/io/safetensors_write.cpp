// Writing safetensors files (cpuformer/io/safetensors.hpp): the arguments
// and header are validated before any file is touched, the data goes to a
// temporary file beside the destination, which then replaces it atomically.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cpuformer/io/json.hpp"
#include "cpuformer/io/safetensors.hpp"
#include "safetensors_internal.hpp"

namespace cpuformer {

using namespace detail::safetensors_io;

namespace {

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

}  // namespace cpuformer
