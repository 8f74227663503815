#include "cpuformer/io/json.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <locale>
#include <sstream>

namespace cpuformer {

// ============================================================================
// Value semantics
// ============================================================================

Json::Json(const char* s) : type_(Type::String) {
  CF_CHECK_VALUE(s != nullptr, "Json: null C string");
  v_.s = new std::string(s);
}
Json::Json(std::string_view s) : type_(Type::String) { v_.s = new std::string(s); }
Json::Json(const std::string& s) : type_(Type::String) { v_.s = new std::string(s); }
Json::Json(std::string&& s) : type_(Type::String) { v_.s = new std::string(std::move(s)); }
Json::Json(Array a) : type_(Type::Array) { v_.a = new Array(std::move(a)); }
Json::Json(Object o) : type_(Type::Object) { v_.o = new Object(std::move(o)); }

Json::Json(const Json& other) : type_(other.type_) {
  switch (type_) {
    case Type::String: v_.s = new std::string(*other.v_.s); break;
    case Type::Array: v_.a = new Array(*other.v_.a); break;
    case Type::Object: v_.o = new Object(*other.v_.o); break;
    default: v_ = other.v_; break;
  }
}

Json::Json(Json&& other) noexcept : type_(other.type_), v_(other.v_) {
  other.type_ = Type::Null;
  other.v_.i = 0;
}

Json& Json::operator=(const Json& other) {
  if (this != &other) {
    Json copy(other);  // strong guarantee: copy first, then swap in
    *this = std::move(copy);
  }
  return *this;
}

Json& Json::operator=(Json&& other) noexcept {
  if (this != &other) {
    // `other` may live inside this value (j = std::move(j["child"])): detach
    // it before releasing what this value owns.
    const Type t = other.type_;
    const auto v = other.v_;
    other.type_ = Type::Null;
    other.v_.i = 0;
    reset();
    type_ = t;
    v_ = v;
  }
  return *this;
}

Json::~Json() { reset(); }

void Json::reset() noexcept {
  switch (type_) {
    case Type::String: delete v_.s; break;
    case Type::Array: delete v_.a; break;
    case Type::Object: delete v_.o; break;
    default: break;
  }
  type_ = Type::Null;
  v_.i = 0;
}

const char* Json::type_name(Type t) {
  switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "bool";
    case Type::Int: return "int";
    case Type::Double: return "double";
    case Type::String: return "string";
    case Type::Array: return "array";
    case Type::Object: return "object";
  }
  return "?";
}
const char* Json::type_name() const { return type_name(type_); }

void Json::type_error(const char* expected) const {
  throw ValueError(str_cat("Json: expected ", expected, ", got ", type_name()));
}

bool Json::as_bool() const {
  if (type_ != Type::Bool) type_error("bool");
  return v_.b;
}
int64_t Json::as_int() const {
  if (type_ != Type::Int) type_error("int");
  return v_.i;
}
double Json::as_double() const {
  if (type_ == Type::Int) return static_cast<double>(v_.i);
  if (type_ != Type::Double) type_error("number");
  return v_.d;
}
const std::string& Json::as_string() const {
  if (type_ != Type::String) type_error("string");
  return *v_.s;
}
const Json::Array& Json::as_array() const {
  if (type_ != Type::Array) type_error("array");
  return *v_.a;
}
Json::Array& Json::as_array() {
  if (type_ != Type::Array) type_error("array");
  return *v_.a;
}
const Json::Object& Json::as_object() const {
  if (type_ != Type::Object) type_error("object");
  return *v_.o;
}
Json::Object& Json::as_object() {
  if (type_ != Type::Object) type_error("object");
  return *v_.o;
}

const Json* Json::find(std::string_view key) const {
  if (type_ != Type::Object) return nullptr;
  for (const Member& m : *v_.o)
    if (m.first == key) return &m.second;
  return nullptr;
}
Json* Json::find(std::string_view key) { return const_cast<Json*>(static_cast<const Json*>(this)->find(key)); }

Json& Json::operator[](std::string_view key) {
  if (type_ == Type::Null) *this = object();
  Object& o = as_object();
  for (Member& m : o)
    if (m.first == key) return m.second;
  o.emplace_back(std::string(key), Json());
  return o.back().second;
}

