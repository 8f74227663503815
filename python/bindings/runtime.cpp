#include <pybind11/stl.h>

#include "bindings.hpp"
#include "convert.hpp"
#include "cpuformer/runtime/allocator.hpp"
#include "cpuformer/runtime/autocast.hpp"
#include "cpuformer/runtime/build_info.hpp"
#include "cpuformer/runtime/grad_mode.hpp"
#include "cpuformer/runtime/rng.hpp"
#include "cpuformer/runtime/threads.hpp"

namespace cfpy {

void bind_runtime(py::module_& m) {
  m.def("set_num_threads", &cpuformer::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &cpuformer::get_num_threads);
  m.def("empty_cache", []() {
    py::gil_scoped_release nogil;
    cpuformer::empty_cache();
  });
  m.def("cached_memory", &cpuformer::cached_bytes);
  m.def("set_cache_limit", &cpuformer::set_cache_limit, py::arg("bytes"));
  m.def("cache_limit", &cpuformer::cache_limit);
  m.def("manual_seed", [](int64_t seed) { cpuformer::manual_seed(static_cast<uint64_t>(seed)); }, py::arg("seed"));
  m.def("is_grad_enabled", &cpuformer::grad_enabled);
  m.def("set_grad_enabled", &cpuformer::set_grad_enabled, py::arg("enabled"));
  m.def("get_autocast_dtype", []() { return std::string(cpuformer::dtype_name(cpuformer::autocast_dtype())); });
  m.def(
      "set_autocast_dtype",
      [](const std::string& dtype) { cpuformer::set_autocast_dtype(cpuformer::parse_dtype(dtype, "autocast: dtype")); },
      py::arg("dtype"));
  m.def("bf16_products_native", &cpuformer::bf16_products_native);
  m.def("get_rng_state", []() {
    const cpuformer::RngState s = cpuformer::get_rng_state();
    return py::make_tuple(s.seed, s.counter);
  });
  m.def(
      "set_rng_state",
      [](uint64_t seed, uint64_t counter) { cpuformer::set_rng_state({seed, counter}); }, py::arg("seed"),
      py::arg("counter"));
  m.def("build_info", []() {
    const cpuformer::BuildInfo b = cpuformer::build_info();
    py::dict d;
    d["version"] = b.version;
    d["compiler"] = b.compiler;
    d["build_type"] = b.build_type;
    d["openmp"] = b.openmp;
    d["native"] = b.native;
    d["simd"] = b.simd;
    d["eigen"] = b.eigen;
    d["sanitized"] = b.sanitized;
    d["gemm"] = b.gemm;
    d["gemm_dispatch"] = b.gemm_dispatch;
    d["int8_kernel"] = b.int8_kernel;
    d["bf16_kernel"] = b.bf16_kernel;
    d["vector_kernel"] = b.vector_kernel;
    d["num_threads"] = cpuformer::get_num_threads();
    return d;
  });
}

}  // namespace cfpy
