// Scaled dot-product attention: the public entry points (contract in
// attention.hpp). They validate, clamp the window, and call the kernels of
// the instruction set chosen at run time (attention_kernels.hpp: the body is
// in attention_impl_*.hpp, compiled once per level); the scalar reference is
// in attention_reference.cpp.
#include "cpuformer/ops/attention.hpp"

#include <cmath>
#include <utility>

#include "attention_kernels.hpp"
#include "cpuformer/error.hpp"

namespace cpuformer {
namespace detail {

void check_attention_params(const AttentionParams& p, const char* fn) {
  CF_CHECK_VALUE(p.B >= 0 && p.H >= 0 && p.L >= 0 && p.S >= 0, fn, ": expected sizes B, H, L, S >= 0, got B=", p.B,
                 " H=", p.H, " L=", p.L, " S=", p.S);
  CF_CHECK_VALUE(p.D >= 1, fn, ": expected head dim D >= 1, got ", p.D);
  CF_CHECK_VALUE(p.Dv >= 1, fn, ": expected value dim Dv >= 1, got ", p.Dv);
  CF_CHECK_VALUE(std::isfinite(p.scale), fn, ": expected a finite scale, got ", p.scale);
  CF_CHECK_VALUE(p.dropout_p >= 0.0f && p.dropout_p < 1.0f, fn, ": expected 0 <= dropout_p < 1, got ",
                 p.dropout_p);
  CF_CHECK_VALUE(p.window >= -1, fn, ": expected window >= 0 (or -1 for no band), got ", p.window);
  CF_CHECK_VALUE(p.num_global >= 0, fn, ": expected num_global >= 0, got ", p.num_global);
  if (p.layout) {
    CF_CHECK_VALUE(p.layout_block >= 1, fn, ": expected layout_block >= 1, got ", p.layout_block);
    CF_CHECK_VALUE(p.layout_cols >= (p.S + p.layout_block - 1) / p.layout_block, fn, ": expected layout_cols >= ",
                   (p.S + p.layout_block - 1) / p.layout_block, " (S=", p.S, ", layout_block=", p.layout_block,
                   "), got ", p.layout_cols);
  }
}

}  // namespace detail

namespace {

void check_operand(const void* data, const char* fn, const char* name) {
  CF_CHECK_VALUE(data != nullptr, fn, ": ", name, " has a null data pointer");
}

// A window wider than the problem is no band at all; clamping keeps the band
// arithmetic far from overflow.
AttentionParams clamped(const AttentionParams& p) {
  AttentionParams c = p;
  if (c.window > c.L + c.S) c.window = -1;
  if (c.window < 0) c.num_global = 0;
  return c;
}

}  // namespace

void attention_forward(StridedBHT<float> out, float* lse, StridedBHT<const float> q, StridedBHT<const float> k,
                       StridedBHT<const float> v, const AttentionParams& params) {
  detail::check_attention_params(params, "attention_forward");
  const AttentionParams p = clamped(params);
  if (p.B == 0 || p.H == 0 || p.L == 0) return;
  check_operand(out.data, "attention_forward", "out");
  check_operand(lse, "attention_forward", "lse");
  check_operand(q.data, "attention_forward", "q");
  if (p.S > 0) {
    check_operand(k.data, "attention_forward", "k");
    check_operand(v.data, "attention_forward", "v");
  }
  detail::attention_kernels().forward(out, lse, q, k, v, p);
}

void attention_backward(StridedBHT<float> dq, StridedBHT<float> dk, StridedBHT<float> dv,
                        StridedBHT<const float> dout, StridedBHT<const float> q, StridedBHT<const float> k,
                        StridedBHT<const float> v, StridedBHT<const float> out, const float* lse,
                        const AttentionParams& params) {
  detail::check_attention_params(params, "attention_backward");
  const AttentionParams p = clamped(params);
  const bool want_q = dq.data != nullptr, want_kv = dk.data != nullptr || dv.data != nullptr;
  if (p.B == 0 || p.H == 0 || p.L == 0 || p.S == 0 || (!want_q && !want_kv)) return;
  for (auto [ptr, name] : {std::pair<const void*, const char*>{dout.data, "dout"}, {q.data, "q"}, {k.data, "k"},
                           {v.data, "v"}, {out.data, "out"}, {lse, "lse"}})
    check_operand(ptr, "attention_backward", name);
  detail::attention_kernels().backward(dq, dk, dv, dout, q, k, v, out, lse, p);
}

}  // namespace cpuformer
