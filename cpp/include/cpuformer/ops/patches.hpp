// Image patches (ViT "patchify"): non-overlapping P x P tiles of an image
// batch, each flattened channel-major, i.e. exactly the receptive field of a
// Conv2d with kernel_size = stride = P. So a conv weight [O, C, P, P] reshaped
// to [O, C·P·P] applied to these patches equals that convolution.
//
// Letters: B batch, C channels, Hi/Wi image height/width, P patch size,
// Np = (Hi/P)·(Wi/P) patches (row-major over the patch grid), K = C·P·P.
//   patches[b, gy·(Wi/P) + gx, (c·P + i)·P + j] = img[b, c, gy·P + i, gx·P + j]
// Hi and Wi must be multiples of P (the caller checks shapes).
#pragma once
#include <cstdint>

namespace cpuformer {

// out [B, Np, K] <- img [B, C, Hi, Wi]. A pure permutation (no arithmetic).
void patches_forward(float* out, const float* img, int64_t B, int64_t C, int64_t Hi, int64_t Wi, int64_t P);
// dimg [B, C, Hi, Wi] += the inverse permutation of dout [B, Np, K].
void patches_backward(float* dimg, const float* dout, int64_t B, int64_t C, int64_t Hi, int64_t Wi, int64_t P);

// Plain scalar reference: one loop per index of the formula above.
void patches_forward_reference(float* out, const float* img, int64_t B, int64_t C, int64_t Hi, int64_t Wi,
                               int64_t P);

}  // namespace cpuformer
