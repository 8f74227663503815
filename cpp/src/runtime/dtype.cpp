#include "cpuformer/runtime/dtype.hpp"

#include "cpuformer/error.hpp"
#include "cpuformer/runtime/autocast.hpp"
#include "cpuformer/runtime/cpu.hpp"

namespace cpuformer {
namespace {
thread_local DType t_autocast = DType::Float32;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::BFloat16:
      return "bfloat16";
    case DType::Int8:
      return "int8";
    default:
      return "float32";
  }
}

DType parse_dtype(const std::string& name, const char* what) {
  if (name == "float32" || name == "fp32") return DType::Float32;
  if (name == "bfloat16" || name == "bf16") return DType::BFloat16;
  if (name == "int8") return DType::Int8;
  throw ValueError(str_cat(what, ": expected \"float32\", \"bfloat16\" or \"int8\", got \"", name.substr(0, 40), name.size() > 40 ? "...\"" : "\""));
}

DType autocast_dtype() { return t_autocast; }

void set_autocast_dtype(DType dtype) {
  CF_CHECK_VALUE(dtype == DType::Float32 || dtype == DType::BFloat16, "autocast: dtype must be float32 or bfloat16, "
                 "got ", dtype_name(dtype), " (int8 is for inference: cpuformer.quantize)");
  t_autocast = dtype;
}

bool bf16_products_native() { return bf16_kernel() >= LowpKernel::Avx512; }

}  // namespace cpuformer
