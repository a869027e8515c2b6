#pragma once
// The computation graph behind a tensor, and its picture in Graphviz DOT.
//
//   Tensor loss = binary_cross_entropy(model(x), y);
//   std::string dot = tools::to_dot(loss);                // ops and tensors
//   tools::save_dot(dot, "out/graph");                    // out/graph.dot, out/graph.svg
//
// The graph is bipartite: op nodes (name and formula) and tensor nodes
// (shape, and for small tensors their values and gradients). An op with
// several outputs (lstm_cell's h and c) has a tensor node for each, its
// edges numbered, and every consumer is joined to the output it read.
// Parameters
// are labelled with their names ("0.weight"); name any tensor with
// set_name() to see it in the picture.
//
// Values of intermediate tensors are known while the tensors are alive, or
// for graphs recorded under tools::CaptureValuesGuard (tools/anomaly.hpp),
// which also keeps the values (and names) of inputs that need no gradient
// (data, targets). Gradients are the leaves' .grad, retained gradients, or those a
// backward trace saw (tools/trace.hpp).
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "tapegrad/autograd.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::tools {

struct GraphTensor {
  enum class Kind {
    Intermediate,  // the output of an op
    Leaf,          // a tensor that requires grad and no op made (a parameter)
    Constant,      // an input that needs no gradient (data, targets)
  };
  std::string id;  // "t0", "t1", ... (ids are per graph)
  Kind kind = Kind::Intermediate;
  std::string name;  // the tensor's name, "" if it has none
  Shape shape;
  DType dtype = kDefaultDType;
  Tensor value;      // undefined when not known
  Tensor grad;       // undefined when not known
  int producer = -1; // the op that made it (Intermediate), index into ops
  int producer_output = 0;  // which of its outputs (lstm_cell: 0 is h, 1 is c)
};

struct GraphOp {
  std::string id;  // "op0", "op1", ... in creation order
  std::shared_ptr<const Node> node;
  std::string name;
  std::string formula;
  std::vector<int> inputs;   // tensor indices, in the op's input order
  std::vector<int> outputs;  // tensor indices, one per output of the node (lstm_cell: h, c)
  int output = -1;           // outputs[0]
};

struct ComputationGraph {
  std::vector<GraphTensor> tensors;
  std::vector<GraphOp> ops;  // in creation order: an op's inputs come before it
  int root = -1;             // tensor index of the tensor the graph was built from
  // The op of `node`, -1 if it is not in the graph.
  int op_index(const Node* node) const;
};

// The graph of every op on the tape behind `root`, walked iteratively.
ComputationGraph build_graph(const Tensor& root);

const char* kind_name(GraphTensor::Kind kind);

// Values of a small tensor as nested lists, e.g. "[[1, 2], [3, 4]]" ("5" for
// a 0-d tensor), each number with `precision` significant digits; "nan"
// and "inf" as such. Tensors with more than max_elements elements give
// "[2x3x4] min … max … mean …" instead.
std::string format_values(const Tensor& tensor, int precision = 4, std::int64_t max_elements = 16);

struct DotOptions {
  bool values = true;               // tensor values, when known
  bool gradients = true;            // gradients, when known
  std::int64_t max_elements = 16;   // larger tensors: shape and summary only
  int precision = 4;                // significant digits
  bool formulas = true;             // each op's formula under its name
  std::string rankdir = "TB";       // "TB" top to bottom (inputs on top), "LR" left to right, "BT", "RL"
  std::string title;                // drawn under the graph when not empty
};

// Graphviz DOT text of a graph (or of the graph behind `root`).
std::string to_dot(const ComputationGraph& graph, const DotOptions& options = {});
std::string to_dot(const Tensor& root, const DotOptions& options = {});

struct RenderOptions {
  std::string format = "svg";     // svg, png or pdf
  std::string program = "dot";    // Graphviz's dot (Debian package graphviz), looked up on PATH
  std::ostream* warnings = nullptr;  // nullptr: std::cerr
};

struct RenderResult {
  std::string dot_path;
  std::string image_path;
  bool rendered = false;
  std::string message;  // why there is no image, when there is none
};

// Writes <stem>.dot, then runs dot to draw <stem>.<format>. Without dot (or
// if it fails) the .dot file is still written, a warning goes to
// options.warnings and the result says why; nothing throws for that. An
// unknown format or an unwritable file throws.
RenderResult save_dot(const std::string& dot, const std::string& stem, const RenderOptions& options = {});

}  // namespace tapegrad::tools
