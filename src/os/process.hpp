#pragma once
// Internal: running another program (gnuplot, Graphviz's dot, addr2line;
// python and chromium in the tests) and waiting for it. The one place that
// spawns processes, so that every caller gets the same behaviour: no shell
// (arguments need no quoting and cannot be misread), "not found" told apart
// from "failed", standard input from /dev/null unless text is given, and
// standard output and error captured or discarded.
#include <optional>
#include <string>
#include <vector>

namespace tapegrad::os {

// The full path of `program` if an executable of that name is on PATH (or
// `program` contains a '/' and is executable), else "".
std::string find_program(const std::string& program);

// Where a child's standard output or error goes.
enum class Output {
  Capture,  // into ProcessResult::out / err
  Discard,  // to /dev/null
};

struct ProcessOptions {
  std::optional<std::string> input{};  // written to the child's standard input, then closed; none: /dev/null
  Output out = Output::Capture;
  Output err = Output::Capture;
};

struct ProcessResult {
  enum class State {
    NotFound,    // args[0] is not an executable on PATH: nothing was run
    NotStarted,  // found, but the system would not start it
    Exited,      // ran and exited; exit_status holds its status
    Signalled,   // ran and was killed by signal `signal`
  };
  State state = State::NotFound;
  std::string program;      // the full path that was run (args[0] when not found)
  std::string start_error;  // the system's reason, when NotStarted
  int exit_status = -1;
  int signal = 0;
  std::string out;  // captured standard output
  std::string err;  // captured standard error

  bool found() const { return state != State::NotFound; }
  bool succeeded() const { return state == State::Exited && exit_status == 0; }
  // What happened, naming the program: "'dot' not found on PATH",
  // "/usr/bin/dot could not be started: Permission denied",
  // "/usr/bin/dot exited with status 1", "/usr/bin/dot was killed by signal 9".
  std::string describe() const;
};

// Runs args[0] (looked up on PATH unless it holds a '/') with args[1...] as
// its arguments, and waits for it. Throws std::invalid_argument for empty
// args; everything that can go wrong with the child is in the result.
// Input and both captured streams are served together, so a child that
// writes much before reading all its input cannot dead-lock with us.
ProcessResult run_process(const std::vector<std::string>& args, const ProcessOptions& options = {});

}  // namespace tapegrad::os
