// BigBird: the block layout's properties (global, window, random blocks,
// causal prefix consistency, seeds), and the kernel against full attention
// under the layout as an explicit additive mask (forward and backward) and
// against the scalar reference; argument checks.
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "bht_buffer.hpp"
#include "check.hpp"
#include "cpuformer/error.hpp"
#include "cpuformer/ops/bigbird_attention.hpp"
#include "cpuformer/runtime/rng.hpp"

using namespace cpuformer;
using cftest::Buf;
using cftest::max_diff;

namespace {

BigBirdLayoutParams lp_of(int64_t bs, int64_t w, int64_t g, int64_t r, bool causal, uint64_t seed = 0) {
  BigBirdLayoutParams lp;
  lp.block_size = bs, lp.num_window_blocks = w, lp.num_global_blocks = g, lp.num_random_blocks = r;
  lp.is_causal = causal, lp.seed = seed;
  return lp;
}

}  // namespace

CF_TEST(layout_has_global_window_and_random_blocks) {
  for (bool causal : {false, true}) {
    const int64_t T = 1000, bs = 32, nb = 32, w = 3, g = 2, r = 3;
    const auto L = bigbird_layout(T, lp_of(bs, w, g, r, causal, 7));
    CHECK(static_cast<int64_t>(L.size()) == nb * nb);
    for (int64_t a = 0; a < nb; ++a) {
      const int64_t last = causal ? a : nb - 1;
      for (int64_t c = last + 1; c < nb; ++c) CHECK(!L[a * nb + c]);  // causal: nothing after the block
      if (a < g) {
        for (int64_t c = 0; c <= last; ++c) CHECK(L[a * nb + c]);
        continue;
      }
      for (int64_t c = 0; c < g; ++c) CHECK(L[a * nb + c]);
      const int64_t lo = causal ? a - w + 1 : a - w / 2, hi = causal ? a : a - w / 2 + w - 1;
      int64_t window = 0, random = 0, cand = 0;
      for (int64_t c = g; c <= last; ++c) {
        const bool in_window = c >= lo && c <= hi;
        if (in_window) {
          CHECK(L[a * nb + c]);
          ++window;
        } else {
          ++cand;
          random += L[a * nb + c] ? 1 : 0;
        }
      }
      CHECK(random == std::min(r, cand));
    }
  }
}

CF_TEST(causal_layout_is_a_prefix_and_seeded) {
  const auto lp = lp_of(16, 3, 1, 2, true, 11);
  const auto big = bigbird_layout(16 * 40, lp);
  for (int64_t T : {1, 16, 17, 100, 16 * 39 + 5}) {
    const int64_t nb = (T + 15) / 16;
    auto lp2 = lp;
    lp2.strict = false;
    const auto small = bigbird_layout(T, lp2);
    for (int64_t a = 0; a < nb; ++a)
      for (int64_t c = 0; c < nb; ++c) CHECK(small[a * nb + c] == big[a * 40 + c]);
  }
  CHECK(bigbird_layout(640, lp) == big);  // deterministic
  auto other = lp;
  other.seed = 12;
  CHECK(bigbird_layout(640, other) != big);
  auto nc = lp;
  nc.is_causal = false;
  CHECK(bigbird_layout(640, nc) != bigbird_layout(640, [&] { auto x = nc; x.seed = 12; return x; }()));
}