const Json& Json::at(std::string_view key) const {
  as_object();  // ValueError unless this is an object
  const Json* j = find(key);
  CF_CHECK_VALUE(j != nullptr, "Json: missing key '", key, "'");
  return *j;
}
Json& Json::at(std::string_view key) { return const_cast<Json&>(static_cast<const Json*>(this)->at(key)); }
const Json& Json::operator[](std::string_view key) const { return at(key); }

bool Json::erase(std::string_view key) {
  Object& o = as_object();
  for (auto it = o.begin(); it != o.end(); ++it)
    if (it->first == key) {
      o.erase(it);
      return true;
    }
  return false;
}

const Json& Json::operator[](size_t index) const {
  const Array& a = as_array();
  CF_CHECK_INDEX(index < a.size(), "Json: index ", index, " out of range for an array of ", a.size(), " elements");
  return a[index];
}
Json& Json::operator[](size_t index) { return const_cast<Json&>(static_cast<const Json&>(*this)[index]); }

void Json::push_back(Json value) {
  if (type_ == Type::Null) *this = array();
  as_array().push_back(std::move(value));
}

size_t Json::size() const {
  switch (type_) {
    case Type::Null: return 0;
    case Type::Array: return v_.a->size();
    case Type::Object: return v_.o->size();
    default: type_error("array or object");
  }
}

bool operator==(const Json& a, const Json& b) {
  if (a.type_ != b.type_) return false;
  switch (a.type_) {
    case Json::Type::Null: return true;
    case Json::Type::Bool: return a.v_.b == b.v_.b;
    case Json::Type::Int: return a.v_.i == b.v_.i;
    case Json::Type::Double: return a.v_.d == b.v_.d;
    case Json::Type::String: return *a.v_.s == *b.v_.s;
    case Json::Type::Array: return *a.v_.a == *b.v_.a;
    case Json::Type::Object: {
      // Keys are unique, so equal sizes plus every member of a found in b
      // with an equal value means the same set of members.
      if (a.v_.o->size() != b.v_.o->size()) return false;
      for (const Json::Member& m : *a.v_.o) {
        const Json* other = b.find(m.first);
        if (!other || !(m.second == *other)) return false;
      }
      return true;
    }
  }
  return false;
}

// ============================================================================
// UTF-8
// ============================================================================

namespace {

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 if the
// bytes there are not valid UTF-8 (overlong forms, surrogates, > U+10FFFF,
// truncated sequences and stray continuation bytes are all invalid).
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  const size_t left = s.size() - i;
  const auto cont = [&](size_t k) { return (byte(i + k) & 0xC0) == 0x80; };
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return left >= 2 && cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3 || !cont(1) || !cont(2)) return 0;
    const unsigned char c1 = byte(i + 1);
    if (c == 0xE0 && c1 < 0xA0) return 0;  // overlong
    if (c == 0xED && c1 > 0x9F) return 0;  // UTF-16 surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4 || !cont(1) || !cont(2) || !cont(3)) return 0;
    const unsigned char c1 = byte(i + 1);
    if (c == 0xF0 && c1 < 0x90) return 0;  // overlong
    if (c == 0xF4 && c1 > 0x8F) return 0;  // > U+10FFFF
    return 4;
  }
  return 0;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// ============================================================================
// Numbers <-> text, independent of the C locale
// ============================================================================

#if defined(__cpp_lib_to_chars) && __cpp_lib_to_chars >= 201611L
constexpr bool kHaveFloatCharconv = true;
#else
constexpr bool kHaveFloatCharconv = false;
#endif

// Parses a validated JSON number literal as a double; false if out of range.
bool text_to_double(std::string_view lit, double* out) {
  if constexpr (kHaveFloatCharconv) {
    const auto r = std::from_chars(lit.data(), lit.data() + lit.size(), *out);
    return r.ec == std::errc() && r.ptr == lit.data() + lit.size() && std::isfinite(*out);
  } else {
    std::istringstream is{std::string(lit)};
    is.imbue(std::locale::classic());
    is >> *out;
    return !is.fail() && std::isfinite(*out);
  }
}

