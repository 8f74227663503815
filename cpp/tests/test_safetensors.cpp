// safetensors checkpoints: round trips, conversions from every dtype,
// corrupt files that must be rejected, and atomic, validated saves.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "check.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/io/json.hpp"
#include "cpuformer/io/safetensors.hpp"
#include "cpuformer/tensor.hpp"

using namespace cpuformer;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Files go to the working directory (the build tree under ctest), named per
// process so parallel runs do not collide.
std::string scratch_path(const std::string& stem) {
  return "test_safetensors_" + std::to_string(static_cast<long>(::getpid())) + "_" + stem + ".safetensors";
}

void write_bytes(const std::string& path, const std::string& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error("cannot create " + path);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

std::string read_bytes(const std::string& path) {
  std::string out;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int k = 0; k < 8; ++k) s[k] = static_cast<char>(v >> (8 * k));
  return s;
}

// A safetensors file from a header text and a data buffer, written by hand.
std::string raw_file(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

template <class T>
std::string bytes_of(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());  // tests run on little-endian hosts
  return s;
}

int count_temp_files(const std::string& stem) {
  int n = 0;
  DIR* d = ::opendir(".");
  if (!d) return -1;
  while (dirent* e = ::readdir(d))
    if (std::string(e->d_name).rfind(stem, 0) == 0 && contains(e->d_name, ".tmp-")) ++n;
  ::closedir(d);
  return n;
}

Tensor iota(const Shape& shape, float start) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = start + 0.25f * static_cast<float>(i);
  return t;
}

}  // namespace

CF_TEST(safetensors_round_trip) {
  const std::string path = scratch_path("roundtrip");
  std::vector<NamedTensor> tensors = {
      {"blocks.0.attn.weight", iota({3, 5}, -1.0f)},
      {"scalar", iota({}, 42.0f)},
      {"empty", Tensor::empty({0, 4})},
      {"odd", iota({1, 7, 1, 3}, 0.5f)},
      {"caf\xc3\xa9 \xe6\x9d\x83\xe9\x87\x8d", iota({2}, 7.0f)},
  };
  tensors[0].value.data()[3] = std::numeric_limits<float>::infinity();
  tensors[0].value.data()[4] = -0.0f;
  const Metadata meta = {{"format", "pt"}, {"config", R"({"n_layer": 2})"}, {"", "empty key"}};
  save_safetensors(path, tensors, meta);

  const SafetensorsContent c = load_safetensors(path);
  CHECK(c.tensors.size() == tensors.size());
  for (size_t k = 0; k < tensors.size() && k < c.tensors.size(); ++k) {
    CHECK(c.tensors[k].name == tensors[k].name);
    CHECK(c.tensors[k].value.shape() == tensors[k].value.shape());
    CHECK(std::memcmp(c.tensors[k].value.data(), tensors[k].value.data(),
                      sizeof(float) * static_cast<size_t>(tensors[k].value.numel())) == 0);
  }
  CHECK(c.metadata == meta);
  CHECK(read_safetensors_metadata(path) == meta);

  // The layout: header padded to 8 bytes, tensors contiguous in order.
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(bytes[k]);
  CHECK(n % 8 == 0);
  const Json header = Json::parse(bytes.substr(8, n));
  CHECK(header.as_object()[0].first == "__metadata__");
  CHECK(header["blocks.0.attn.weight"]["data_offsets"] == Json::parse("[0, 60]"));
  CHECK(header["scalar"]["shape"] == Json::array());
  CHECK(header["scalar"]["data_offsets"] == Json::parse("[60, 64]"));
  CHECK(header["empty"]["data_offsets"] == Json::parse("[64, 64]"));
  CHECK(bytes.size() == 8 + n + 4 * (15 + 1 + 0 + 21 + 2));

  // Without metadata there is no "__metadata__" entry.
  save_safetensors(path, {{"x", iota({2}, 1.0f)}});
  CHECK(load_safetensors(path).metadata.empty());
  CHECK(!contains(read_bytes(path), "__metadata__"));
  save_safetensors(path, {});
  CHECK(load_safetensors(path).tensors.empty());
  std::remove(path.c_str());
}

