// JSON value/parser/serializer and safetensors checkpoints: round trips,
// conversions from every dtype, and corrupt files that must be rejected.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
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

bool throws_value_error(const std::string& text) {
  try {
    Json::parse(text);
  } catch (const ValueError&) {
    return true;
  }
  return false;
}

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
  return "test_io_" + std::to_string(static_cast<long>(::getpid())) + "_" + stem + ".safetensors";
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

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

CF_TEST(json_builds_and_dumps_in_insertion_order) {
  Json cfg = Json::object();
  cfg["n_layer"] = 12;
  cfg["dropout"] = 0.1;
  cfg["name"] = "gpt2";
  cfg["tied"] = true;
  cfg["extra"] = nullptr;
  cfg["dims"].push_back(768);
  cfg["dims"].push_back(3072);
  CHECK(cfg.dump() == R"({"n_layer":12,"dropout":0.1,"name":"gpt2","tied":true,"extra":null,"dims":[768,3072]})");
  CHECK(cfg["n_layer"].get<int64_t>() == 12);
  CHECK(cfg["n_layer"].get<int>() == 12);
  CHECK(cfg["dropout"].get<double>() == 0.1);
  CHECK(cfg["n_layer"].get<double>() == 12.0);
  CHECK(cfg["name"].get<std::string>() == "gpt2");
  CHECK(cfg["dims"][1].get<int64_t>() == 3072);
  CHECK(cfg.size() == 6 && cfg.contains("tied") && !cfg.contains("missing"));
  CHECK(cfg.erase("extra") && !cfg.contains("extra") && !cfg.erase("extra"));

  const Json& c = cfg;
  CHECK_THROWS(ValueError, c["missing"]);
  CHECK(contains(error_of([&] { c["missing"]; }), "missing"));
  CHECK_THROWS(ValueError, c["name"].get<int64_t>());
  CHECK_THROWS(ValueError, c["dropout"].get<int64_t>());  // 0.1 is not an integer
  CHECK_THROWS(ValueError, Json(300).get<int8_t>());
  CHECK_THROWS(ValueError, Json(-1).get<uint32_t>());
  CHECK_THROWS(IndexError, c["dims"][2]);
  CHECK_THROWS(ValueError, Json(5)["key"]);
  CHECK_THROWS(ValueError, Json(std::numeric_limits<uint64_t>::max()));

  CHECK(c.value("n_layer", 0) == 12 && c.value("absent", 7) == 7 && c.value("name", "x") == "gpt2");
  CHECK(c.value("absent", "fallback") == "fallback" && c.value("dropout", 0.5f) == 0.1f);
  CHECK_THROWS(ValueError, c.value("name", 0));
  CHECK(Json::object({{"a", 1}, {"b", Json::array({1, 2.5, "x", nullptr, false})}}).dump() ==
        R"({"a":1,"b":[1,2.5,"x",null,false]})");

  // Pretty printing parses back to the same value.
  const std::string pretty = cfg.dump(2);
  CHECK(contains(pretty, "\n  \"n_layer\": 12,\n"));
  CHECK(Json::parse(pretty) == cfg);
}

