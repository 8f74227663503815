// Json's value type (json.hpp): construction, access, comparison. Its text,
// parsing and writing through nlohmann/json, is in json_text.cpp.
#include "cpuformer/io/json.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <numeric>

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

}  // namespace cpuformer
