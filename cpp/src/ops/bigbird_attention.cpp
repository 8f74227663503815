// BigBird block layout and attention; contract in bigbird_attention.hpp. The
// attention itself is the flash kernel (ops/attention.cpp) visiting only the
// tiles that meet a cell of the layout.
#include "cpuformer/ops/bigbird_attention.hpp"

#include <algorithm>

#include "cpuformer/error.hpp"
#include "cpuformer/runtime/rng.hpp"

namespace cpuformer {
namespace {

// Key block range [lo, hi] of query block a's window (clipped to [0, nb)).
void window_of(int64_t a, int64_t nb, const BigBirdLayoutParams& lp, int64_t* lo, int64_t* hi) {
  const int64_t w = lp.num_window_blocks;
  if (w == 0) {
    *lo = 0;
    *hi = -1;
    return;
  }
  const int64_t first = lp.is_causal ? a - w + 1 : a - w / 2;
  *lo = std::max<int64_t>(0, first);
  *hi = std::min(nb - 1, first + w - 1);
  if (lp.is_causal) *hi = std::min(*hi, a);
}

// Random-block candidates of non-global query block a: neither window nor
// global, and (causal) not after a. Depends on nb only when not causal.
void candidates_of(int64_t a, int64_t nb, const BigBirdLayoutParams& lp, std::vector<int64_t>* out) {
  int64_t lo, hi;
  window_of(a, nb, lp, &lo, &hi);
  out->clear();
  const int64_t last = lp.is_causal ? a : nb - 1;
  for (int64_t c = lp.num_global_blocks; c <= last; ++c)
    if (c < lo || c > hi) out->push_back(c);
}

}  // namespace

void check_bigbird_layout_params(const BigBirdLayoutParams& lp, const char* fn) {
  CF_CHECK_VALUE(lp.block_size >= 1, fn, ": block_size must be >= 1, got ", lp.block_size);
  CF_CHECK_VALUE(lp.num_window_blocks >= 0, fn, ": num_window_blocks must be >= 0, got ", lp.num_window_blocks);
  CF_CHECK_VALUE(lp.num_global_blocks >= 0, fn, ": num_global_blocks must be >= 0, got ", lp.num_global_blocks);
  CF_CHECK_VALUE(lp.num_random_blocks >= 0, fn, ": num_random_blocks must be >= 0, got ", lp.num_random_blocks);
}

std::vector<uint8_t> bigbird_layout(int64_t T, const BigBirdLayoutParams& lp) {
  check_bigbird_layout_params(lp, "bigbird_layout");
  CF_CHECK_VALUE(T >= 0, "bigbird_layout: T must be >= 0, got ", T);
  const int64_t nb = (T + lp.block_size - 1) / lp.block_size;
  CF_CHECK_VALUE(nb <= 16384, "bigbird_layout: T=", T, " with block_size=", lp.block_size, " gives ", nb,
                 " blocks; at most 16384 are supported (the layout holds nb² bytes)");
  std::vector<uint8_t> layout(static_cast<size_t>(nb * nb), 0);
  const int64_t g = std::min(lp.num_global_blocks, nb);
  std::vector<int64_t> cand;
  if (lp.strict && lp.num_random_blocks > 0 && g < nb) {
    // Not causal: every non-global block needs r candidates; the fewest are
    // where the window is whole. Causal: the last block, the longest past.
    int64_t fewest = -1, where = -1;
    for (int64_t a = lp.is_causal ? nb - 1 : g; a < nb; ++a) {
      candidates_of(a, nb, lp, &cand);
      if (fewest < 0 || static_cast<int64_t>(cand.size()) < fewest) {
        fewest = static_cast<int64_t>(cand.size());
        where = a;
      }
    }
    CF_CHECK_VALUE(lp.num_random_blocks <= fewest, "bigbird: num_random_blocks=", lp.num_random_blocks,
                   " is more than the ", fewest, " key block(s) query block ", where,
                   " has outside its window and the global blocks (T=", T, ", block_size=", lp.block_size, ": ",
                   nb, " blocks", lp.is_causal ? ", causal: random blocks come from the past" : "", ")");
  }
  for (int64_t a = 0; a < nb; ++a) bigbird_layout_row(a, nb, lp, layout.data() + a * nb);
  return layout;
}

void bigbird_layout_row(int64_t a, int64_t nb, const BigBirdLayoutParams& lp, uint8_t* row) {
  std::fill(row, row + nb, uint8_t{0});
  const int64_t g = std::min(lp.num_global_blocks, nb);
  const int64_t last = lp.is_causal ? a : nb - 1;
  if (a < g) {  // global query block: every key block
    std::fill(row, row + last + 1, uint8_t{1});
    return;
  }
  std::fill(row, row + g, uint8_t{1});
  int64_t lo, hi;
  window_of(a, nb, lp, &lo, &hi);
  for (int64_t c = lo; c <= hi; ++c) row[c] = 1;
  std::vector<int64_t> cand;
  candidates_of(a, nb, lp, &cand);
  const int64_t n = static_cast<int64_t>(cand.size()), r = std::min(lp.num_random_blocks, n);
  // Partial Fisher-Yates: the first r of a seeded shuffle of the candidates.
  const uint64_t key = lp.seed ^ 0xB16B12D5EEDull;
  for (int64_t t = 0; t < r; ++t) {
    const uint64_t bits = rng_bits(key, (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(t));
    const int64_t pick = t + static_cast<int64_t>(bits % static_cast<uint64_t>(n - t));
    std::swap(cand[static_cast<size_t>(t)], cand[static_cast<size_t>(pick)]);
    row[cand[static_cast<size_t>(t)]] = 1;
  }
}

AttentionParams bigbird_attention_params(const BigBirdParams& s, const std::vector<uint8_t>& layout) {
  const int64_t nb = (s.T + s.layout.block_size - 1) / s.layout.block_size;
  CF_CHECK_VALUE(static_cast<int64_t>(layout.size()) == nb * nb, "bigbird_attention: layout has ", layout.size(),
                 " cells, expected ", nb * nb, " for T=", s.T);
  AttentionParams p;
  p.B = s.B;
  p.H = s.H;
  p.L = p.S = s.T;
  p.D = s.D;
  p.Dv = s.Dv;
  p.scale = s.scale;
  p.is_causal = s.layout.is_causal;
  p.key_padding = s.key_padding;
  p.dropout_p = s.dropout_p;
  p.dropout_key = s.dropout_key;
  p.bf16 = s.bf16;
  p.layout = layout.data();
  p.layout_block = s.layout.block_size;
  p.layout_cols = nb;
  return p;
}

void bigbird_attention_forward(StridedBHT<float> out, float* lse, StridedBHT<const float> q,
                               StridedBHT<const float> k, StridedBHT<const float> v, const BigBirdParams& s) {
  const std::vector<uint8_t> layout = bigbird_layout(s.T, s.layout);
  attention_forward(out, lse, q, k, v, bigbird_attention_params(s, layout));
}

void bigbird_attention_backward(StridedBHT<float> dq, StridedBHT<float> dk, StridedBHT<float> dv,
                                StridedBHT<const float> dout, StridedBHT<const float> q, StridedBHT<const float> k,
                                StridedBHT<const float> v, StridedBHT<const float> out, const float* lse,
                                const BigBirdParams& s) {
  const std::vector<uint8_t> layout = bigbird_layout(s.T, s.layout);
  attention_backward(dq, dk, dv, dout, q, k, v, out, lse, bigbird_attention_params(s, layout));
}

}  // namespace cpuformer
