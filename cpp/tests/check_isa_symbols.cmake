# CTest script: the files compiled for AVX2 or AVX-512 (the GEMM, the vector
# kernel families of src/ops/isa_dispatch.hpp, the FMA probe, the
# low-precision kernels) must define no code the linker could share with the
# rest of the library (inline or template functions emitted as weak symbols),
# or a generic caller could end up running AVX-512 instructions. Only their
# entry points may be global.
#   cmake -DNM=<nm> -DOBJECTS=<list of object files> -DEXPECTED=<count> -P check_isa_symbols.cmake
set(_checked 0)
foreach(_obj IN LISTS OBJECTS)
  if(NOT _obj MATCHES "[/\\](kernels|attention_kernels|vector_kernels|fma_peak|lowp)_(avx2|avx512|amx)\\.cpp\\.o(bj)?$")
    continue()
  endif()
  math(EXPR _checked "${_checked} + 1")
  # The instruction set of this object: templates instantiated in Eigen's
  # namespace renamed for it (-DEigen=cpuformer_eigen_<isa>, one set of
  # flags per name) can only be shared with objects compiled the same way.
  string(REGEX MATCH "_(avx2|avx512|amx)\\.cpp\\.o(bj)?$" _isa "${_obj}")
  set(_isa "${CMAKE_MATCH_1}")
  execute_process(COMMAND ${NM} -C --defined-only ${_obj} OUTPUT_VARIABLE _syms RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${NM} failed on ${_obj}")
  endif()
  string(REPLACE "\n" ";" _lines "${_syms}")
  foreach(_line IN LISTS _lines)
    # Code symbols: T (global), W/w (weak), i (ifunc), u (unique global).
    if(_line MATCHES "^[0-9a-fA-F]+ [TWwiu] (.*)$")
      set(_name "${CMAKE_MATCH_1}")
      if(_name MATCHES "cpuformer_eigen_${_isa}::")
        continue()
      endif()
      if(NOT _name MATCHES "^cpuformer::detail::(packed_gemm|packed_gemm_prepacked|prepack_weight|gemv_nt|fma_chains|attention_kernels|vector_kernels|lowp_int8|lowp_bf16|lowp_bf16_pack|lowp_int8_peak|lowp_bf16_peak)_(avx2|avx512|amx)\\(")
        message(SEND_ERROR "${_obj}: shared code symbol ${_name}")
      endif()
    endif()
  endforeach()
endforeach()
if(NOT _checked EQUAL EXPECTED)
  message(FATAL_ERROR "expected ${EXPECTED} per-instruction-set objects among OBJECTS, found ${_checked}")
endif()
message(STATUS "dispatch objects define only their entry points")