// Shortest text that parses back to exactly `d`, always with a '.' or an
// exponent so it reads back as a Double.
std::string double_to_text(double d) {
  std::string s;
  if constexpr (kHaveFloatCharconv) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, d);
    s.assign(buf, r.ptr);
  } else {
    for (int prec = 15; prec <= 17; ++prec) {
      std::ostringstream os;
      os.imbue(std::locale::classic());
      os.precision(prec);
      os << d;
      s = os.str();
      double back = 0;
      if (text_to_double(s, &back) && back == d) break;
    }
  }
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

// ============================================================================
// Serializer
// ============================================================================

void dump_string(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t n = utf8_sequence_length(s, i);
      CF_CHECK_VALUE(n != 0, "Json::dump: string ", quote_for_message(s), " is not valid UTF-8 (bad byte at offset ",
                     i, ")");
      out.append(s.data() + i, n);
      i += n;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xF];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

void newline(std::string& out, int indent, int level) {
  if (indent < 0) return;
  out += '\n';
  out.append(static_cast<size_t>(indent) * static_cast<size_t>(level), ' ');
}

void dump_value(std::string& out, const Json& j, int indent, int level) {
  switch (j.type()) {
    case Json::Type::Null: out += "null"; break;
    case Json::Type::Bool: out += j.as_bool() ? "true" : "false"; break;
    case Json::Type::Int: out += std::to_string(j.as_int()); break;
    case Json::Type::Double: {
      const double d = j.as_double();
      CF_CHECK_VALUE(std::isfinite(d), "Json::dump: ", d, " cannot be written as JSON (only finite numbers can)");
      out += double_to_text(d);
      break;
    }
    case Json::Type::String: dump_string(out, j.as_string()); break;
    case Json::Type::Array: {
      const Json::Array& a = j.as_array();
      out += '[';
      for (size_t k = 0; k < a.size(); ++k) {
        if (k) out += ',';
        newline(out, indent, level + 1);
        dump_value(out, a[k], indent, level + 1);
      }
      if (!a.empty()) newline(out, indent, level);
      out += ']';
      break;
    }
    case Json::Type::Object: {
      const Json::Object& o = j.as_object();
      out += '{';
      for (size_t k = 0; k < o.size(); ++k) {
        if (k) out += ',';
        newline(out, indent, level + 1);
        dump_string(out, o[k].first);
        out += indent < 0 ? ":" : ": ";
        dump_value(out, o[k].second, indent, level + 1);
      }
      if (!o.empty()) newline(out, indent, level);
      out += '}';
      break;
    }
  }
}

// ============================================================================
// Parser: recursive descent over a string_view; depth-limited recursion.
// ============================================================================

class Parser {
 public:
  Parser(std::string_view text, const JsonLimits& limits) : s_(text), limits_(limits) {}

  // A whole document that must be one object, streamed member by member.
  void parse_document_members(const std::function<void(std::string&&, Json&&)>& on_member) {
    skip_ws();
    if (pos_ >= s_.size() || s_[pos_] != '{') fail(str_cat("expected an object, got ", describe_here()));
    // Keys are not kept: remember (hash, position) and find duplicates at the
    // end by sorting, re-reading the keys of equal hashes from the text.
    struct Seen {
      size_t hash;
      size_t at;
    };
    std::vector<Seen> seen;
    parse_members(1, [&](size_t at, std::string&& key, Json&& value) {
      seen.push_back({std::hash<std::string_view>()(key), at});
      on_member(std::move(key), std::move(value));
    });
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected content after the JSON value");
    std::sort(seen.begin(), seen.end(),
              [](const Seen& a, const Seen& b) { return a.hash != b.hash ? a.hash < b.hash : a.at < b.at; });
    size_t dup = std::string::npos;  // position of the first key (in document order) seen before
    for (size_t lo = 0; lo < seen.size();) {
      size_t hi = lo + 1;
      while (hi < seen.size() && seen[hi].hash == seen[lo].hash) ++hi;
      for (size_t k = lo + 1; k < hi; ++k)
        for (size_t j = lo; j < k; ++j)
          if (seen[k].at < dup && key_at(seen[j].at) == key_at(seen[k].at)) {
            dup = seen[k].at;
            break;
          }
      lo = hi;
    }
    if (dup != std::string::npos) fail_at(dup, str_cat("duplicate key ", quote_for_message(key_at(dup))));
  }

