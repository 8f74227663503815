// Element types for weights and products: the precision a module holds its
// weight matrices in (ops/packed_weight.hpp) and the precision autocast runs
// matrix products in (runtime/autocast.hpp).
#pragma once
#include <string>

namespace cpuformer {

enum class DType { Float32 = 0, BFloat16 = 1, Int8 = 2 };
// "float32", "bfloat16", "int8".
const char* dtype_name(DType dtype);
// The inverse of dtype_name (also "fp32", "bf16"); ValueError naming the
// allowed values otherwise. `what` starts the message ("dtype").
DType parse_dtype(const std::string& name, const char* what = "dtype");

}  // namespace cpuformer
