// Test helper shared by the attention-variant C++ tests (test_longseq.cpp,
// test_bigbird.cpp): a contiguous [B, H, T, X] float buffer, optionally
// filled with seeded uniform values in [-amp, amp), viewed as StridedBHT.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpuformer/ops/attention.hpp"
#include "cpuformer/runtime/rng.hpp"

namespace cftest {

struct Buf {
  int64_t B, H, T, X;
  std::vector<float> d;
  Buf(int64_t B_, int64_t H_, int64_t T_, int64_t X_, uint64_t key = 0, float amp = 1.0f)
      : B(B_), H(H_), T(T_), X(X_), d(static_cast<size_t>(B_ * H_ * T_ * X_), 0.0f) {
    if (key)
      for (size_t i = 0; i < d.size(); ++i) d[i] = amp * (2.0f * cpuformer::rng_uniform(key, i) - 1.0f);
  }
  cpuformer::StridedBHT<float> v() { return {d.data(), H * T * X, T * X, X}; }
  cpuformer::StridedBHT<const float> c() const { return {d.data(), H * T * X, T * X, X}; }
};

// The largest |a[i] - b[i]| (a and b of the same size).
inline double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

}  // namespace cftest
