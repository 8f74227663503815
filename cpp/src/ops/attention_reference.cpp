// The plain O(L·S) attention reference (attention.hpp): scores one row at a
// time, float64 accumulation, the same masks, layout and dropout as the fast
// kernel, so tests can compare them.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention_kernels.hpp"
#include "cpuformer/ops/attention.hpp"
#include "cpuformer/runtime/rng.hpp"

namespace cpuformer {

void attention_forward_reference(StridedBHT<float> out, float* lse, StridedBHT<const float> q,
                                 StridedBHT<const float> k, StridedBHT<const float> v, const AttentionParams& p) {
  detail::check_attention_params(p, "attention_forward_reference");
  const float inv_keep = 1.0f / (1.0f - p.dropout_p);
  std::vector<double> s(static_cast<size_t>(p.S)), acc(static_cast<size_t>(p.Dv));
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h)
      for (int64_t i = 0; i < p.L; ++i) {
        const int64_t bh = b * p.H + h;
        const float* qi = q.at(b, h, i);
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < p.S; ++j) {
          const float* kj = k.at(b, h, j);
          double dot = 0;
          for (int64_t e = 0; e < p.D; ++e) dot += double(qi[e]) * kj[e];
          double x = double(p.scale) * dot;
          if (p.mask) x += p.mask[b * p.mask_stride_b + h * p.mask_stride_h + i * p.S + j];
          const bool off_band = p.window >= 0 && i >= p.num_global && j >= p.num_global &&
                                (i - j > p.window || j - i > p.window);
          const bool off_layout =
              p.layout && !p.layout[(i / p.layout_block) * p.layout_cols + j / p.layout_block];
          if ((p.key_padding && p.key_padding[b * p.S + j]) || (p.is_causal && j > i) || off_band || off_layout)
            x = -std::numeric_limits<double>::infinity();
          s[j] = x;
          mx = std::max(mx, x);
        }
        float* o = out.at(b, h, i);
        if (mx == -std::numeric_limits<double>::infinity()) {
          std::fill(o, o + p.Dv, 0.0f);
          lse[bh * p.L + i] = -std::numeric_limits<float>::infinity();
          continue;
        }
        double sum = 0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < p.S; ++j) {
          const double e = std::exp(s[j] - mx);
          sum += e;
          const bool keep = rng_uniform(p.dropout_key, static_cast<uint64_t>((bh * p.L + i) * p.S + j)) >= p.dropout_p;
          if (!keep) continue;
          const float* vj = v.at(b, h, j);
          for (int64_t e2 = 0; e2 < p.Dv; ++e2) acc[e2] += e * inv_keep * vj[e2];
        }
        for (int64_t e2 = 0; e2 < p.Dv; ++e2) o[e2] = static_cast<float>(acc[e2] / sum);
        lse[bh * p.L + i] = static_cast<float>(mx + std::log(sum));
      }
}

}  // namespace cpuformer
