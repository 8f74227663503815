// Json's text goes through nlohmann/json, which stays private to this file
// (the value type is json.cpp). Parsing: nlohmann's SAX parser (iterative,
// strict RFC 8259, UTF-8 checked) feeds a builder that adds what it does not
// check (duplicate keys, nesting and array limits, NUL bytes, a byte order
// mark, numbers that underflow) and streams parse_members. Writing: the value
// is copied into an ordered_json, which keeps the member order, and dumped.
#include "cpuformer/io/json.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <numeric>

#include <nlohmann/json.hpp>

#if NLOHMANN_JSON_VERSION_MAJOR < 3 || (NLOHMANN_JSON_VERSION_MAJOR == 3 && NLOHMANN_JSON_VERSION_MINOR < 11)
#error "cpuformer needs nlohmann/json 3.11 or newer"
#endif

namespace cpuformer {

// ============================================================================
// UTF-8 and messages
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

// Offset of the first byte of `s` that does not start a valid UTF-8
// sequence, or npos.
size_t first_invalid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

// ============================================================================
// Parser: nlohmann's SAX events build a Json
// ============================================================================

using NJson = nlohmann::json;

// An input iterator over the text that records how far the parser has read,
// so that errors found by the builder can name a position.
class TrackedChars {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  TrackedChars(const char* p, const char** read_to) : p_(p), read_to_(read_to) {}
  reference operator*() const { return *p_; }
  TrackedChars& operator++() {
    *read_to_ = ++p_;
    return *this;
  }
  TrackedChars operator++(int) {
    TrackedChars before = *this;
    ++*this;
    return before;
  }
  bool operator==(const TrackedChars& o) const { return p_ == o.p_; }
  bool operator!=(const TrackedChars& o) const { return p_ != o.p_; }

 private:
  const char* p_;
  const char** read_to_;
};

// The SAX handler (nlohmann calls the lower-case members). Containers being
// built sit on an explicit stack, so deep input costs no recursion.
class Builder {
 public:
  using OnMember = std::function<void(std::string&&, Json&&)>;

  // With on_member, the text must be one object whose members go to it.
  Builder(std::string_view text, const JsonLimits& limits, const OnMember* on_member)
      : text_(text), limits_(limits), on_member_(on_member) {}

  Json run() {
    // nlohmann's lexer takes a NUL byte for the end of the input and skips
    // a byte order mark; neither belongs in JSON text.
    const size_t nul = text_.find('\0');
    if (nul != std::string_view::npos) fail_at(nul, "NUL byte (not allowed in JSON text, not even in a string)");
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") fail_at(0, "byte order mark (not allowed in JSON text)");
    if (on_member_) {
      const size_t first = text_.find_first_not_of(" \t\r\n");
      if (first == std::string_view::npos) fail_at(text_.size(), "expected an object, got end of input");
      if (text_[first] != '{')
        fail_at(first, str_cat("expected an object, got ", quote_for_message(text_.substr(first, 1))));
    }
    const char* begin = text_.data();
    read_to_ = begin;
    const bool ok = NJson::sax_parse(TrackedChars(begin, &read_to_), TrackedChars(begin + text_.size(), &read_to_), this,
                                     NJson::input_format_t::json, /*strict=*/true, /*ignore_comments=*/false);
    if (!ok) fail_at(read(), "parse stopped");  // not reached: every handler returns true or throws
    return std::move(root_);
  }

  // ---- SAX events ----
  bool null() { return scalar(Json()); }
  bool boolean(bool b) { return scalar(Json(b)); }
  bool number_integer(NJson::number_integer_t n) { return scalar(Json(static_cast<int64_t>(n))); }
  bool number_unsigned(NJson::number_unsigned_t n) {
    // Above int64 a Double: the conversion rounds to nearest, as the
    // literal's own parse would.
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return scalar(Json(static_cast<double>(n)));
    return scalar(Json(static_cast<int64_t>(n)));
  }
  bool number_float(NJson::number_float_t d, const std::string& literal) {
    // nlohmann rejects overflow (its error 406); a nonzero literal that
    // underflows to zero is out of range too.
    const size_t exponent = literal.find_first_of("eE");
    if (d == 0 && literal.find_first_of("123456789") < exponent) fail_at(start_of(literal), out_of_range(literal));
    return scalar(Json(static_cast<double>(d)));
  }
  bool string(std::string& s) { return scalar(Json(std::move(s))); }
  bool binary(NJson::binary_t&) { fail_at(read(), "binary value"); }  // only binary formats have them
  bool start_object(size_t) { return open(Json::object()); }
  bool start_array(size_t) { return open(Json::array()); }
  bool key(std::string& k) {
    Frame& f = stack_.back();
    const size_t end = read();  // just past the key's closing quote
    f.keys.push_back({std::hash<std::string>()(k), string_start(end), end});
    f.key = std::move(k);
    return true;
  }
  bool end_object() {
    Frame f = pop();
    check_unique_keys(f);
    return add(std::move(f.value));
  }
  bool end_array() { return add(pop().value); }
  // `position` counts the bytes nlohmann read, the offending one included.
  [[noreturn]] bool parse_error(size_t position, const std::string& last_read, const NJson::exception& e) {
    if (e.id == 406) fail_at(start_of(last_read), out_of_range(last_read));  // a number's overflow
    fail_at(std::min(position > 0 ? position - 1 : 0, text_.size()), describe(e, last_read));
  }

