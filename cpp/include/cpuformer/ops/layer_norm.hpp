// LayerNorm over the last dimension.
#pragma once
#include <cstdint>

namespace cpuformer {

// Per row n of inp[N,C]: mean[n] = Σx/C, rstd[n] = 1/sqrt(Σ(x-mean)²/C + eps),
// out = (x - mean) * rstd * weight + bias. weight/bias may be null (1 and 0).
// mean/rstd [N] are saved for backward; out and inp may alias.
void layer_norm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                        const float* bias, int64_t N, int64_t C, float eps);

// With xhat = (x-mean)*rstd and g = dout*weight:
// dinp += rstd * (g - mean(g) - xhat * mean(g*xhat)); dweight += Σ_n dout*xhat; dbias += Σ_n dout.
void layer_norm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                         const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C);

}  // namespace cpuformer