CF_TEST(json_round_trips_every_kind_of_value) {
  const std::string text =
      R"({"null":null,"t":true,"f":false,"ints":[0,-1,9223372036854775807,-9223372036854775808],)"
      R"("doubles":[0.5,-2.5e-300,1e+300,1.0,-0.0,3.141592653589793],"empty":{},"list":[],)"
      R"("nested":{"a":[{"b":[[]]}]},"str":"tab\tquote\"slash\\nl\nbell\u0007 \u00e9 \ud83d\ude00 \u4e2d"})";
  const Json j = Json::parse(text);
  CHECK(j["ints"][2].get<int64_t>() == std::numeric_limits<int64_t>::max());
  CHECK(j["ints"][3].get<int64_t>() == std::numeric_limits<int64_t>::min());
  CHECK(j["doubles"][3].is_double());  // 1.0 stays a double
  CHECK(std::signbit(j["doubles"][4].get<double>()));
  CHECK(j["str"].get<std::string>() ==
        "tab\tquote\"slash\\nl\nbell\x07 \xc3\xa9 \xf0\x9f\x98\x80 \xe4\xb8\xad");
  const std::string dumped = j.dump();
  CHECK(Json::parse(dumped) == j);
  CHECK(Json::parse(dumped).dump() == dumped);
  CHECK(contains(dumped, R"(nl\nbell\u0007 )"));
  // Doubles print in a form that reads back exactly.
  for (double d : {0.1, 1.0 / 3.0, 6.02214076e23, 5e-324, -1.7976931348623157e308, 100.0}) {
    const Json back = Json::parse(Json(d).dump());
    CHECK(back.is_double() && back.get<double>() == d);
  }
  // Integers beyond int64 become doubles; 2^63 is exact in binary64.
  const Json big = Json::parse("9223372036854775808");
  CHECK(big.is_double() && big.get<double>() == 9223372036854775808.0);
  // Key order is the document's, and equality ignores it.
  CHECK(Json::parse(R"({"b":1,"a":2})").as_object()[0].first == "b");
  CHECK(Json::parse(R"({"b":1,"a":2})") == Json::parse(R"({"a":2,"b":1})"));
  CHECK(Json::parse("1") != Json::parse("1.0"));
  // Whitespace everywhere it is allowed.
  CHECK(Json::parse(" \t\r\n[ 1 , { \"k\" : [ ] } ]\n ") == Json::parse("[1,{\"k\":[]}]"));
}

CF_TEST(json_rejects_malformed_input) {
  const char* bad[] = {
      "", " ", "{", "}", "[", "[1,]", "[,1]", R"({"a":1,})", R"({"a" 1})", R"({1:2})", R"({"a":1 "b":2})",
      "01", "-01", "1.", ".5", "+1", "-", "1e", "1e+", "0x10", "tru", "nul", "falsy", "NaN", "Infinity",
      "-Infinity", "[1 2]", R"("abc)", R"("abc\")", "[1]x", "1 2", "//c\n1", "/*c*/1", "'a'", R"({"a":1,"a":2})",
      R"("\x")", R"("\u12")", R"("\u12g4")", R"("\ud800")", R"("\udc00")", R"("\ud800\u0041")", "\"a\tb\"",
      "\"a\nb\"", "\"\x80\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "1e400",
      "\xef\xbb\xbf{}" /* byte order mark */,
  };
  for (const char* text : bad) {
    if (!throws_value_error(text)) std::printf("  accepted malformed JSON: %s\n", text);
    CHECK(throws_value_error(text));
  }
  CHECK(throws_value_error(std::string("[1]\0", 4)));
  // Duplicate detection also works for large objects (sorted path).
  std::string many = "{";
  for (int k = 0; k < 100; ++k) many += "\"k" + std::to_string(k) + "\":0,";
  CHECK(!throws_value_error(many.substr(0, many.size() - 1) + "}"));
  CHECK(throws_value_error(many + "\"k57\":1}"));
  CHECK(contains(error_of([&] { Json::parse(many + "\"k57\":1}"); }), "duplicate key 'k57'"));
  // Positions are reported as line and column.
  const std::string msg = error_of([] { Json::parse("{\n  \"a\": ]\n}"); });
  CHECK(contains(msg, "line 2, column 8"));
  // Nesting limit.
  CHECK(!throws_value_error(std::string(64, '[') + std::string(64, ']')));
  CHECK(throws_value_error(std::string(65, '[') + std::string(65, ']')));
  CHECK(throws_value_error(std::string(100000, '[')));  // no stack overflow
  CHECK(!throws_value_error(std::string(3, '[') + std::string(3, ']')));
  CHECK_THROWS(ValueError, Json::parse("[[[]]]", JsonLimits{2}));
  CHECK(Json::parse("[[1,2],[3]]", JsonLimits{64, 2}).size() == 2);
  CHECK(contains(error_of([] { Json::parse("[[1,2,3]]", JsonLimits{64, 2}); }), "array longer than 2 elements"));
  // Values JSON cannot hold.
  CHECK_THROWS(ValueError, Json(std::nan("")).dump());
  CHECK_THROWS(ValueError, Json(HUGE_VAL).dump());
  CHECK_THROWS(ValueError, Json(std::string("\xff")).dump());
  // Messages stay valid UTF-8 whatever the input bytes.
  CHECK(is_valid_utf8(error_of([] { Json(std::string("caf\xc3\xa9 \xff")).dump(); })));
  CHECK(quote_for_message("a\xff\n\xc3\xa9") == "'a\\xff\\x0a\xc3\xa9'");
  CHECK(quote_for_message(std::string(200, 'x'), 10) == "'xxxxxxxxxx...'");
  CHECK(is_valid_utf8("\xf0\x9f\x98\x80") && !is_valid_utf8("\xf0\x9f\x98") && !is_valid_utf8("\xed\xa0\x80"));
}