  // The string starting at `at` (already parsed once, so valid).
  std::string key_at(size_t at) const {
    Parser p(s_, limits_);
    p.pos_ = at;
    return p.parse_string();
  }

  Json parse_document() {
    skip_ws();
    Json v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected content after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }
  [[noreturn]] void fail_at(size_t at, const std::string& what) const {
    size_t line = 1, col = 1;
    for (size_t k = 0; k < at && k < s_.size(); ++k) {
      if (s_[k] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw ValueError(str_cat("invalid JSON at line ", line, ", column ", col, " (byte ", at, "): ", what));
  }

  std::string describe_here() const {
    if (pos_ >= s_.size()) return "end of input";
    const unsigned char c = static_cast<unsigned char>(s_[pos_]);
    if (c >= 0x20 && c < 0x7F) return str_cat("'", static_cast<char>(c), "'");
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
    return buf;
  }

  void skip_ws() {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  bool consume_literal(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) return false;
    pos_ += lit.size();
    return true;
  }

  Json parse_value(int depth) {
    if (pos_ >= s_.size()) fail("expected a value, got end of input");
    switch (s_[pos_]) {
      case '{': return parse_object(depth + 1);
      case '[': return parse_array(depth + 1);
      case '"': return Json(parse_string());
      case 't':
        if (consume_literal("true")) return Json(true);
        break;
      case 'f':
        if (consume_literal("false")) return Json(false);
        break;
      case 'n':
        if (consume_literal("null")) return Json();
        break;
      default:
        if (s_[pos_] == '-' || (s_[pos_] >= '0' && s_[pos_] <= '9')) return parse_number();
    }
    fail(str_cat("expected a value, got ", describe_here()));
  }

  void enter(int depth) const {
    if (depth > limits_.max_depth) fail(str_cat("nesting deeper than ", limits_.max_depth, " levels"));
  }

  Json parse_array(int depth) {
    enter(depth);
    ++pos_;  // '['
    Json::Array a;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return Json(std::move(a));
    }
    for (;;) {
      skip_ws();
      if (a.size() == limits_.max_array_size) fail(str_cat("array longer than ", limits_.max_array_size, " elements"));
      a.push_back(parse_value(depth));
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        break;
      }
      fail(str_cat("expected ',' or ']' in an array, got ", describe_here()));
    }
    return Json(std::move(a));
  }

  Json parse_object(int depth) {
    Json::Object o;
    std::vector<size_t> key_pos;  // where each key starts, for duplicate errors
    parse_members(depth, [&](size_t at, std::string&& key, Json&& value) {
      key_pos.push_back(at);
      o.emplace_back(std::move(key), std::move(value));
    });
    check_unique_keys(o, key_pos);
    return Json(std::move(o));
  }

