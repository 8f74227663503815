// Json: a small, strict JSON value (RFC 8259) with a parser and serializer.
// Used for checkpoint headers and for model configs stored as metadata.
//
//   Json cfg = Json::object();
//   cfg["n_layer"] = 12;
//   cfg["dropout"] = 0.1;
//   cfg["name"] = "gpt2";
//   std::string text = cfg.dump();          // {"n_layer":12,"dropout":0.1,"name":"gpt2"}
//   Json back = Json::parse(text);
//   int64_t n = back["n_layer"].get<int64_t>();
//   double p = back.value("resid_pdrop", 0.0);   // default when missing
//
// Contract:
// - Objects keep their keys in insertion (or document) order; keys are unique.
// - Numbers: integer literals that fit in int64 are Int, everything else (a
//   fraction, an exponent, or an integer outside int64) is Double.
// - Strings are UTF-8. The parser validates UTF-8, decodes escapes including
//   \uXXXX and surrogate pairs, and rejects lone surrogates.
// - The parser is strict: no comments, trailing commas, leading zeros, NaN,
//   duplicate keys, control characters in strings, or trailing content other
//   than whitespace; nesting is limited (64 levels by default, see JsonLimits).
//   Malformed input throws ValueError naming the line, column and byte offset.
// - Accessors throw ValueError naming the expected and actual type; a missing
//   key throws ValueError naming the key; an array index out of range throws
//   IndexError.
// - dump() throws ValueError for NaN/Inf numbers and for strings that are not
//   valid UTF-8 (neither can be written as JSON).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpuformer/error.hpp"

namespace cpuformer {

// Bounds on what Json::parse accepts (untrusted input stays cheap to reject).
struct JsonLimits {
  int max_depth = 64;                                        // nesting of arrays/objects
  size_t max_array_size = std::numeric_limits<size_t>::max();  // elements of any one array
};

class Json {
 public:
  enum class Type : uint8_t { Null, Bool, Int, Double, String, Array, Object };
  using Array = std::vector<Json>;
  using Member = std::pair<std::string, Json>;
  using Object = std::vector<Member>;

