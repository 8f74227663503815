// Range checks for integer arrays (token ids, class targets) with messages
// that name the argument and the offending element's multi-index.
#pragma once
#include <string>
#include <vector>

#include "convert.hpp"

namespace cfpy {

// "(1, 2)" for flat index 5 of shape [2, 3]; "(5)" for 1-d shapes.
inline std::string multi_index_str(const Shape& shape, int64_t flat) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  std::string s = "(";
  for (size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
  return s + ")";
}

// IndexError for the first element outside [0, hi), skipping `skip` when has_skip.
inline void check_index_range(const IndexArray& a, int64_t hi, const char* name, const char* what,
                              bool has_skip = false, int64_t skip = 0) {
  const int64_t* d = a.data();
  const int64_t n = static_cast<int64_t>(a.size());
  for (int64_t i = 0; i < n; ++i) {
    if (has_skip && d[i] == skip) continue;
    if (d[i] < 0 || d[i] >= hi)
      throw cpuformer::IndexError(cpuformer::str_cat(
          name, ": ", what, " ", d[i], " at index ", multi_index_str(shape_of(a), i), " is out of range [0, ", hi, ")",
          has_skip ? cpuformer::str_cat(" and is not ignore_index = ", skip) : std::string()));
  }
}

}  // namespace cfpy