 private:
  struct KeyRef {
    size_t hash, begin, end;  // the key's hash; its token (quotes included) in the text
  };
  struct Frame {
    Json value;  // an array or object
    std::vector<KeyRef> keys;
    std::string key;  // an object's key whose value comes next
  };

  size_t read() const { return static_cast<size_t>(read_to_ - text_.data()); }

  [[noreturn]] void fail_at(size_t at, const std::string& what) const {
    size_t line = 1, col = 1;
    for (size_t k = 0; k < at && k < text_.size(); ++k) {
      if (text_[k] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw ValueError(str_cat("invalid JSON at line ", line, ", column ", col, " (byte ", at, "): ", what));
  }

  // A number too large or too small (nonzero) for a double, shown shortened.
  static std::string out_of_range(const std::string& literal) {
    return str_cat("number ", quote_for_message(literal, 40), " is out of range");
  }

  // Where the number literal just read starts: the parser has read it and
  // perhaps the byte after it, which cannot end a literal.
  size_t start_of(const std::string& literal) const {
    const size_t n = literal.size();
    const size_t at = read() >= n ? text_.rfind(literal, read() - n) : std::string_view::npos;
    return at == std::string_view::npos ? read() : at;
  }

  // nlohmann's message without its prefix (we name the position) and with
  // the token it read shortened and escaped: that can be long and hold any
  // bytes, and messages stay short, valid UTF-8.
  static std::string describe(const NJson::exception& e, const std::string& last_read) {
    std::string_view m = e.what();  // "[json.exception.parse_error.101] parse error at line 1, column 4: ..."
    if (!m.empty() && m[0] == '[' && m.find("] ") != std::string_view::npos) m.remove_prefix(m.find("] ") + 2);
    if (m.rfind("parse error", 0) == 0 && m.find(": ") != std::string_view::npos) m.remove_prefix(m.find(": ") + 2);
    const std::string token = str_cat("last read: '", last_read, "'");
    const size_t t = m.find(token);
    if (t == std::string_view::npos) {
      const std::string q = quote_for_message(m, 300);
      return q.substr(1, q.size() - 2);
    }
    constexpr size_t kTail = 40;  // where the lexer stopped is at the token's end
    std::string tail = quote_for_message(last_read.size() > kTail ? last_read.substr(last_read.size() - kTail) : last_read);
    if (last_read.size() > kTail) tail.insert(1, "...");
    return str_cat(m.substr(0, t), "last read: ", tail, m.substr(t + token.size()));
  }

  // Where the string token ending just before `end` starts: the last quote
  // before its closing one that no odd run of backslashes escapes.
  size_t string_start(size_t end) const {
    for (size_t j = end - 1; j-- > 0;) {
      if (text_[j] != '"') continue;
      size_t slashes = 0;
      while (slashes < j && text_[j - 1 - slashes] == '\\') ++slashes;
      if (slashes % 2 == 0) return j;
    }
    return 0;
  }

  // The array being filled must have room for one more element.
  void make_room(size_t at) const {
    if (!stack_.empty() && stack_.back().value.is_array() &&
        stack_.back().value.as_array().size() == limits_.max_array_size)
      fail_at(at, str_cat("array longer than ", limits_.max_array_size, " elements"));
  }

  bool scalar(Json&& v) {
    make_room(read());
    return add(std::move(v));
  }

  bool open(Json&& container) {
    const size_t at = read() - 1;  // the bracket
    make_room(at);
    if (stack_.size() + 1 > static_cast<size_t>(limits_.max_depth))
      fail_at(at, str_cat("nesting deeper than ", limits_.max_depth, " levels"));
    stack_.push_back(Frame{std::move(container), {}, {}});
    return true;
  }

  Frame pop() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    return f;
  }

  // A finished value goes into its container, to on_member, or is the root.
  bool add(Json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return true;
    }
    Frame& f = stack_.back();
    if (f.value.is_array())
      f.value.as_array().push_back(std::move(v));
    else if (on_member_ && stack_.size() == 1)
      (*on_member_)(std::move(f.key), std::move(v));
    else
      f.value.as_object().emplace_back(std::move(f.key), std::move(v));
    return true;
  }

