// A minimal test harness for the C++ unit tests (no third-party framework):
// CHECK records a failure and continues; main returns non-zero on failure.
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace cftest {

inline int& failures() {
  static int n = 0;
  return n;
}

struct Case {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<Case>& cases() {
  static std::vector<Case> c;
  return c;
}
struct Register {
  Register(const char* name, std::function<void()> fn) { cases().push_back({name, std::move(fn)}); }
};

inline int run_all() {
  for (auto& c : cases()) {
    const int before = failures();
    try {
      c.fn();
    } catch (const std::exception& e) {
      std::printf("  exception in %s: %s\n", c.name, e.what());
      ++failures();
    }
    std::printf("%s %s\n", failures() == before ? "PASS" : "FAIL", c.name);
  }
  std::printf("%d failure(s) in %zu case(s)\n", failures(), cases().size());
  return failures() == 0 ? 0 : 1;
}

}  // namespace cftest

#define CF_TEST(name)                                      \
  static void name();                                      \
  static ::cftest::Register name##_registration(#name, name); \
  static void name()

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::printf("  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++::cftest::failures();                                                \
    }                                                                        \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                                  \
  do {                                                                                                        \
    const double _a = (a), _b = (b);                                                                          \
    if (!(std::fabs(_a - _b) <= (tol))) {                                                                     \
      std::printf("  %s:%d: CHECK_NEAR failed: %s = %g vs %s = %g (tol %g)\n", __FILE__, __LINE__, #a, _a, #b, \
                  _b, (double)(tol));                                                                         \
      ++::cftest::failures();                                                                                 \
    }                                                                                                         \
  } while (0)

#define CHECK_THROWS(type, expr)                                                               \
  do {                                                                                         \
    bool _thrown = false;                                                                      \
    try {                                                                                      \
      expr;                                                                                    \
    } catch (const type&) {                                                                    \
      _thrown = true;                                                                          \
    }                                                                                          \
    if (!_thrown) {                                                                            \
      std::printf("  %s:%d: expected %s from %s\n", __FILE__, __LINE__, #type, #expr);          \
      ++::cftest::failures();                                                                  \
    }                                                                                          \
  } while (0)

#define CF_TEST_MAIN() \
  int main() { return ::cftest::run_all(); }
