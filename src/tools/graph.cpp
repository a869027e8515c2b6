#include "tapegrad/tools/graph.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unordered_map>

#include "os/process.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/tools/anomaly.hpp"

namespace tapegrad::tools {

namespace fs = std::filesystem;

namespace {

Tensor live(const std::shared_ptr<TensorImpl>& impl) { return impl ? Tensor(impl) : Tensor(); }

// A value handle that does not keep the graph alive.
Tensor value_of(const Tensor& t) { return t.defined() ? t.detach() : Tensor(); }

std::string number(double v, int precision) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*g", precision, v);
  return buffer;
}

// A DOT double-quoted string: quotes and backslashes escaped; "\n" breaks
// lines (the caller's "\n" characters become DOT's centred line breaks).
std::string dot_quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      continue;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

bool file_starts_with(const std::string& path, const std::string& prefix, std::size_t search = 0) {
  std::ifstream in(path, std::ios::binary);
  std::string head(std::max(prefix.size(), search), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<std::size_t>(in.gcount()));
  return search == 0 ? head.rfind(prefix, 0) == 0 : head.find(prefix) != std::string::npos;
}

}  // namespace

int ComputationGraph::op_index(const Node* node) const {
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].node.get() == node) return static_cast<int>(i);
  }
  return -1;
}

const char* kind_name(GraphTensor::Kind kind) {
  switch (kind) {
    case GraphTensor::Kind::Intermediate: return "intermediate";
    case GraphTensor::Kind::Leaf: return "leaf";
    case GraphTensor::Kind::Constant: return "constant";
  }
  return "?";
}

ComputationGraph build_graph(const Tensor& root) {
  if (!root.defined()) throw_invalid("build_graph", "got an undefined tensor");
  ComputationGraph graph;
  auto add_tensor = [&graph](GraphTensor t) {
    t.id = "t" + std::to_string(graph.tensors.size());
    graph.tensors.push_back(std::move(t));
    return static_cast<int>(graph.tensors.size() - 1);
  };

  if (!root.grad_fn()) {
    GraphTensor t;
    t.kind = root.requires_grad() ? GraphTensor::Kind::Leaf : GraphTensor::Kind::Constant;
    t.name = root.name();
    t.shape = root.shape();
    t.dtype = root.dtype();
    t.value = root;
    t.grad = root.grad();
    graph.root = add_tensor(std::move(t));
    return graph;
  }

  // Every node once, from an explicit stack (graphs can be 100,000 deep).
  std::vector<std::shared_ptr<Node>> nodes;
  std::unordered_map<const Node*, int> seen;
  std::vector<std::shared_ptr<Node>> stack{root.grad_fn()};
  seen.emplace(root.grad_fn().get(), 0);
  while (!stack.empty()) {
    std::shared_ptr<Node> node = std::move(stack.back());
    stack.pop_back();
    for (const Edge& edge : node->inputs()) {
      if (edge.node && seen.emplace(edge.node.get(), 0).second) stack.push_back(edge.node);
    }
    nodes.push_back(std::move(node));
  }
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) { return a->sequence() < b->sequence(); });

  std::unordered_map<const Node*, int> op_of;
  std::unordered_map<const TensorImpl*, int> leaf_of;
  std::unordered_multimap<const Storage*, int> constant_of;
  for (std::size_t k = 0; k < nodes.size(); ++k) {
    const std::shared_ptr<Node>& node = nodes[k];
    const NodeDebugInfo* debug = debug_info(*node);
    GraphOp op;
    op.id = "op" + std::to_string(k);
    op.node = node;
    op.name = node->name();
    op.formula = node->formula();
    for (std::size_t i = 0; i < node->inputs().size(); ++i) {
      const Edge& edge = node->inputs()[i];
      if (edge.node) {
        op.inputs.push_back(graph.ops[static_cast<std::size_t>(op_of.at(edge.node.get()))].outputs.at(edge.output_nr));
      } else if (edge.leaf) {
        auto [it, fresh] = leaf_of.emplace(edge.leaf.get(), 0);
        if (fresh) {
          const Tensor leaf = live(edge.leaf);
          GraphTensor t;
          t.kind = GraphTensor::Kind::Leaf;
          t.name = leaf.name();
          t.shape = leaf.shape();
          t.dtype = leaf.dtype();
          t.value = leaf;
          t.grad = leaf.grad();
          it->second = add_tensor(std::move(t));
        }
        op.inputs.push_back(it->second);
      } else {
        GraphTensor t;
        t.kind = GraphTensor::Kind::Constant;
        t.shape = edge.shape;
        t.dtype = edge.dtype;
        if (debug && i < debug->input_values.size() && debug->input_values[i].defined()) {
          t.value = debug->input_values[i];
          t.name = t.value.name();
          // A captured constant used by several ops is drawn once: same
          // buffer, shape and name means the same tensor.
          const Storage* storage = t.value.impl()->storage.get();
          int found = -1;
          for (auto [it, end] = constant_of.equal_range(storage); it != end && found < 0; ++it) {
            const GraphTensor& other = graph.tensors[static_cast<std::size_t>(it->second)];
            if (other.shape == t.shape && other.dtype == t.dtype && other.name == t.name) found = it->second;
          }
          if (found < 0) {
            found = add_tensor(std::move(t));
            constant_of.emplace(storage, found);
          }
          op.inputs.push_back(found);
          continue;
        }
        op.inputs.push_back(add_tensor(std::move(t)));
      }
    }
    for (std::size_t n = 0; n < node->num_outputs(); ++n) {
      GraphTensor out;
      out.kind = GraphTensor::Kind::Intermediate;
      out.shape = node->output_info(n).shape;
      out.dtype = node->output_info(n).dtype;
      out.producer = static_cast<int>(k);
      out.producer_output = static_cast<int>(n);
      const Tensor captured = !debug ? Tensor() : n == 0 ? debug->value
                              : n - 1 < debug->more_values.size() ? debug->more_values[n - 1]
                                                                  : Tensor();
      if (const Tensor output = live(node->output(n)); output.defined()) {
        out.name = output.name();
        out.value = value_of(output);
        if (output.impl()->retains_grad) out.grad = output.grad();
      } else if (captured.defined()) {
        out.value = captured;
      }
      op.outputs.push_back(add_tensor(std::move(out)));
    }
    op.output = op.outputs.front();
    op_of.emplace(node.get(), static_cast<int>(k));
    graph.ops.push_back(std::move(op));
  }
  graph.root = graph.ops[static_cast<std::size_t>(op_of.at(root.grad_fn().get()))].outputs.at(root.impl()->output_nr);
  // The root handle itself: the user holds it, so its value is known.
  graph.tensors[static_cast<std::size_t>(graph.root)].value = value_of(root);
  if (graph.tensors[static_cast<std::size_t>(graph.root)].name.empty()) {
    graph.tensors[static_cast<std::size_t>(graph.root)].name = root.name();
  }
  return graph;
}

