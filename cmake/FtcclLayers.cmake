# Per-component include views: how the build enforces the layering.
#
# Sources name headers by component ("algorithms/ring.h", "util/log.h",
# "transports/ucx/ucx_transport.h"). Putting src/ or the repository root on the include
# path would let any file include any component. Instead each component target gets a
# directory of its own in the build tree, include_views/<target>/, that holds only a
# symlink named after the component (util -> src/util), or, where one source directory
# holds several components (transports/: the interface, ucx, sim), a directory of
# symlinks to that component's own headers. The view is the target's PUBLIC (INTERFACE)
# include directory, so it travels by the usual usage requirements: a target sees its
# own headers and those of the targets it links, nothing else. An algorithm that
# includes "core/communicator.h" then fails to compile (tests/layers checks it).
# include/ (ftccl.h) stays visible to all; tests and tools that need more take
# FTCCL_INTERNAL_INCLUDES (the whole tree) explicitly.

set(FTCCL_INCLUDE_VIEWS ${PROJECT_BINARY_DIR}/include_views)

# ftccl_component_headers(<target> <prefix> <source-dir> [<header>...])
# Makes <source-dir> visible to <target> and its dependents as "<prefix>/...": the whole
# directory, or only the headers listed.
function(ftccl_component_headers target prefix source_dir)
  set(view ${FTCCL_INCLUDE_VIEWS}/${target})
  if(ARGN)
    if(IS_SYMLINK ${view}/${prefix})
      file(REMOVE ${view}/${prefix})  # was a whole-directory view: never write through it
    endif()
    file(MAKE_DIRECTORY ${view}/${prefix})
    foreach(header ${ARGN})
      if(NOT EXISTS ${source_dir}/${header})
        message(FATAL_ERROR "ftccl_component_headers(${target}): no ${source_dir}/${header}")
      endif()
      file(CREATE_LINK ${source_dir}/${header} ${view}/${prefix}/${header} SYMBOLIC)
    endforeach()
  else()
    get_filename_component(parent ${view}/${prefix} DIRECTORY)
    file(MAKE_DIRECTORY ${parent})
    file(CREATE_LINK ${source_dir} ${view}/${prefix} SYMBOLIC)
  endif()
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "INTERFACE_LIBRARY")
    target_include_directories(${target} INTERFACE $<BUILD_INTERFACE:${view}>)
  else()
    target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${view}>)
  endif()
endfunction()