  // ---- construction ----
  Json() noexcept {}
  Json(std::nullptr_t) noexcept {}
  Json(bool b) noexcept : type_(Type::Bool) { v_.b = b; }
  template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                                          !std::is_same_v<T, char>, int> = 0>
  Json(T n) : type_(Type::Int) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(int64_t)) {
      CF_CHECK_VALUE(n <= static_cast<T>(std::numeric_limits<int64_t>::max()), "Json: integer ", n,
                     " does not fit in int64");
    }
    v_.i = static_cast<int64_t>(n);
  }
  Json(double d) noexcept : type_(Type::Double) { v_.d = d; }
  Json(float f) noexcept : Json(static_cast<double>(f)) {}
  Json(const char* s);
  Json(std::string_view s);
  Json(const std::string& s);
  Json(std::string&& s);
  Json(Array a);
  Json(Object o);

  // Json::object({{"n_layer", 12}, {"name", "gpt2"}}), Json::array({1, 2.5, "x"})
  static Json object(Object members = {}) { return Json(std::move(members)); }
  static Json array(Array elements = {}) { return Json(std::move(elements)); }

  Json(const Json& other);
  Json(Json&& other) noexcept;
  Json& operator=(const Json& other);
  Json& operator=(Json&& other) noexcept;
  ~Json();

  // ---- type queries ----
  Type type() const { return type_; }
  // "null", "bool", "int", "double", "string", "array", "object"
  const char* type_name() const;
  static const char* type_name(Type t);
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_int() const { return type_ == Type::Int; }
  bool is_double() const { return type_ == Type::Double; }
  bool is_number() const { return type_ == Type::Int || type_ == Type::Double; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // ---- typed access (ValueError on a type mismatch) ----
  bool as_bool() const;
  int64_t as_int() const;    // Int only: 1.0 is not an integer
  double as_double() const;  // Int or Double
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // get<T>() for bool, any integer type (range-checked), float, double,
  // std::string.
  template <class T>
  T get() const {
    if constexpr (std::is_same_v<T, bool>) {
      return as_bool();
    } else if constexpr (std::is_integral_v<T>) {
      const int64_t n = as_int();
      if constexpr (!std::is_same_v<T, int64_t>) {
        CF_CHECK_VALUE(in_range<T>(n), "Json: integer ", n, " does not fit in the requested type");
      }
      return static_cast<T>(n);
    } else if constexpr (std::is_floating_point_v<T>) {
      return static_cast<T>(as_double());
    } else if constexpr (std::is_same_v<T, std::string>) {
      return as_string();
    } else {
      static_assert(sizeof(T) == 0, "Json::get<T>: T must be bool, an integer, a floating-point type or std::string");
    }
  }

  // get<T>() of a member, or `fallback` when the key is missing or null:
  //   float p = cfg.value("dropout", 0.0f);
  template <class T>
  T value(std::string_view key, T fallback) const {
    as_object();  // ValueError unless this is an object
    const Json* j = find(key);
    return j && !j->is_null() ? j->get<T>() : fallback;
  }
  std::string value(std::string_view key, const char* fallback) const { return value<std::string>(key, fallback); }

  // ---- objects ----
  // Mutable access: a null value becomes an empty object; a missing key is
  // appended with a null value. ValueError if this is neither null nor object.
  Json& operator[](std::string_view key);
  // Const access: ValueError naming the key if it is missing.
  const Json& operator[](std::string_view key) const;
  const Json& at(std::string_view key) const;
  Json& at(std::string_view key);
  // nullptr when the key is missing (or this is not an object).
  const Json* find(std::string_view key) const;
  Json* find(std::string_view key);
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  // Removes a key; returns whether it was present.
  bool erase(std::string_view key);

  // ---- arrays ----
  Json& operator[](size_t index);  // IndexError if out of range
  const Json& operator[](size_t index) const;
  // A null value becomes an empty array first.
  void push_back(Json value);

  // Number of elements of an array or members of an object; 0 for null.
  size_t size() const;
  bool empty() const { return size() == 0; }

  // ---- text ----
  // Compact when indent < 0; otherwise one element per line, indented by
  // `indent` spaces per level.
  std::string dump(int indent = -1) const;
  static Json parse(std::string_view text, const JsonLimits& limits = {});
  // Parses `text`, which must be one JSON object, handing each member to
  // on_member(key, value) as soon as it is parsed instead of building the
  // object: memory stays bounded by what the callback keeps, and a callback
  // that throws stops the parse at the first bad member. Same strictness as
  // parse(); a duplicate key is reported after the last member was handed
  // over, so discard what the callback built when this throws.
  static void parse_members(std::string_view text,
                            const std::function<void(std::string&& key, Json&& value)>& on_member,
                            const JsonLimits& limits = {});

  // Structural equality; objects compare as sets of members (order ignored);
  // Int 1 and Double 1.0 are different values.
  friend bool operator==(const Json& a, const Json& b);
  friend bool operator!=(const Json& a, const Json& b) { return !(a == b); }

 private:
  template <class T>
  static bool in_range(int64_t n) {
    if constexpr (std::is_signed_v<T>) {
      return n >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
             n <= static_cast<int64_t>(std::numeric_limits<T>::max());
    } else {
      return n >= 0 && static_cast<uint64_t>(n) <= static_cast<uint64_t>(std::numeric_limits<T>::max());
    }
  }
  void reset() noexcept;
  [[noreturn]] void type_error(const char* expected) const;

  // Scalars inline; strings and containers on the heap so a value is 16
  // bytes (large documents stay compact).
  Type type_ = Type::Null;
  union {
    bool b;
    int64_t i;
    double d;
    std::string* s;
    Array* a;
    Object* o;
  } v_{};
};

// Whether `s` is valid UTF-8 (no overlong forms, surrogates or code points
// above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// `s` in single quotes for an error message: control bytes and invalid UTF-8
// escaped as \xNN (so the message itself is valid UTF-8), shortened with
// "..." past `max_bytes`.
std::string quote_for_message(std::string_view s, size_t max_bytes = 120);

}  // namespace cpuformer
