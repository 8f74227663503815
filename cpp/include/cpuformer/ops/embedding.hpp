// Embedding lookup (gather) and its scatter-add backward.
#pragma once
#include <cstdint>

namespace cpuformer {

// out[N,C] = weight[ids[n], :]. Throws IndexError when an id is outside [0, V).
void embedding_forward(float* out, const int64_t* ids, const float* weight, int64_t N, int64_t V, int64_t C);
// dweight[ids[n], :] += dout[n, :] (deterministic: parallel over C, rows in order).
void embedding_backward(float* dweight, const float* dout, const int64_t* ids, int64_t N, int64_t V, int64_t C);

// out[T,C] = PE(offset + t, c): PE(pos, 2i) = sin(pos / 10000^(2i/C)),
// PE(pos, 2i+1) = cos(pos / 10000^(2i/C)); computed in double, stored as float.
void sinusoidal_positional_encoding(float* out, int64_t T, int64_t C, int64_t offset = 0);

}  // namespace cpuformer