CF_TEST(safetensors_converts_every_dtype_to_float32) {
  const std::string path = scratch_path("dtypes");
  std::string data;
  std::string header = "{";
  auto add = [&](const char* name, const char* dtype, const std::string& shape, const std::string& bytes) {
    header += str_cat(header.size() > 1 ? "," : "", "\"", name, "\":{\"dtype\":\"", dtype, "\",\"shape\":", shape,
                      ",\"data_offsets\":[", data.size(), ",", data.size() + bytes.size(), "]}");
    data += bytes;
  };
  add("f64", "F64", "[2]", bytes_of(std::vector<double>{0.1, -1e300}));
  add("f16", "F16", "[6]", bytes_of(std::vector<uint16_t>{0x3C00, 0xC000, 0x0001, 0x7C00, 0x8000, 0x3555}));
  add("bf16", "BF16", "[2]", bytes_of(std::vector<uint16_t>{0x3F80, 0xC0A0}));
  add("i64", "I64", "[2]", bytes_of(std::vector<int64_t>{-5, int64_t{1} << 40}));
  add("i32", "I32", "[1]", bytes_of(std::vector<int32_t>{-70000}));
  add("i16", "I16", "[1]", bytes_of(std::vector<int16_t>{-300}));
  add("i8", "I8", "[1]", bytes_of(std::vector<int8_t>{-128}));
  add("u8", "U8", "[1]", bytes_of(std::vector<uint8_t>{255}));
  add("u16", "U16", "[1]", bytes_of(std::vector<uint16_t>{65535}));
  add("u32", "U32", "[1]", bytes_of(std::vector<uint32_t>{4000000000u}));
  add("u64", "U64", "[1]", bytes_of(std::vector<uint64_t>{uint64_t{1} << 63}));
  add("bool", "BOOL", "[3]", bytes_of(std::vector<uint8_t>{0, 1, 2}));
  header += ",\"__metadata__\":{\"k\":\"v\"},\"extra\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[" +
            std::to_string(data.size()) + "," + std::to_string(data.size() + 4) + "],\"ignored\":1}}     ";
  data += bytes_of(std::vector<float>{2.5f});
  write_bytes(path, raw_file(header, data));

  const SafetensorsContent c = load_safetensors(path);
  auto get = [&](const std::string& name) -> const Tensor& {
    for (const NamedTensor& t : c.tensors)
      if (t.name == name) return t.value;
    throw Error("missing " + name);
  };
  CHECK(get("f64").data()[0] == 0.1f && std::isinf(get("f64").data()[1]));
  const float* h = get("f16").data();
  CHECK(h[0] == 1.0f && h[1] == -2.0f && h[2] == std::ldexp(1.0f, -24) && std::isinf(h[3]) && h[3] > 0);
  CHECK(h[4] == 0.0f && std::signbit(h[4]));
  CHECK_NEAR(h[5], 1.0 / 3.0, 1e-3);
  CHECK(get("bf16").data()[0] == 1.0f && get("bf16").data()[1] == -5.0f);
  CHECK(get("i64").data()[0] == -5.0f && get("i64").data()[1] == std::ldexp(1.0f, 40));
  CHECK(get("i32").data()[0] == -70000.0f && get("i16").data()[0] == -300.0f && get("i8").data()[0] == -128.0f);
  CHECK(get("u8").data()[0] == 255.0f && get("u16").data()[0] == 65535.0f && get("u32").data()[0] == 4e9f);
  CHECK(get("u64").data()[0] == std::ldexp(1.0f, 63));
  CHECK(get("bool").data()[0] == 0.0f && get("bool").data()[1] == 1.0f && get("bool").data()[2] == 1.0f);
  CHECK(get("extra").dim() == 0 && get("extra").data()[0] == 2.5f);
  CHECK((c.metadata == Metadata{{"k", "v"}}));
  std::remove(path.c_str());
}

