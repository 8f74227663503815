// Private: how an instruction-set-specific kernel family is compiled and
// chosen at run time. One mechanism for the float32 vector kernels (families
// `attention_kernels`, attention_kernels.hpp, and `vector_kernels`,
// vector_kernels.hpp; the GEMM and low-precision kernels follow the same
// rules with entry points of their own):
//
//  * The family's code is written once, in private headers whose every
//    definition has internal linkage (an anonymous namespace), so each object
//    that includes them has its own copy.
//  * It is compiled into one object per level: <family>_base.cpp for the
//    library's own target (the only one a native build has),
//    <family>_avx2.cpp and <family>_avx512.cpp in a runtime-dispatch build
//    (CPUFORMER_ISA_DISPATCH; empty otherwise), each with its instruction set
//    enabled and Eigen renamed to a namespace of its own
//    (-DEigen=cpuformer_eigen_<isa>, cpp/CMakeLists.txt), so not even an
//    Eigen template compiled with AVX-512 can be merged by the linker with
//    the copy a generic caller uses.
//  * An object's only global code symbol is its entry point <family>_<isa>(),
//    which returns the family's table of function pointers; the CTest
//    isa_objects_share_no_code (cpp/tests/check_isa_symbols.cmake) fails when
//    an AVX2 or AVX-512 object defines anything else (an inline or template
//    function the compiler did not inline, say std::fill<float*, float>).
//  * <family>() returns the table of vector_kernel() (runtime/cpu.hpp),
//    resolved once; the public functions validate their arguments and call
//    through it.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

#include "cpuformer/runtime/cpu.hpp"

namespace cpuformer {
namespace detail {

// The table of vector_kernel()'s level among a family's compiled levels
// (avx2/avx512 are null outside a runtime-dispatch build).
template <class Table>
const Table& pick_isa_table(const Table& (*base)(), const Table& (*avx2)(), const Table& (*avx512)()) {
  switch (vector_kernel()) {
    case VectorKernel::Avx512:
      if (avx512) return avx512();
      break;
    case VectorKernel::Avx2:
      if (avx2) return avx2();
      break;
    default:
      break;
  }
  return base();
}

namespace {  // internal linkage: one copy per instruction-set object

// A 64-byte aligned allocator of internal linkage: a std::vector over it is a
// template instantiated with an internal type, so its member functions have
// internal linkage too and cannot be shared between instruction-set objects
// (std::vector<float> instantiated with AVX-512 could be).
template <class T>
struct LocalAllocator {
  using value_type = T;
  LocalAllocator() = default;
  template <class U>
  LocalAllocator(const LocalAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const LocalAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const LocalAllocator<U>&) const { return false; }
};
template <class T>
using LocalVector = std::vector<T, LocalAllocator<T>>;

}  // namespace
}  // namespace detail
}  // namespace cpuformer
