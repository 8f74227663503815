// Autocast: the precision of the matrix products of the forward passes run
// on this thread (Python: `with cpuformer.autocast(dtype="bfloat16"):`).
//
// Under BFloat16, the products listed in README "Mixed precision" (Linear
// forward and both backward products, the attention score and value products,
// the tied LM heads, the patch projection) round their operands to bfloat16
// (nearest even) and accumulate in float32; everything else (LayerNorm,
// softmax statistics, GELU, losses, the residual stream, optimizer state,
// master weights and gradients) stays float32. Each module records the
// precision of its forward, and its backward uses that one whatever the
// setting at backward time. Thread-local, Float32 by default.
#pragma once
#include "cpuformer/runtime/dtype.hpp"

namespace cpuformer {

DType autocast_dtype();
// Float32 or BFloat16 (ValueError otherwise: int8 is for inference, through
// quantized weights).
void set_autocast_dtype(DType dtype);
// Whether bfloat16 products run on bfloat16 hardware here (AVX512-BF16 or
// AMX-BF16); otherwise they round the operands and multiply in float32, with
// the same results to float rounding, and no faster than float32.
bool bf16_products_native();

class AutocastGuard {
 public:
  explicit AutocastGuard(DType dtype) : prev_(autocast_dtype()) { set_autocast_dtype(dtype); }
  ~AutocastGuard() { set_autocast_dtype(prev_); }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  DType prev_;
};

}  // namespace cpuformer
