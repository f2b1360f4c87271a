# The layering rule, checked on every source file of each component: a file may include
# project headers only from the components listed for its own (LAYERS below), and UCX
# headers (ucp/, uct/, ucs/, ucm/) only under transports/ucx. So an algorithm that
# includes "transports/ucx/ucx_transport.h" or "core/communicator.h" fails the build's
# tests, not only one that includes <ucp/api/ucp.h>. The compiler enforces the project
# headers too (include views, cmake/FtcclLayers.cmake; tests/layers); this check stays for
# the UCX headers, which a system-wide UCX puts in reach of every target.
# usage: cmake -DROOT=<source dir> -P check_layers.cmake
set(LAYERS
  "src/algorithms:algorithms/,reduce/,util/,transports/transport.h,transports/node_memory.h,ftccl.h"
  "transports:transports/,util/"
  "src/health:health/,util/,stats/,recovery/"
  "src/recovery:recovery/,util/"
  "src/bootstrap:bootstrap/,util/,ftccl.h"
  "src/reduce:reduce/,ftccl.h"
  "src/tuning:tuning/,util/,algorithms/,reduce/"
  "src/topology:topology/,util/"
  "src/stats:stats/,util/"
  "src/util:util/,ftccl.h")
set(violations "")
set(checked 0)
foreach(layer ${LAYERS})
  string(REPLACE ":" ";" parts "${layer}")
  list(GET parts 0 dir)
  list(GET parts 1 allowed)
  string(REPLACE "," ";" allowed "${allowed}")
  file(GLOB_RECURSE files ${ROOT}/${dir}/*.h ${ROOT}/${dir}/*.cc)
  if(NOT files)
    message(FATAL_ERROR "no files found under ${ROOT}/${dir}")
  endif()
  foreach(f ${files})
    math(EXPR checked "${checked} + 1")
    file(RELATIVE_PATH rel ${ROOT} ${f})
    file(STRINGS ${f} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
    foreach(line ${lines})
      if(line MATCHES "[<\"](ucp|uct|ucs|ucm)/")
        if(NOT rel MATCHES "^transports/ucx/")
          string(APPEND violations "\n  ${rel}: ${line} (UCX outside transports/ucx)")
        endif()
        continue()
      endif()
      if(NOT line MATCHES "\"([^\"]+)\"")
        continue()  # a system header
      endif()
      set(header ${CMAKE_MATCH_1})
      set(ok FALSE)
      foreach(prefix ${allowed})
        string(LENGTH "${prefix}" n)
        string(SUBSTRING "${header}" 0 ${n} head)
        if(head STREQUAL prefix)
          set(ok TRUE)
        endif()
      endforeach()
      if(NOT ok)
        string(APPEND violations "\n  ${rel}: \"${header}\" (${dir} may include ${allowed})")
      endif()
    endforeach()
  endforeach()
endforeach()
if(violations)
  message(FATAL_ERROR "layering violations:${violations}")
endif()
message(STATUS "checked ${checked} files: every include within its component's layers")
