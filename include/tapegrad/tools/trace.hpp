#pragma once
// A backward pass, step by step: for each node in the order backward visits
// it, the op and its formula, the gradient reaching its output (upstream),
// the local derivative and the gradient it sends to each input.
//
//   tools::CaptureValuesGuard values;     // optional: keep intermediate values
//   Tensor loss = ...;
//   tools::BackwardTrace trace = tools::trace_backward(loss);   // runs backward
//   std::cout << trace.text();            // readable, one block per step
//   std::ofstream("trace.json") << trace.json();
//
// The local derivative ∂y/∂x of an input is shown where one number per
// element says it all: for elementwise ops (sigmoid, log, mul, ...) when
// the input has the output's shape, and for ops with a one-element output
// (losses, sums), it is the gradient sent divided by the upstream gradient,
// elementwise (undefined where the upstream gradient is 0). Elsewhere (matmul,
// softmax, broadcasting) it is a Jacobian: the trace says "see formula".
//
// The JSON holds the whole picture for other tools: "nodes" (tensors and
// ops with ids, op names, formulas, shapes, dtypes, values and gradients of
// small tensors), "edges" (tensor -> op with the input's position, op ->
// tensor, one per output of the op) and "steps" (the ordered backward
// steps; an op with several outputs, such as lstm_cell's h and c, lists them
// all with their upstream gradients in "outputs" and "grad_outputs"). Values are nested
// arrays in row-major order; NaN and infinities are the strings "NaN",
// "Infinity" and "-Infinity"; an undefined local derivative element is null.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/tensor.hpp"
#include "tapegrad/tools/graph.hpp"

namespace tapegrad::tools {

struct TraceOptions {
  // The gradient to start from; undefined: 1 (the root must have one element).
  Tensor seed;
  bool retain_graph = false;
};

struct TraceInput {
  int tensor = -1;          // index into graph().tensors
  bool needs_grad = false;  // false: a constant, it receives nothing
  Tensor grad;              // the gradient this step sent to the input (undefined if none)
  Tensor local_derivative;  // ∂y/∂x elementwise (NaN where undefined), or undefined: see the formula
  std::string local_rule;   // how local_derivative was obtained, or "see formula"
};

struct TraceStep {
  std::size_t index = 0;  // 0 for the first node visited
  int op = -1;            // index into graph().ops
  Tensor grad_output;     // the upstream gradient dL/dy (of the first output)
  // One per output of the op (lstm_cell: dL/dh, dL/dc); grad_outputs[0] is
  // grad_output; undefined for an output that nothing downstream used.
  std::vector<Tensor> grad_outputs;
  std::vector<TraceInput> inputs;
};

struct TraceTextOptions {
  int precision = 6;               // significant digits
  std::int64_t max_elements = 16;  // larger tensors: shape and summary
};

class BackwardTrace {
 public:
  const ComputationGraph& graph() const { return graph_; }
  const std::vector<TraceStep>& steps() const { return steps_; }
  // The step of the op that produced `output`; throws if it was not visited.
  const TraceStep& step_for(const Tensor& output) const;
  // The readable form: a header, then one block per step.
  std::string text(const TraceTextOptions& options = {}) const;
  // The JSON form (see the top of this file); values of tensors with at
  // most max_elements elements, a summary (min, max, mean, norm) for all.
  std::string json(std::int64_t max_elements = 64) const;

 private:
  friend BackwardTrace trace_backward(const Tensor& root, const TraceOptions& options);
  ComputationGraph graph_;
  std::vector<TraceStep> steps_;
  Tensor seed_;
};

// Builds the graph behind `root`, then runs backward from it (filling
// gradients as root.backward() would) and records every step.
BackwardTrace trace_backward(const Tensor& root, const TraceOptions& options = {});

}  // namespace tapegrad::tools
