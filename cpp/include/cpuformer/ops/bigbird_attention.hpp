// BigBird block-sparse attention (Zaheer et al. 2020), exact:
//
//   positions are cut into blocks of block_size (the last one may be partial),
//   nb = ceil(T / block_size). Query block a sees key block c when
//   layout[a][c] is set, where
//     global   a < num_global_blocks or c < num_global_blocks
//              (the first blocks attend to and are attended by every block)
//     window   not causal: c in [a - w/2, a - w/2 + w - 1]  (w = num_window_blocks;
//              centred: 3 -> a-1, a, a+1; 2 -> a-1, a)
//              causal:     c in [a - w + 1, a]               (trailing)
//     random   num_random_blocks blocks per non-global query block, drawn from
//              `seed` among the key blocks that are neither window nor
//              global (causal: only from the past, c < a, or c <= a when w = 0)
//   causal also clears every c > a, and inside a block keeps only j <= i.
//   key j is visible to query i  <=>  layout[i / bs][j / bs]
//                                      and (j <= i when causal) and key j is not padding
//   out_i = Σ_j p_ij v_j,  p_i = softmax over the visible keys of scale·q_i·k_j
//
// The draw for query block a depends only on (seed, a, the candidate list),
// and a causal block's candidates only on a, so a causal layout for T is the
// top-left corner of the layout for any longer T: a KV cache stays valid as
// the sequence grows. The kernel is the flash kernel of ops/attention with
// AttentionParams::layout set: it visits only the tiles that meet a cell of
// the layout, never a T x T matrix. Cost O(T · (w + g + r) · block_size · D)
// plus the global rows; memory linear in T (the layout itself is nb² bytes).
#pragma once
#include <cstdint>
#include <vector>

#include "cpuformer/ops/attention.hpp"

namespace cpuformer {

struct BigBirdLayoutParams {
  int64_t block_size = 64;         // >= 1
  int64_t num_window_blocks = 3;   // >= 0
  int64_t num_global_blocks = 2;   // >= 0
  int64_t num_random_blocks = 3;   // >= 0
  uint64_t seed = 0;
  bool is_causal = false;
  // strict: a query block that cannot get num_random_blocks distinct
  // candidates is a ValueError (not causal: any non-global block; causal:
  // the last block, whose past is the longest; earlier causal blocks take the
  // candidates their past has). Not strict (the models): every block takes
  // min(num_random_blocks, candidates), so short sequences still work.
  bool strict = true;
};

// Checks the counts (ValueError naming the argument).
void check_bigbird_layout_params(const BigBirdLayoutParams& lp, const char* fn);

// Row-major [nb, nb] layout for T positions (nonzero = query block sees key block).
std::vector<uint8_t> bigbird_layout(int64_t T, const BigBirdLayoutParams& lp);
// Row a of that layout for nb blocks (row[0, nb) written; never strict). A
// causal row does not depend on nb: decoding reads one row per step.
void bigbird_layout_row(int64_t a, int64_t nb, const BigBirdLayoutParams& lp, uint8_t* row);

struct BigBirdParams {
  int64_t B = 0, H = 0, T = 0, D = 0, Dv = 0;
  BigBirdLayoutParams layout;
  float scale = 1.0f;                    // usually 1/sqrt(D)
  const uint8_t* key_padding = nullptr;  // optional [B, T], nonzero = masked key
  float dropout_p = 0.0f;                // as AttentionParams
  uint64_t dropout_key = 0;
  bool bf16 = false;                     // as AttentionParams
};

// The flash-kernel parameters over `layout` (which must outlive their use).
AttentionParams bigbird_attention_params(const BigBirdParams& s, const std::vector<uint8_t>& layout);

// out [B,H,T,Dv], lse [B*H*T]; contract of attention_forward.
void bigbird_attention_forward(StridedBHT<float> out, float* lse, StridedBHT<const float> q,
                               StridedBHT<const float> k, StridedBHT<const float> v, const BigBirdParams& s);
// dq/dk/dv += gradients, from out and lse saved by forward.
void bigbird_attention_backward(StridedBHT<float> dq, StridedBHT<float> dk, StridedBHT<float> dv,
                                StridedBHT<const float> dout, StridedBHT<const float> q, StridedBHT<const float> k,
                                StridedBHT<const float> v, StridedBHT<const float> out, const float* lse,
                                const BigBirdParams& s);

}  // namespace cpuformer
