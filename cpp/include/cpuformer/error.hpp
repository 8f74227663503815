// Error types thrown by every public cpuformer entry point.
// All derive from cpuformer::Error so native callers can catch one type; the
// Python bindings map ValueError -> ValueError, IndexError -> IndexError,
// TypeError -> TypeError, StateError -> RuntimeError.
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace cpuformer {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A value, shape or configuration is wrong.
struct ValueError : Error {
  using Error::Error;
};
// An index (token id, class label) is out of range.
struct IndexError : Error {
  using Error::Error;
};
// An argument has the wrong kind (dtype, rank).
struct TypeError : Error {
  using Error::Error;
};
// An operation was called in the wrong order (backward before forward, ...).
struct StateError : Error {
  using Error::Error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class T, class... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

// Concatenates its arguments with operator<< into one message.
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  return os.str();
}

// "[2, 3, 4]"
std::string shape_str(const std::vector<int64_t>& shape);

#define CF_CHECK_VALUE(cond, ...) \
  do { if (!(cond)) throw ::cpuformer::ValueError(::cpuformer::str_cat(__VA_ARGS__)); } while (0)
#define CF_CHECK_INDEX(cond, ...) \
  do { if (!(cond)) throw ::cpuformer::IndexError(::cpuformer::str_cat(__VA_ARGS__)); } while (0)
#define CF_CHECK_STATE(cond, ...) \
  do { if (!(cond)) throw ::cpuformer::StateError(::cpuformer::str_cat(__VA_ARGS__)); } while (0)

}  // namespace cpuformer
