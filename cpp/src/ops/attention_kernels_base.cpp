// The flash-attention kernels (attention_kernels.hpp) compiled for the
// library's own target: the machine's in a native build, the baseline x86-64
// (SSE2) of a portable one.
#include "attention_impl_backward.hpp"
#include "attention_impl_forward.hpp"
#include "attention_kernels.hpp"

namespace cpuformer {
namespace detail {

const AttentionKernels& attention_kernels_base() {
  static constexpr AttentionKernels k{&attn::forward, &attn::backward};
  return k;
}

}  // namespace detail
}  // namespace cpuformer
