#pragma once
// Anomaly mode: find the op that first made a NaN or an infinity.
//
//   {
//     tools::AnomalyGuard anomaly;       // or tools::set_anomaly_enabled(true)
//     Tensor loss = model(x);            // throws tools::AnomalyError at the op
//     loss.backward();                   // whose output or input gradient is
//   }                                    // not finite
//
// While it is on, every recorded node keeps the call stack of its creation
// (backtrace(), a few microseconds per op), every op's forward output
// (whether it records a node or not: log(-1) on a constant counts too) and
// every gradient a backward step sends is scanned for NaN and ±Inf, and the first
// one found throws, naming the op, its formula, where the user's code
// created it and its inputs' shapes:
//
//   log: anomaly mode: NaN in the forward output (float64 [4x3], first at
//   [0,1]) of y = ln x; inputs: float64 [4x3]; created at /src/model.cpp:42
//   in Model::forward(tapegrad::Tensor const&)
//
// The call site is the first stack frame outside tapegrad, the standard
// library and system headers and libraries. Frames are turned into function, file and line by addr2line
// (binutils), only when a report is made. File and line need debug
// information in the caller's code (-g, e.g. CMAKE_BUILD_TYPE=RelWithDebInfo);
// without it the site names the function only.
//
// Off by default; when off, recording and backward pay one relaxed atomic
// load per node. The flag is global (all threads), like the guard's scope.
#include <atomic>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tapegrad/autograd.hpp"
#include "tapegrad/shape.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

class Node;
struct OpInfo;

namespace tools {

bool anomaly_enabled();
void set_anomaly_enabled(bool enabled);

// Anomaly mode on (or off) for a scope; the previous setting comes back at
// its end.
class AnomalyGuard {
 public:
  explicit AnomalyGuard(bool enabled = true);
  ~AnomalyGuard();
  AnomalyGuard(const AnomalyGuard&) = delete;
  AnomalyGuard& operator=(const AnomalyGuard&) = delete;

 private:
  bool previous_;
};

// One frame of a symbolised call stack. file is empty and line 0 when the
// code has no debug information; function is empty when nothing is known.
struct StackFrame {
  void* address = nullptr;
  std::string function;  // demangled
  std::string file;
  int line = 0;
  std::string module;    // the executable or shared library
  bool internal = false;  // tapegrad's own code, the standard library's or a system library's
  // "file:line in function", "function", or the module and address.
  std::string str() const;
};

// Symbolises return addresses (as recorded by anomaly mode), innermost
// first; inlined calls become frames of their own when debug information
// allows.
std::vector<StackFrame> symbolize(const std::vector<void*>& stack);

// Where the user's code created `node`: the first frame outside tapegrad.
// Empty frame (function and file empty) when the node was recorded outside
// anomaly mode or nothing could be symbolised.
StackFrame creation_site(const Node& node);

// Thrown by anomaly mode at the first non-finite value.
class AnomalyError : public std::runtime_error {
 public:
  AnomalyError(const std::string& message, std::string op, std::string phase, StackFrame site,
               std::vector<Shape> input_shapes)
      : std::runtime_error(message),
        op_(std::move(op)),
        phase_(std::move(phase)),
        site_(std::move(site)),
        input_shapes_(std::move(input_shapes)) {}
  const std::string& op() const { return op_; }
  // "forward" (the op's output) or "backward" (a gradient it sent).
  const std::string& phase() const { return phase_; }
  const StackFrame& call_site() const { return site_; }
  const std::vector<Shape>& input_shapes() const { return input_shapes_; }

 private:
  std::string op_;
  std::string phase_;
  StackFrame site_;
  std::vector<Shape> input_shapes_;
};

// What anomaly mode and value capture record about a node when it is
// created: the call stack in anomaly mode, the values of its output and
// inputs while values are captured. Kept beside the node (in the tape
// hooks' table, tape_hooks.hpp), for as long as the node lives.
struct NodeDebugInfo {
  std::vector<void*> stack;          // return addresses, innermost first
  Tensor value;                      // the output (detached); output 0 of an op with several
  std::vector<Tensor> more_values;   // outputs 1.. of an op with several (detached)
  std::vector<Tensor> input_values;  // the inputs (detached), in input order
};

// What was recorded about `node`, or null for a node recorded with both
// tools off. The pointer stays valid while the node lives.
const NodeDebugInfo* debug_info(const Node& node);

// Keeps, while alive, the values of every recorded node's output and inputs
// (detached handles sharing their buffers), so that graph pictures and
// backward traces can show intermediate values even after the tensors
// themselves are gone. Memory: one handle per node and input, nothing is
// copied. Global, like anomaly mode.
class CaptureValuesGuard {
 public:
  CaptureValuesGuard();
  ~CaptureValuesGuard();
  CaptureValuesGuard(const CaptureValuesGuard&) = delete;
  CaptureValuesGuard& operator=(const CaptureValuesGuard&) = delete;
};

}  // namespace tools

}  // namespace tapegrad