CF_TEST(safetensors_rejects_corrupt_files) {
  const std::string path = scratch_path("corrupt");
  const std::string good_header = R"({"w":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]}})";
  const std::string good_data(48, '\x01');
  const std::string good = raw_file(good_header, good_data);
  write_bytes(path, good);
  CHECK(load_safetensors(path).tensors.size() == 1);

  // Truncated anywhere: a ValueError (never a crash or a huge allocation).
  for (size_t cut = 0; cut < good.size(); ++cut) {
    write_bytes(path, good.substr(0, cut));
    bool value_error = false;
    try {
      load_safetensors(path);
    } catch (const ValueError&) {
      value_error = true;
    }
    if (!value_error) std::printf("  truncation at %zu not rejected\n", cut);
    CHECK(value_error);
  }

  struct Case {
    std::string bytes;
    const char* expect;  // part of the message
  };
  const auto entry = [&](const std::string& fields) { return raw_file("{\"w\":{" + fields + "}}", good_data); };
  const Case cases[] = {
      {le64(~uint64_t{0}) + good_header, "header length"},
      {le64(uint64_t{1} << 62) + std::string(100, ' '), "header length"},
      {raw_file("{\"w\":", good_data), "not valid JSON"},
      {raw_file("[1,2]", good_data), "header is a JSON array"},
      {raw_file(" \"w\"", good_data), "header is a JSON string"},
      {raw_file("48", good_data), "header is not a JSON object"},
      {raw_file("   ", good_data), "not valid JSON"},
      {raw_file(R"({"w":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]}} x)", good_data), "not valid JSON"},
      {raw_file("", good_data), "not valid JSON"},
      {entry(R"("dtype":"F7","shape":[3,4],"data_offsets":[0,48])"), "unsupported dtype 'F7'"},
      {entry(R"("dtype":1,"shape":[3,4],"data_offsets":[0,48])"), "dtype is a JSON int"},
      {entry(R"("shape":[3,4],"data_offsets":[0,48])"), "missing \"dtype\""},
      {entry(R"("dtype":"F32","data_offsets":[0,48])"), "missing \"shape\""},
      {entry(R"("dtype":"F32","shape":[3,4])"), "missing \"data_offsets\""},
      {entry(R"("dtype":"F32","shape":[-3,-4],"data_offsets":[0,48])"), "negative dimension"},
      {entry(R"("dtype":"F32","shape":[3,4.0],"data_offsets":[0,48])"), "shape has a JSON double"},
      {entry(R"("dtype":"F32","shape":12,"data_offsets":[0,48])"), "shape is a JSON int"},
      {entry(R"("dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0])"), "too many elements"},
      {entry(R"("dtype":"F32","shape":[3,4],"data_offsets":[0,10])"),
       "data_offsets [0, 10] do not match shape [3, 4] of F32 (48 bytes)"},
      {entry(R"("dtype":"F32","shape":[3,4],"data_offsets":[48,0])"), "reversed"},
      {entry(R"("dtype":"F32","shape":[3,4],"data_offsets":[-48,0])"), "data_offsets must be"},
      {entry(R"("dtype":"F32","shape":[3,4],"data_offsets":[0])"), "data_offsets must be"},
      {entry(R"("dtype":"F32","shape":[3,4],"data_offsets":[0,48,96])"), "data_offsets must be"},
      {entry(R"("dtype":"F32","shape":[3,4],"data_offsets":[0.0,48])"), "data_offsets must be"},
      {entry(R"("dtype":"F32","shape":[3,4],"data_offsets":"0,48")"), "data_offsets must be"},
      {entry(R"("dtype":"F32","shape":[3,5],"data_offsets":[0,60])"), "extend past the end"},
      {entry(R"("dtype":"F32","shape":[3,4],"data_offsets":[4,52])"), "extend past the end"},
      {raw_file(R"({"w":[1]})", good_data), "entry is a JSON array"},
      {raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                R"("b":{"dtype":"F32","shape":[3],"data_offsets":[8,20]}})",
                good_data),
       "overlap"},
      {raw_file(R"({"w":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]},)"
                R"("w":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]}})",
                good_data),
       "duplicate key 'w'"},
      {raw_file(R"({"__metadata__":{"k":1}})", ""), "metadata value for key 'k' is a JSON int"},
      {raw_file(R"({"__metadata__":["k"]})", ""), "\"__metadata__\" is a JSON array"},
      {std::string("\x05\x00\x00", 3), "too small"},
  };
  for (const Case& c : cases) {
    write_bytes(path, c.bytes);
    std::string msg;
    bool value_error = false;
    try {
      load_safetensors(path);
    } catch (const ValueError& e) {
      value_error = true;
      msg = e.what();
    } catch (const std::exception& e) {
      msg = e.what();
    }
    if (!value_error || !contains(msg, c.expect))
      std::printf("  expected ValueError with \"%s\", got \"%s\"\n", c.expect, msg.c_str());
    CHECK(value_error && contains(msg, c.expect) && contains(msg, path));
    CHECK_THROWS(ValueError, read_safetensors_metadata(path));
  }
  std::remove(path.c_str());

  // Missing files and directories are I/O errors naming the path.
  try {
    load_safetensors(path);
    CHECK(false);
  } catch (const FileError& e) {
    CHECK(e.code == ENOENT && contains(e.what(), path));
  }
  CHECK_THROWS(FileError, load_safetensors("."));
  CHECK_THROWS(ValueError, load_safetensors(""));
  CHECK_THROWS(ValueError, load_safetensors(std::string("a\0b", 3)));
}

