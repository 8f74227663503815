#include "cpuformer/ops/patches.hpp"

#include <algorithm>

namespace cpuformer {

// Both directions walk (b, patch) in parallel and copy one contiguous run of
// P pixels per (c, i): a patch row of the image is a K-row slice of P floats.
void patches_forward(float* out, const float* img, int64_t B, int64_t C, int64_t Hi, int64_t Wi, int64_t P) {
  const int64_t gw = Wi / P, Np = (Hi / P) * gw, K = C * P * P;
#pragma omp parallel for schedule(static)
  for (int64_t bn = 0; bn < B * Np; ++bn) {
    const int64_t b = bn / Np, n = bn % Np, gy = n / gw, gx = n % gw;
    float* dst = out + bn * K;  // [C, P, P]
    for (int64_t c = 0; c < C; ++c) {
      const float* plane = img + ((b * C + c) * Hi + gy * P) * Wi + gx * P;
      for (int64_t i = 0; i < P; ++i) std::copy(plane + i * Wi, plane + i * Wi + P, dst + (c * P + i) * P);
    }
  }
}

void patches_backward(float* dimg, const float* dout, int64_t B, int64_t C, int64_t Hi, int64_t Wi, int64_t P) {
  const int64_t gw = Wi / P, Np = (Hi / P) * gw, K = C * P * P;
  // Patches do not overlap, so every (b, patch) task writes disjoint pixels.
#pragma omp parallel for schedule(static)
  for (int64_t bn = 0; bn < B * Np; ++bn) {
    const int64_t b = bn / Np, n = bn % Np, gy = n / gw, gx = n % gw;
    const float* src = dout + bn * K;
    for (int64_t c = 0; c < C; ++c) {
      float* plane = dimg + ((b * C + c) * Hi + gy * P) * Wi + gx * P;
      for (int64_t i = 0; i < P; ++i) {
        const float* s = src + (c * P + i) * P;
        float* d = plane + i * Wi;
        for (int64_t j = 0; j < P; ++j) d[j] += s[j];
      }
    }
  }
}

void patches_forward_reference(float* out, const float* img, int64_t B, int64_t C, int64_t Hi, int64_t Wi,
                               int64_t P) {
  const int64_t gh = Hi / P, gw = Wi / P, K = C * P * P;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t gy = 0; gy < gh; ++gy)
      for (int64_t gx = 0; gx < gw; ++gx)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t i = 0; i < P; ++i)
            for (int64_t j = 0; j < P; ++j)
              out[(b * gh * gw + gy * gw + gx) * K + (c * P + i) * P + j] =
                  img[((b * C + c) * Hi + gy * P + i) * Wi + gx * P + j];
}

}  // namespace cpuformer
