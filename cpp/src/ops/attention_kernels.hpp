// Private: the flash-attention kernel family (isa_dispatch.hpp). Its body,
// written once for whatever SIMD width the including object is compiled for:
//   attention_impl_blocks.hpp    packets, block GEMM, block staging, masks, logits
//   attention_impl_forward.hpp   forward: query blocks, query rows (decoding)
//   attention_impl_backward.hpp  backward: key blocks, query blocks
// compiled by attention_kernels_base.cpp, attention_kernels_avx2.cpp and
// attention_kernels_avx512.cpp. attention.cpp validates and dispatches.
#pragma once
#include "cpuformer/ops/attention.hpp"

namespace cpuformer {
namespace detail {

// The kernels take validated parameters with the window clamped
// (attention.cpp) and non-empty sizes B, H, L (and S for backward).
struct AttentionKernels {
  void (*forward)(StridedBHT<float> out, float* lse, StridedBHT<const float> q, StridedBHT<const float> k,
                  StridedBHT<const float> v, const AttentionParams& p);
  void (*backward)(StridedBHT<float> dq, StridedBHT<float> dk, StridedBHT<float> dv, StridedBHT<const float> dout,
                   StridedBHT<const float> q, StridedBHT<const float> k, StridedBHT<const float> v,
                   StridedBHT<const float> out, const float* lse, const AttentionParams& p);
};

// The entry point of each compiled level, and the one in use.
const AttentionKernels& attention_kernels_base();
#if defined(CPUFORMER_ISA_DISPATCH)
const AttentionKernels& attention_kernels_avx2();
const AttentionKernels& attention_kernels_avx512();
#endif
const AttentionKernels& attention_kernels();

// The checks every public attention entry point makes (ValueError).
void check_attention_params(const AttentionParams& p, const char* fn);

}  // namespace detail
}  // namespace cpuformer
