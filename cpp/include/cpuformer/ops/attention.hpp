// Scaled dot-product attention, flash-style: never materialises the L x S
// score matrix. Forward keeps one log-sum-exp per query row; backward
// recomputes the probabilities block by block from it.
//
//   s_ij = scale · q_i·k_j + mask_ij          (mask_ij = -inf where masked)
//   p_ij = exp(s_ij - lse_i),  lse_i = log Σ_j exp(s_ij)
//   out_i = Σ_j drop_ij · p_ij · v_j          (drop_ij = keep_ij / (1 - p_drop))
//
// A query row whose every key is masked gets out = 0, lse = -inf, and zero
// gradients (no NaN). NaN inputs propagate to the outputs they touch.
// Calls with L <= 2 query rows (a decoding step over a KV cache) take a
// query-row kernel (logits, softmax, value sum per row; padded keys are not
// read); longer ones the blocked kernel. Same masks, dropout and bf16 rules.
// Sizes B, H, L, S may be 0 (S = 0: every row is fully masked); D, Dv >= 1,
// scale finite, 0 <= dropout_p < 1 (ValueError otherwise). Results do not
// depend on the number of threads. Scratch is linear in L and S.
#pragma once
#include <cstdint>

namespace cpuformer {

// A [B, H, T, X] operand addressed with element strides for b, h and t; the
// last dimension is contiguous. This lets attention read Q/K/V straight out
// of a [B, T, H*D] projection without transposing.
template <class T>
struct StridedBHT {
  T* data = nullptr;
  int64_t stride_b = 0, stride_h = 0, stride_t = 0;
  T* at(int64_t b, int64_t h, int64_t t) const { return data + b * stride_b + h * stride_h + t * stride_t; }
};

struct AttentionParams {
  int64_t B = 0, H = 0, L = 0, S = 0, D = 0, Dv = 0;  // query length L, key length S, qk dim D, value dim Dv
  float scale = 1.0f;                                  // usually 1/sqrt(D)
  bool is_causal = false;  // key j visible to query i only when j <= i (top-left aligned, as torch)
  // Optional additive float mask, element (b,h,i,j) at
  // mask[b*mask_stride_b + h*mask_stride_h + i*S + j]; strides of 0 broadcast.
  // -inf entries mask a key out.
  const float* mask = nullptr;
  int64_t mask_stride_b = 0, mask_stride_h = 0;
  // Optional key padding [B, S]: nonzero means key j of batch b is masked out.
  const uint8_t* key_padding = nullptr;
  // Dropout on the attention probabilities; keep_ij = rng_uniform(dropout_key,
  // ((b*H + h)*L + i)*S + j) >= dropout_p.
  float dropout_p = 0.0f;
  uint64_t dropout_key = 0;
  // Sliding-window band (Longformer): with window >= 0, key j is visible to
  // query i only when |i - j| <= window, or i < num_global, or j < num_global
  // (global tokens attend to and are attended by every position); the other
  // masks still apply. Only key blocks meeting the band (or a global row or
  // column) are visited, so the cost is O(L·window·D) plus the global rows and
  // columns. window = -1: no band. See ops/sparse_attention.hpp.
  int64_t window = -1;
  int64_t num_global = 0;
  // Block-sparse layout (BigBird, ops/bigbird_attention.hpp): with `layout`
  // set, key j is visible to query i only when
  // layout[(i / layout_block) * layout_cols + j / layout_block] is nonzero;
  // the other masks still apply. Only the tiles that meet a nonzero cell are
  // visited, so the cost follows the layout's density. Needs layout_block >= 1,
  // layout_cols >= ceil(S / layout_block) and ceil(L / layout_block) rows.
  const uint8_t* layout = nullptr;
  int64_t layout_block = 0;
  int64_t layout_cols = 0;
  // bf16 products (autocast, runtime/autocast.hpp): the probabilities (after
  // dropout) are rounded to bfloat16 before the value product, and in
  // backward P and dS before the products they enter; q, k, v (and dout)
  // are taken as given: the caller passes bf16-representable values
  // (ops/packed_weight.hpp: round_bf16_inplace). Products accumulate in
  // float32; the softmax statistics (max, sum, lse, D_i) stay float32.
  bool bf16 = false;
};

// out [B,H,L,Dv] (strided), lse [B*H*L] contiguous (index (b*H + h)*L + i).
void attention_forward(StridedBHT<float> out, float* lse, StridedBHT<const float> q, StridedBHT<const float> k,
                       StridedBHT<const float> v, const AttentionParams& p);

// dq/dk/dv += gradients (any may have a null data pointer when not wanted).
// Uses out and lse saved by forward. Deterministic, no atomics: one task per
// (b, h) when there are enough heads to balance the threads, otherwise a pass
// over (b, h, key block) for dk/dv and one over (b, h, query block) for dq;
// both orders add the same terms in the same sequence (bitwise equal).
void attention_backward(StridedBHT<float> dq, StridedBHT<float> dk, StridedBHT<float> dv,
                        StridedBHT<const float> dout, StridedBHT<const float> q, StridedBHT<const float> k,
                        StridedBHT<const float> v, StridedBHT<const float> out, const float* lse,
                        const AttentionParams& p);

// Plain O(L·S) reference (materialises scores one row at a time, float64
// accumulation); kept beside the fast kernel so tests can compare them.
void attention_forward_reference(StridedBHT<float> out, float* lse, StridedBHT<const float> q,
                                 StridedBHT<const float> k, StridedBHT<const float> v, const AttentionParams& p);

}  // namespace cpuformer