std::string format_values(const Tensor& tensor, int precision, std::int64_t max_elements) {
  if (!tensor.defined()) return "?";
  const Shape& shape = tensor.shape();
  const std::vector<double> v = tensor.to_vector();
  if (static_cast<std::int64_t>(v.size()) > max_elements) {
    double lo = INFINITY, hi = -INFINITY, total = 0;
    for (double x : v) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
      total += x;
    }
    return shape.str() + " min " + number(lo, precision) + " max " + number(hi, precision) + " mean " +
           number(v.empty() ? 0.0 : total / static_cast<double>(v.size()), precision);
  }
  if (shape.rank() == 0) return number(v.empty() ? 0.0 : v[0], precision);
  // Nested brackets, one level per axis.
  std::string out;
  std::vector<std::int64_t> index(shape.rank(), 0);
  for (std::size_t flat = 0; flat < v.size(); ++flat) {
    // Open a bracket for every axis whose index is 0 here.
    std::size_t opened = 0;
    for (std::size_t d = shape.rank(); d-- > 0 && index[d] == 0;) ++opened;
    if (flat > 0) out += ", ";
    out.append(opened, '[');
    out += number(v[flat], precision);
    // Advance the index, closing brackets of axes that wrap.
    for (std::size_t d = shape.rank(); d-- > 0;) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
      out += ']';
    }
  }
  if (v.empty()) out = std::string(shape.rank(), '[') + std::string(shape.rank(), ']');
  return out;
}

