// LayerNorm over the last dimension.
#pragma once
#include <cstdint>

namespace cpuformer {

// Per row n of inp[N,C]: mean[n] = Σx/C, rstd[n] = 1/sqrt(Σ(x-mean)²/C + eps),
// out = (x - mean) * rstd * weight + bias. weight/bias may be null (1 and 0).
// mean/rstd [N] are saved for backward (either may be null when not needed,
// e.g. at inference); out and inp may alias.
void layer_norm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                        const float* bias, int64_t N, int64_t C, float eps);

// The residual connection and the LayerNorm after it in one pass over each
// row (the inference path of the transformer layers): s = a + b, then
// out = LayerNorm(s) as layer_norm_forward computes it (bitwise the same as
// residual_forward followed by layer_norm_forward). sum, if not null,
// receives s (a pre-LN layer keeps it as its residual stream). out may alias
// a or b; sum may alias a or b; out and sum must differ.
void add_layer_norm_forward(float* out, float* sum, const float* a, const float* b, const float* weight,
                            const float* bias, int64_t N, int64_t C, float eps);

// Only the statistics: mean[N], rstd[N] exactly as layer_norm_forward saves
// them (lets a caller that kept just inp recompute them for backward).
void layer_norm_stats(float* mean, float* rstd, const float* inp, int64_t N, int64_t C, float eps);

// With xhat = (x-mean)*rstd and g = dout*weight:
// dinp += rstd * (g - mean(g) - xhat * mean(g*xhat)); dweight += Σ_n dout*xhat; dbias += Σ_n dout.
// Any gradient pointer may be null; weight null means ones. The row sums for
// dweight/dbias use a fixed blocking that depends on N only, so results are
// bitwise identical for any thread count.
void layer_norm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                         const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C);

}  // namespace cpuformer
