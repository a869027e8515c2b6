# Runs a program and passes only when it exits with EXPECTED_STATUS and
# EXPECTED_STREAM (STDOUT or STDERR) contains EXPECTED_TEXT, a literal
# string, not a regex (the messages hold brackets and dots). ctest's
# PASS_REGULAR_EXPRESSION alone would ignore the exit status. Usage:
#   cmake -DEXPECTED_STATUS=2 -DEXPECTED_STREAM=STDERR "-DEXPECTED_TEXT=..." -P expect_exit.cmake -- PROGRAM ARGS...
set(command)
set(after_separator FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE 1 ${last})
  if(after_separator)
    list(APPEND command "${CMAKE_ARGV${i}}")
  elseif(CMAKE_ARGV${i} STREQUAL "--")
    set(after_separator TRUE)
  endif()
endforeach()
if(NOT command)
  message(FATAL_ERROR "expect_exit.cmake: no program after --")
endif()
execute_process(COMMAND ${command} RESULT_VARIABLE status OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
if(EXPECTED_STREAM STREQUAL "STDOUT")
  set(output "${stdout}")
elseif(EXPECTED_STREAM STREQUAL "STDERR")
  set(output "${stderr}")
else()
  message(FATAL_ERROR "expect_exit.cmake: EXPECTED_STREAM must be STDOUT or STDERR, got '${EXPECTED_STREAM}'")
endif()
string(FIND "${output}" "${EXPECTED_TEXT}" found)
if(NOT status STREQUAL "${EXPECTED_STATUS}" OR found EQUAL -1)
  message(FATAL_ERROR "expected exit status ${EXPECTED_STATUS} and on ${EXPECTED_STREAM}\n  ${EXPECTED_TEXT}\n"
                      "got exit status ${status}, on stdout\n${stdout}\non stderr\n${stderr}")
endif()
