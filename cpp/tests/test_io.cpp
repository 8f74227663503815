// JSON value/parser/serializer: building, round trips, malformed and
// hostile input that must be rejected, streaming an object's members. (The
// safetensors checkpoint tests are in test_safetensors.cpp.)
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "check.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/io/json.hpp"

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

}  // namespace

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

CF_TEST_MAIN()