CF_TEST(json_parse_members_streams_an_object) {
  std::vector<std::string> keys;
  int64_t sum = 0;
  Json::parse_members(R"( {"b": 1, "a": {"x": 2}, "c": [3]} )", [&](std::string&& key, Json&& value) {
    keys.push_back(key);
    sum += value.is_int() ? value.get<int64_t>() : value.is_object() ? value["x"].get<int64_t>() : value[0].get<int64_t>();
  });
  CHECK((keys == std::vector<std::string>{"b", "a", "c"}) && sum == 6);
  const auto ignore = [](std::string&&, Json&&) {};
  CHECK_THROWS(ValueError, Json::parse_members(R"({"a":1,"b":2,"a":3})", ignore));
  CHECK_THROWS(ValueError, Json::parse_members("[1]", ignore));
  CHECK_THROWS(ValueError, Json::parse_members(R"({"a":1} {})", ignore));
  CHECK_THROWS(ValueError, Json::parse_members(R"({"a":[1,2,3]})", ignore, JsonLimits{64, 2}));
  // The callback's exception stops the parse at once.
  int calls = 0;
  CHECK_THROWS(IndexError, Json::parse_members(R"({"a":1,"b":2,"c":3})", [&](std::string&&, Json&&) {
    if (++calls == 2) throw IndexError("stop");
  }));
  CHECK(calls == 2);
}

