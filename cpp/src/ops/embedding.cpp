// Embedding gather / scatter-add and sinusoidal positional encodings.
//   N rows (token positions), V vocabulary size, C channels, T positions.
#include "cpuformer/ops/embedding.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#include "cpuformer/error.hpp"
#include "cpuformer/runtime/threads.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cpuformer {

namespace {

// IndexError naming the first id outside [0, V) and its position.
void check_ids(const int64_t* ids, int64_t N, int64_t V, const char* what) {
  for (int64_t n = 0; n < N; ++n)
    if (ids[n] < 0 || ids[n] >= V)
      throw IndexError(str_cat(what, ": token id ", ids[n], " at position ", n, " is out of range [0, ", V, ")"));
}

// Below this many floats a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 14;

}  // namespace

void embedding_forward(float* out, const int64_t* ids, const float* weight, int64_t N, int64_t V, int64_t C) {
  // out [N,C], ids [N], weight [V,C]
  check_ids(ids, N, V, "embedding");
  if (C == 0) return;
#pragma omp parallel for schedule(static) if (N * C >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) std::memcpy(out + n * C, weight + ids[n] * C, sizeof(float) * C);
}

void embedding_backward(float* dweight, const float* dout, const int64_t* ids, int64_t N, int64_t V, int64_t C) {
  // dweight [V,C] (accumulated), dout [N,C], ids [N]
  check_ids(ids, N, V, "embedding_backward");
  if (!dweight || C == 0 || N == 0) return;
  // Each thread owns a slice of columns and walks the rows in order, so a
  // repeated id accumulates in the same order whatever the thread count (no
  // atomics, bitwise reproducible). Slices are multiples of 16 floats (one
  // cache line) to limit false sharing between threads.
  constexpr int64_t kLine = 16;
  const int64_t threads = N * C >= kParallelMin ? region_threads() : 1;
  int64_t cols = (C + threads - 1) / threads;
  cols = (cols + kLine - 1) / kLine * kLine;
  const int64_t chunks = (C + cols - 1) / cols;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t c0 = k * cols;
    const int64_t c1 = c0 + cols < C ? c0 + cols : C;
    for (int64_t n = 0; n < N; ++n) {
      const float* g = dout + n * C;
      float* dw = dweight + ids[n] * C;
      for (int64_t c = c0; c < c1; ++c) dw[c] += g[c];
    }
  }
}

void sinusoidal_positional_encoding(float* out, int64_t T, int64_t C, int64_t offset) {
  // out [T,C]
  CF_CHECK_VALUE(T >= 0, "sinusoidal_positional_encoding: length must be >= 0, got ", T);
  CF_CHECK_VALUE(C >= 1, "sinusoidal_positional_encoding: d_model must be >= 1, got ", C);
  CF_CHECK_VALUE(offset >= 0, "sinusoidal_positional_encoding: offset must be >= 0, got ", offset);
  // div[i] = 10000^(2i/C) for the pair of channels (2i, 2i+1); an odd C ends
  // with a lone sine channel.
  std::vector<double> div(static_cast<size_t>((C + 1) / 2));
  for (int64_t i = 0; i < (C + 1) / 2; ++i)
    div[i] = std::pow(10000.0, static_cast<double>(2 * i) / static_cast<double>(C));
  const double* d = div.data();
#pragma omp parallel for schedule(static) if (T * C >= kParallelMin)
  for (int64_t t = 0; t < T; ++t) {
    const double pos = static_cast<double>(offset + t);
    float* row = out + t * C;
    for (int64_t c = 0; c < C; ++c) {
      const double a = pos / d[c / 2];
      row[c] = static_cast<float>((c & 1) ? std::cos(a) : std::sin(a));
    }
  }
}

}  // namespace cpuformer