  // Reports the first key (in document order) that an earlier one repeats.
  // Keys are grouped by hash; a streamed object kept no keys, so equal
  // hashes are compared by decoding the keys again from the text.
  void check_unique_keys(const Frame& f) const {
    const std::vector<KeyRef>& keys = f.keys;
    const size_t n = keys.size();
    if (n < 2) return;
    const bool streamed = on_member_ && stack_.empty();
    const auto same = [&](size_t a, size_t b) {
      if (!streamed) return f.value.as_object()[a].first == f.value.as_object()[b].first;
      return decode_key(keys[a]) == decode_key(keys[b]);
    };
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return keys[a].hash != keys[b].hash ? keys[a].hash < keys[b].hash : a < b;
    });
    size_t dup = n;
    for (size_t lo = 0; lo < n;) {
      size_t hi = lo + 1;
      while (hi < n && keys[order[hi]].hash == keys[order[lo]].hash) ++hi;
      for (size_t k = lo + 1; k < hi; ++k)
        for (size_t j = lo; j < k; ++j)
          if (order[k] < dup && same(order[j], order[k])) {
            dup = order[k];
            break;
          }
      lo = hi;
    }
    if (dup != n)
      fail_at(keys[dup].begin, str_cat("duplicate key ", quote_for_message(decode_key(keys[dup]))));
  }

  std::string decode_key(const KeyRef& k) const {
    const char* p = text_.data() + k.begin;
    const NJson s = NJson::parse(p, p + (k.end - k.begin), nullptr, /*allow_exceptions=*/false);
    return s.is_string() ? s.get<std::string>() : std::string();
  }

  std::string_view text_;
  JsonLimits limits_;
  const OnMember* on_member_;
  const char* read_to_ = nullptr;  // the parser has read the text up to here
  std::vector<Frame> stack_;
  Json root_;
};

// ============================================================================
// Writer: a copy as nlohmann's ordered_json (member order kept), dumped
// ============================================================================

using Ordered = nlohmann::ordered_json;

const std::string& checked_utf8(const std::string& s) {
  const size_t bad = first_invalid_utf8(s);
  CF_CHECK_VALUE(bad == std::string::npos, "Json::dump: string ", quote_for_message(s),
                 " is not valid UTF-8 (bad byte at offset ", bad, ")");
  return s;
}

Ordered to_ordered(const Json& j) {
  switch (j.type()) {
    case Json::Type::Null: return nullptr;
    case Json::Type::Bool: return j.as_bool();
    case Json::Type::Int: return j.as_int();
    case Json::Type::Double: {
      const double d = j.as_double();
      CF_CHECK_VALUE(std::isfinite(d), "Json::dump: ", d, " cannot be written as JSON (only finite numbers can)");
      return d;
    }
    case Json::Type::String: return checked_utf8(j.as_string());
    case Json::Type::Array: {
      Ordered out = Ordered::array();
      auto& elements = out.get_ref<Ordered::array_t&>();
      elements.reserve(j.size());
      for (const Json& e : j.as_array()) elements.push_back(to_ordered(e));
      return out;
    }
    case Json::Type::Object: {
      // Straight into the member vector: written as they are, in order.
      Ordered out = Ordered::object();
      auto& members = out.get_ref<Ordered::object_t&>();
      members.reserve(j.size());
      for (const Json::Member& m : j.as_object()) members.emplace_back(checked_utf8(m.first), to_ordered(m.second));
      return out;
    }
  }
  return nullptr;
}

}  // namespace

bool is_valid_utf8(std::string_view s) { return first_invalid_utf8(s) == std::string_view::npos; }

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
  const Ordered j = to_ordered(*this);  // ValueError for what JSON cannot hold
  try {
    return j.dump(indent < 0 ? -1 : indent, ' ', /*ensure_ascii=*/false, Ordered::error_handler_t::strict);
  } catch (const Ordered::exception& e) {  // not expected: the copy checked every string
    throw ValueError(str_cat("Json::dump: ", e.what()));
  }
}

void Json::parse_members(std::string_view text, const std::function<void(std::string&&, Json&&)>& on_member,
                         const JsonLimits& limits) {
  CF_CHECK_VALUE(limits.max_depth >= 1, "Json::parse_members: max_depth must be >= 1, got ", limits.max_depth);
  Builder(text, limits, &on_member).run();
}

Json Json::parse(std::string_view text, const JsonLimits& limits) {
  CF_CHECK_VALUE(limits.max_depth >= 1, "Json::parse: max_depth must be >= 1, got ", limits.max_depth);
  return Builder(text, limits, nullptr).run();
}

}  // namespace cpuformer