// What the parser checks beyond the grammar, where a JSON library's defaults
// differ (a NUL byte ending the input, a byte order mark skipped, numbers that
// underflow to zero, duplicate keys) and what its messages must stay (short,
// valid UTF-8, with a position).
CF_TEST(json_hostile_input_beyond_the_grammar) {
  // A NUL byte anywhere is an error at its position, not the end of input.
  CHECK(contains(error_of([] { Json::parse(std::string("{\"a\":1}\0{", 9)); }), "(byte 7): NUL byte"));
  CHECK(contains(error_of([] { Json::parse(std::string("[1,\0 2]", 7)); }), "(byte 3): NUL byte"));
  CHECK(throws_value_error(std::string("\"a\0b\"", 5)));
  CHECK(Json::parse("\"a\\u0000b\"").as_string() == std::string("a\0b", 3));  // escaped, it is a character
  // No byte order mark, whole or partial.
  CHECK(throws_value_error("\xef\xbb\xbf[]") && throws_value_error("\xef[]") && throws_value_error(" \xef\xbb\xbf[]"));
  // Numbers whose value is not a finite double, however far out, fail at the
  // literal's start with a bounded message; zero and subnormals stay valid.
  for (const char* text : {"1e-400", "[0, -2e-324]", "1e400", "-1.8e308"}) CHECK(contains(error_of([&] { Json::parse(text); }), "is out of range"));
  CHECK(contains(error_of([] { Json::parse("[0, -2e-324]"); }), "(byte 4)"));
  CHECK(Json::parse("0e-400").as_double() == 0.0 && Json::parse("-0.0e-999").is_double());
  CHECK(Json::parse("3e-324").as_double() == std::numeric_limits<double>::denorm_min());
  const std::string long_number = error_of([] { Json::parse("1" + std::string(1000000, '0')); });
  CHECK(contains(long_number, "(byte 0): number '1000") && long_number.size() < 200);
  const std::string long_tiny = error_of([] { Json::parse("0." + std::string(1000, '0') + "1"); });
  CHECK(contains(long_tiny, "is out of range") && long_tiny.size() < 200);
  // Integers past int64 are doubles, rounded to nearest.
  CHECK(Json::parse("18446744073709551615").as_double() == 18446744073709551616.0);
  CHECK(Json::parse("-9223372036854775809").as_double() == -9223372036854775808.0);
  CHECK(Json::parse("[9223372036854775807]")[0].is_int());
  // Duplicate keys compare decoded, reported at the later key's start.
  CHECK(contains(error_of([] { Json::parse(R"({"a":1,"b":2,"\u0061":3})"); }), "line 1, column 14 (byte 13): duplicate key 'a'"));
  CHECK(contains(error_of([] { Json::parse(R"({"x\"":1,"x\"":2})"); }), "column 10 (byte 9): duplicate key 'x\"'"));
  CHECK(contains(error_of([] { Json::parse(R"({"\\":1,"\\":2})"); }), "column 9 (byte 8): duplicate key '\\'"));
  CHECK(!throws_value_error(R"({"a\\":1,"a":2,"a\"":3,"\\a":4})"));
  CHECK(contains(error_of([] { Json::parse(R"([{"k":{"k":1}}, {"k":1,"k":2}])"); }), "duplicate key 'k'"));
  const auto ignore = [](std::string&&, Json&&) {};
  CHECK(contains(error_of([&] { Json::parse_members(R"({"a":1,"\u0062":2,"b":3})", ignore); }),
                 "column 19 (byte 18): duplicate key 'b'"));
  CHECK(!contains(error_of([&] { Json::parse_members(R"({"a":1,"a\"":2,"\"a":3,"\\a":4})", ignore); }), "duplicate"));
  CHECK(contains(error_of([&] { Json::parse_members(" 7", ignore); }), "column 2 (byte 1): expected an object, got '7'"));
  // Limits are positioned too: the bracket past the depth limit, the
  // element past the array limit.
  CHECK(contains(error_of([] { Json::parse("[[[[]]]]", JsonLimits{3}); }), "(byte 3): nesting deeper than 3 levels"));
  CHECK(contains(error_of([] { Json::parse("[1,[2],{}]", JsonLimits{64, 2}); }), "(byte 7): array longer than 2"));
  // Messages name where the input went wrong, shortened, as valid UTF-8,
  // whatever bytes the input holds.
  const std::string bad_byte = error_of([] { Json::parse("\"" + std::string(100000, 'x') + "caf\xc3\xa9\xff\""); });
  CHECK(contains(bad_byte, "(byte 100006)") && contains(bad_byte, "UTF-8") && contains(bad_byte, "\\xff"));
  CHECK(is_valid_utf8(bad_byte) && bad_byte.size() < 400);
  CHECK(is_valid_utf8(error_of([] { Json::parse("{\"\xe4\xb8\xad\xed\xa0\x80\":1}"); })));
  CHECK(is_valid_utf8(error_of([] { Json::parse("[tr\xf0\x9f]"); })));
  CHECK(contains(error_of([] { Json::parse("\n\n  [1,\n  ]"); }), "line 4, column 3 (byte 10)"));
}

CF_TEST(json_doubles_read_back_exactly) {
  // Every finite double, spelled by dump(), parses back to the same bits.
  uint64_t state = 0x9E3779B97F4A7C15ull;
  int checked = 0;
  for (int k = 0; k < 20000; ++k) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    double d;
    std::memcpy(&d, &state, sizeof d);
    if (!std::isfinite(d)) continue;
    const Json back = Json::parse(Json::array({d}).dump());
    const double b = back[0].get<double>();
    CHECK(back[0].is_double() && std::memcmp(&b, &d, sizeof d) == 0);
    ++checked;
  }
  CHECK(checked > 19000);
  for (double d : {1e23, 1e-5, 1e16, 123456789012345680.0, -0.0, 0.1 + 0.2}) {
    const Json back = Json::parse(Json(d).dump(2));
    CHECK(back.is_double() && back.get<double>() == d && std::signbit(back.get<double>()) == std::signbit(d));
  }
}

// ---------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------

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
  const std::string stem = "test_io_" + std::to_string(static_cast<long>(::getpid())) + "_atomic";
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