std::string to_dot(const ComputationGraph& graph, const DotOptions& options) {
  std::string out = "digraph tapegrad {\n";
  out += "  rankdir=" + options.rankdir + ";\n";
  out += "  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n";
  if (!options.title.empty()) out += "  labelloc=b;\n  label=" + dot_quoted(options.title) + ";\n";
  for (std::size_t i = 0; i < graph.tensors.size(); ++i) {
    const GraphTensor& t = graph.tensors[i];
    std::string label;
    if (!t.name.empty()) {
      label = t.name;
    } else if (t.kind == GraphTensor::Kind::Leaf) {
      label = "leaf";
    } else if (t.kind == GraphTensor::Kind::Constant) {
      label = "constant";
    } else {
      const GraphOp& producer = graph.ops[static_cast<std::size_t>(t.producer)];
      label = producer.name + " output";
      if (producer.outputs.size() > 1) label += " " + std::to_string(t.producer_output);
    }
    label += "\n" + t.shape.str() + " " + dtype_name(t.dtype);
    if (options.values && t.value.defined()) {
      label += "\nvalue " + format_values(t.value, options.precision, options.max_elements);
    }
    if (options.gradients && t.grad.defined()) {
      label += "\ngrad " + format_values(t.grad, options.precision, options.max_elements);
    }
    const char* fill = t.kind == GraphTensor::Kind::Leaf       ? "#cfe2ff"
                       : t.kind == GraphTensor::Kind::Constant ? "#e9ecef"
                                                               : "#ffffff";
    out += "  " + t.id + " [shape=box, style=\"rounded,filled\", fillcolor=\"" + fill + "\"";
    if (static_cast<int>(i) == graph.root) out += ", penwidth=2";
    out += ", label=" + dot_quoted(label) + "];\n";
  }
  for (const GraphOp& op : graph.ops) {
    std::string label = op.name;
    if (options.formulas && !op.formula.empty()) label += "\n" + op.formula;
    out += "  " + op.id + " [shape=ellipse, style=filled, fillcolor=\"#ffe5b4\", label=" + dot_quoted(label) + "];\n";
  }
  for (const GraphOp& op : graph.ops) {
    for (std::size_t i = 0; i < op.inputs.size(); ++i) {
      out += "  " + graph.tensors[static_cast<std::size_t>(op.inputs[i])].id + " -> " + op.id;
      if (op.inputs.size() > 1) out += " [label=\"" + std::to_string(i) + "\"]";
      out += ";\n";
    }
    for (std::size_t k = 0; k < op.outputs.size(); ++k) {
      out += "  " + op.id + " -> " + graph.tensors[static_cast<std::size_t>(op.outputs[k])].id;
      if (op.outputs.size() > 1) out += " [label=\"" + std::to_string(k) + "\"]";
      out += ";\n";
    }
  }
  out += "}\n";
  return out;
}

std::string to_dot(const Tensor& root, const DotOptions& options) { return to_dot(build_graph(root), options); }

RenderResult save_dot(const std::string& dot, const std::string& stem, const RenderOptions& options) {
  if (options.format != "svg" && options.format != "png" && options.format != "pdf") {
    throw_invalid("save_dot", "format '", options.format, "' is not one of svg, png, pdf");
  }
  std::ostream& warn = options.warnings ? *options.warnings : std::cerr;
  RenderResult result;
  result.dot_path = stem + ".dot";
  result.image_path = stem + "." + options.format;
  const fs::path parent = fs::path(stem).parent_path();
  if (!parent.empty()) {
    std::error_code error;
    fs::create_directories(parent, error);
    if (error) throw_runtime("save_dot", "cannot create directory '", parent.string(), "': ", error.message());
  }
  {
    std::ofstream file(result.dot_path, std::ios::binary | std::ios::trunc);
    if (!file) throw_runtime("save_dot", "cannot write '", result.dot_path, "': ", std::strerror(errno));
    file << dot;
    if (!file.flush()) throw_runtime("save_dot", "cannot write '", result.dot_path, "'");
  }
  std::error_code ignored;
  fs::remove(result.image_path, ignored);  // a stale picture must not pass for a new one
  // dot's standard output is discarded; its standard error explains a failure.
  const os::ProcessResult run = os::run_process(
      {options.program, "-T" + options.format, "-o", result.image_path, result.dot_path}, {.out = os::Output::Discard});
  if (!run.found()) {
    result.message = run.describe() + " (Debian package graphviz)";
  } else {
    const bool looks_right = options.format == "svg"   ? file_starts_with(result.image_path, "<svg", 4096)
                             : options.format == "png" ? file_starts_with(result.image_path, "\x89PNG\r\n\x1a\n")
                                                       : file_starts_with(result.image_path, "%PDF");
    if (run.succeeded() && looks_right) {
      result.rendered = true;
    } else {
      std::string errors = run.err.substr(0, 4096);  // a message, not a log
      while (!errors.empty() && (errors.back() == '\n' || errors.back() == '\r')) errors.pop_back();
      result.message = run.describe() + " and drew no " + options.format + (errors.empty() ? "" : ": " + errors);
    }
  }
  if (!result.rendered) {
    warn << "save_dot: warning: " << result.message << "; wrote " << result.dot_path << " but no " << options.format
         << " (draw it with: dot -T" << options.format << " -o " << result.image_path << " " << result.dot_path << ")\n";
  }
  return result;
}

}  // namespace tapegrad::tools
