# Builds and runs the consumer project. Called by ctest with:
#   MODE=subdirectory|installed SOURCE_DIR=<tapegrad> BUILD_DIR=<tapegrad build> WORK_DIR=<scratch>
file(REMOVE_RECURSE ${WORK_DIR})
set(consumer_args)
if(MODE STREQUAL "subdirectory")
  list(APPEND consumer_args -DTAPEGRAD_SOURCE_DIR=${SOURCE_DIR})
else()
  execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix
                  RESULT_VARIABLE status)
  if(status)
    message(FATAL_ERROR "cmake --install failed")
  endif()
  list(APPEND consumer_args -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
endif()
foreach(step
    "${CMAKE_COMMAND};-S;${SOURCE_DIR}/tests/consumer;-B;${WORK_DIR}/build;-DCMAKE_BUILD_TYPE=Release;${consumer_args}"
    "${CMAKE_COMMAND};--build;${WORK_DIR}/build;-j;2"
    "${WORK_DIR}/build/consumer")
  execute_process(COMMAND ${step} RESULT_VARIABLE status)
  if(status)
    message(FATAL_ERROR "consumer (${MODE}) failed at: ${step}")
  endif()
endforeach()