  // The members of the object at pos_, in order, as on_member(key position,
  // key, value); does not check for duplicate keys.
  template <class OnMember>
  void parse_members(int depth, OnMember&& on_member) {
    enter(depth);
    ++pos_;  // '{'
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return;
    }
    for (;;) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') fail(str_cat("expected a string key in an object, got ", describe_here()));
      const size_t at = pos_;
      std::string key = parse_string();
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') fail(str_cat("expected ':' after an object key, got ", describe_here()));
      ++pos_;
      skip_ws();
      Json value = parse_value(depth);
      on_member(at, std::move(key), std::move(value));
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        break;
      }
      fail(str_cat("expected ',' or '}' in an object, got ", describe_here()));
    }
  }

  void check_unique_keys(const Json::Object& o, const std::vector<size_t>& key_pos) const {
    const size_t n = o.size();
    if (n < 2) return;
    size_t dup = n;  // index of the later member of the first duplicate pair
    if (n <= 16) {
      for (size_t k = 1; k < n && dup == n; ++k)
        for (size_t j = 0; j < k; ++j)
          if (o[j].first == o[k].first) {
            dup = k;
            break;
          }
    } else {
      std::vector<size_t> order(n);
      for (size_t k = 0; k < n; ++k) order[k] = k;
      std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
        const int c = o[x].first.compare(o[y].first);
        return c != 0 ? c < 0 : x < y;
      });
      for (size_t k = 1; k < n; ++k)
        if (o[order[k]].first == o[order[k - 1]].first) dup = std::min(dup, order[k]);
    }
    if (dup != n) fail_at(key_pos[dup], str_cat("duplicate key ", quote_for_message(o[dup].first)));
  }

  unsigned parse_hex4() {
    if (s_.size() - pos_ < 4) fail("truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else fail_at(pos_ - 1, "invalid hex digit in a \\u escape");
    }
    return v;
  }

  std::string parse_string() {
    const size_t start = pos_;
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      // Copy the run of plain ASCII in one go.
      size_t run = pos_;
      while (run < s_.size()) {
        const unsigned char c = static_cast<unsigned char>(s_[run]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++run;
      }
      out.append(s_.data() + pos_, run - pos_);
      pos_ = run;
      if (pos_ >= s_.size()) fail_at(start, "unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("control character in a string (must be escaped)");
      if (c >= 0x80) {
        const size_t n = utf8_sequence_length(s_, pos_);
        if (n == 0) fail("invalid UTF-8 in a string");
        out.append(s_.data() + pos_, n);
        pos_ += n;
        continue;
      }
      // backslash escape
      const size_t esc = pos_;
      ++pos_;
      if (pos_ >= s_.size()) fail_at(start, "unterminated string");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = parse_hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at(esc, "lone low surrogate in a \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!(s_.size() - pos_ >= 2 && s_[pos_] == '\\' && s_[pos_ + 1] == 'u'))
              fail_at(esc, "high surrogate not followed by a low surrogate \\u escape");
            pos_ += 2;
            const uint32_t lo = parse_hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail_at(esc, "high surrogate not followed by a low surrogate \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: fail_at(esc, str_cat("invalid escape '\\", e, "' in a string"));
      }
    }
  }

  Json parse_number() {
    const size_t start = pos_;
    bool integral = true;
    if (s_[pos_] == '-') ++pos_;
    const auto digit = [&]() { return pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; };
    if (!digit()) fail("expected a digit after '-'");
    if (s_[pos_] == '0') {
      ++pos_;
      if (digit()) fail_at(start, "leading zeros are not allowed in numbers");
    } else {
      while (digit()) ++pos_;
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (!digit()) fail("expected a digit after the decimal point");
      while (digit()) ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digit()) fail("expected a digit in the exponent");
      while (digit()) ++pos_;
    }
    const std::string_view lit = s_.substr(start, pos_ - start);
    if (integral) {
      // Accumulate negatively so INT64_MIN parses; overflow falls back to double.
      const bool neg = lit[0] == '-';
      int64_t v = 0;
      bool overflow = false;
      for (size_t k = neg ? 1 : 0; k < lit.size(); ++k) {
        const int d = lit[k] - '0';
        if (v < (std::numeric_limits<int64_t>::min() + d) / 10) {
          overflow = true;
          break;
        }
        v = v * 10 - d;
      }
      if (!overflow && !neg && v == std::numeric_limits<int64_t>::min()) overflow = true;
      if (!overflow) return Json(neg ? v : -v);
    }
    double d = 0;
    if (!text_to_double(lit, &d)) fail_at(start, str_cat("number ", lit, " is out of range"));
    return Json(d);
  }

  std::string_view s_;
  size_t pos_ = 0;
  JsonLimits limits_;
};

}  // namespace

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string quote_for_message(std::string_view s, size_t max_bytes) {
  std::string out = "'";
  size_t i = 0;
  while (i < s.size() && i < max_bytes) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0 || c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  if (i < s.size()) out += "...";
  out += "'";
  return out;
}

std::string Json::dump(int indent) const {
  std::string out;
  dump_value(out, *this, indent, 0);
  return out;
}

void Json::parse_members(std::string_view text, const std::function<void(std::string&&, Json&&)>& on_member,
                         const JsonLimits& limits) {
  CF_CHECK_VALUE(limits.max_depth >= 1, "Json::parse_members: max_depth must be >= 1, got ", limits.max_depth);
  Parser(text, limits).parse_document_members(on_member);
}

Json Json::parse(std::string_view text, const JsonLimits& limits) {
  CF_CHECK_VALUE(limits.max_depth >= 1, "Json::parse: max_depth must be >= 1, got ", limits.max_depth);
  return Parser(text, limits).parse_document();
}

}  // namespace cpuformer
