# The AVX builds of the reduction kernels (src/reduce/reduce_avx2.cc, reduce_avx512.cc)
# are compiled with -mavx2 / -mavx512*. Any symbol such an object defines that another
# object may define too (an inline function or template with external linkage: weak,
# merged by the linker) could be the copy the whole library keeps, and so run AVX code
# on a CPU without it. This check fails unless each ISA object defines no external
# symbol but its own entry points, ftccl::reduce_detail::<isa>:: (and the pointer to the
# C++ personality routine, data that is the same in every object, and on 32-bit x86 the
# PIC thunks, two plain instructions that every object defines alike).
# usage: cmake -DNM=<nm> -DOBJECTS=<object>|<object>... -P check_reduce_isa_objects.cmake
string(REPLACE "|" ";" objects "${OBJECTS}")
set(checked 0)
set(violations "")
foreach(object ${objects})
  if(NOT object MATCHES "reduce_(avx2|avx512)\\.cc\\.o(bj)?$")
    continue()
  endif()
  set(isa ${CMAKE_MATCH_1})
  math(EXPR checked "${checked} + 1")
  execute_process(COMMAND ${NM} -g -C --defined-only ${object}
                  OUTPUT_VARIABLE listing RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} failed on ${object}")
  endif()
  string(REPLACE "\n" ";" lines "${listing}")
  foreach(line ${lines})
    # "<address> <type> <name>": skip the blank lines and the file headers.
    if(NOT line MATCHES "^[0-9a-fA-F]* *[A-Za-z] (.+)$")
      continue()
    endif()
    set(name "${CMAKE_MATCH_1}")
    if(NOT name MATCHES "^ftccl::reduce_detail::${isa}::" AND
       NOT name STREQUAL "DW.ref.__gxx_personality_v0" AND
       NOT name MATCHES "^__x86\\.get_pc_thunk\\.")
      string(APPEND violations "\n  ${object}: ${line}")
    endif()
  endforeach()
endforeach()
if(checked EQUAL 0)
  message(FATAL_ERROR "no ISA objects among: ${OBJECTS}")
endif()
if(violations)
  message(FATAL_ERROR "symbols the linker could take from an AVX build for the others:"
                      "${violations}")
endif()
message(STATUS "checked ${checked} ISA objects: only their own entry points are external")