CF_TEST(safetensors_random_corruption_is_rejected_or_loads) {
  const std::string path = scratch_path("fuzz");
  save_safetensors(path, {{"a", iota({3, 4}, 0)}, {"bb", iota({3}, 1)}, {"c", iota({}, 2)}}, {{"kk", "vv"}});
  const std::string good = read_bytes(path);
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(good[k]);
  uint64_t state = 12345;
  const auto next = [&]() {  // xorshift64
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int loaded = 0, rejected = 0, other = 0;
  for (int iter = 0; iter < 500; ++iter) {
    std::string bad = good;
    const int flips = 1 + static_cast<int>(next() % 3);
    for (int f = 0; f < flips; ++f) bad[next() % (8 + n)] = static_cast<char>(next() & 0xFF);
    write_bytes(path, bad);
    try {
      load_safetensors(path);
      ++loaded;
    } catch (const ValueError&) {
      ++rejected;
    } catch (...) {
      ++other;
    }
  }
  CHECK(other == 0);
  CHECK(rejected > 0);
  std::remove(path.c_str());
}

CF_TEST(safetensors_save_is_atomic_and_validates_first) {
  const std::string stem = "test_safetensors_" + std::to_string(static_cast<long>(::getpid())) + "_atomic";
  const std::string path = stem + ".safetensors";
  save_safetensors(path, {{"keep", iota({4}, 1.0f)}}, {{"v", "1"}});
  const std::string before = read_bytes(path);

  CHECK_THROWS(ValueError, save_safetensors(path, {{"a", iota({1}, 0)}, {"a", iota({1}, 0)}}));
  CHECK(contains(error_of([&] { save_safetensors(path, {{"a", iota({1}, 0)}, {"a", iota({1}, 0)}}); }),
                 "duplicate tensor name 'a'"));
  CHECK_THROWS(ValueError, save_safetensors(path, {{"", iota({1}, 0)}}));
  CHECK_THROWS(ValueError, save_safetensors(path, {{"__metadata__", iota({1}, 0)}}));
  CHECK_THROWS(ValueError, save_safetensors(path, {{"u", Tensor()}}));
  CHECK_THROWS(ValueError, save_safetensors(path, {{"bad\xff", iota({1}, 0)}}));
  CHECK_THROWS(ValueError, save_safetensors(path, {}, {{"k", "1"}, {"k", "2"}}));
  CHECK_THROWS(ValueError, save_safetensors(path, {}, {{"k", "\xc3"}}));
  CHECK(read_bytes(path) == before);

  // A destination that cannot be replaced (a directory): FileError, temp removed.
  const std::string dir_path = stem + "_dir";
  CHECK(::mkdir(dir_path.c_str(), 0755) == 0);
  CHECK_THROWS(FileError, save_safetensors(dir_path, {{"x", iota({2}, 0)}}));
  CHECK(count_temp_files(stem) == 0);
  ::rmdir(dir_path.c_str());
  // A missing directory: FileError naming the path.
  CHECK_THROWS(FileError, save_safetensors(stem + "_nodir/x.safetensors", {{"x", iota({2}, 0)}}));

  // A successful overwrite replaces the content and leaves no temp file.
  save_safetensors(path, {{"new", iota({2, 2}, 3.0f)}});
  const SafetensorsContent c = load_safetensors(path);
  CHECK(c.tensors.size() == 1 && c.tensors[0].name == "new" && c.tensors[0].value.data()[3] == 3.75f);
  CHECK(count_temp_files(path) == 0);
  std::remove(path.c_str());
}

CF_TEST_MAIN()