CF_TEST(kernel_matches_explicit_mask_and_reference) {
  const int64_t B = 2, H = 2, D = 9, Dv = 11;
  struct Case { int64_t T, bs, w, g, r; };
  for (bool causal : {false, true})
    for (const Case cs : {Case{150, 16, 3, 1, 2}, Case{150, 5, 2, 2, 3}, Case{131, 64, 1, 0, 0},
                          Case{200, 7, 3, 2, 1}, Case{2, 1, 1, 0, 0}, Case{1, 64, 3, 2, 3}, Case{97, 10, 0, 1, 2}}) {
      const int64_t T = cs.T;
      Buf q(B, H, T, D, 1, 2.0f), k(B, H, T, D, 2), v(B, H, T, Dv, 3), g(B, H, T, Dv, 4);
      BigBirdParams s;
      s.B = B, s.H = H, s.T = T, s.D = D, s.Dv = Dv;
      s.layout = lp_of(cs.bs, cs.w, cs.g, cs.r, causal, 5);
      s.layout.strict = false;
      s.scale = 1.0f / std::sqrt(float(D));
      std::vector<uint8_t> pad(static_cast<size_t>(B * T), 0);
      pad[static_cast<size_t>(T - 1)] = 1;
      if (T > 4) pad[static_cast<size_t>(T + 3)] = 1;
      s.key_padding = pad.data();
      Buf out(B, H, T, Dv), ref(B, H, T, Dv);
      std::vector<float> lse(static_cast<size_t>(B * H * T)), lse_ref(lse.size());
      bigbird_attention_forward(out.v(), lse.data(), q.c(), k.c(), v.c(), s);
      const auto layout = bigbird_layout(T, s.layout);
      const AttentionParams p = bigbird_attention_params(s, layout);
      attention_forward_reference(ref.v(), lse_ref.data(), q.c(), k.c(), v.c(), p);
      CHECK(max_diff(out.d, ref.d) < 2e-5);
      // Full attention with the layout as an explicit additive mask.
      const int64_t nb = (T + cs.bs - 1) / cs.bs;
      std::vector<float> mask(static_cast<size_t>(T * T));
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j)
          mask[i * T + j] = layout[(i / cs.bs) * nb + j / cs.bs] ? 0.0f : -std::numeric_limits<float>::infinity();
      AttentionParams pm = p;
      pm.layout = nullptr;
      pm.mask = mask.data();
      Buf out_m(B, H, T, Dv);
      std::vector<float> lse_m(lse.size());
      attention_forward(out_m.v(), lse_m.data(), q.c(), k.c(), v.c(), pm);
      CHECK(max_diff(out.d, out_m.d) < 1e-5);
      Buf dq(B, H, T, D), dk(B, H, T, D), dv(B, H, T, Dv), dq_m(B, H, T, D), dk_m(B, H, T, D), dv_m(B, H, T, Dv);
      bigbird_attention_backward(dq.v(), dk.v(), dv.v(), g.c(), q.c(), k.c(), v.c(), out.c(), lse.data(), s);
      attention_backward(dq_m.v(), dk_m.v(), dv_m.v(), g.c(), q.c(), k.c(), v.c(), out_m.c(), lse_m.data(), pm);
      CHECK(max_diff(dq.d, dq_m.d) < 1e-4);
      CHECK(max_diff(dk.d, dk_m.d) < 1e-4);
      CHECK(max_diff(dv.d, dv_m.d) < 1e-4);
      // Only dq, or only dk/dv: the two-pass backward visits the same tiles.
      Buf dq2(B, H, T, D), dk2(B, H, T, D), dv2(B, H, T, Dv);
      bigbird_attention_backward(dq2.v(), {}, {}, g.c(), q.c(), k.c(), v.c(), out.c(), lse.data(), s);
      bigbird_attention_backward({}, dk2.v(), dv2.v(), g.c(), q.c(), k.c(), v.c(), out.c(), lse.data(), s);
      CHECK(max_diff(dq.d, dq2.d) < 1e-5);
      CHECK(max_diff(dk.d, dk2.d) < 1e-5);
      CHECK(max_diff(dv.d, dv2.d) < 1e-5);
    }
}

CF_TEST(bigbird_argument_checks) {
  CHECK_THROWS(ValueError, bigbird_layout(100, lp_of(0, 3, 2, 3, false)));
  CHECK_THROWS(ValueError, bigbird_layout(100, lp_of(16, -1, 2, 3, false)));
  CHECK_THROWS(ValueError, bigbird_layout(100, lp_of(16, 3, -2, 3, false)));
  CHECK_THROWS(ValueError, bigbird_layout(100, lp_of(16, 3, 2, -3, false)));
  CHECK_THROWS(ValueError, bigbird_layout(-1, lp_of(16, 3, 2, 3, false)));
  // 7 blocks, 2 global, window 3: the middle blocks have 2 candidates.
  CHECK_THROWS(ValueError, bigbird_layout(7 * 16, lp_of(16, 3, 2, 3, false)));
  CHECK(bigbird_layout(7 * 16, lp_of(16, 3, 2, 2, false)).size() == 49);
  // Causal: the last of 7 blocks has blocks 2, 3 before its window.
  CHECK_THROWS(ValueError, bigbird_layout(7 * 16, lp_of(16, 3, 2, 3, true)));
  CHECK(bigbird_layout(7 * 16, lp_of(16, 3, 2, 2, true)).size() == 49);
  auto lp = lp_of(16, 3, 2, 3, false);
  lp.strict = false;
  CHECK(bigbird_layout(7 * 16, lp).size() == 49);
}

CF_TEST_MAIN()
