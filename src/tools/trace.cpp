#include "tapegrad/tools/trace.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string_view>
#include <unordered_map>

#include "tapegrad/autograd.hpp"
#include "tapegrad/error.hpp"
#include "tools/json.hpp"

namespace tapegrad::tools {

using detail::json_string;

namespace {

// Ops whose output element i depends on input element i alone (when the
// input has the output's shape): their Jacobian is diagonal, one number per
// element.
bool elementwise_op(std::string_view name) {
  // clang-format off
  static constexpr std::string_view kOps[] = {
      "identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "hard_tanh", "arctan", "sin", "cos",
      "sinc", "gaussian", "bent_identity", "soft_exponential", "binary_step", "sign", "binary_step_ste",
      "sign_ste", "neg", "exp", "log", "sqrt", "abs", "clamp", "pow", "clone", "add", "sub", "mul", "div",
      "maximum", "minimum"};
  // clang-format on
  for (std::string_view op : kOps) {
    if (op == name) return true;
  }
  return false;
}

// sent / upstream elementwise (upstream one element: broadcast), float64,
// NaN where the upstream gradient is 0.
Tensor ratio(const Tensor& sent, const Tensor& upstream) {
  const std::vector<double> s = sent.to_vector();
  const std::vector<double> u = upstream.to_vector();
  std::vector<double> r(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const double d = u.size() == 1 ? u[0] : u[i];
    r[i] = d == 0 ? std::numeric_limits<double>::quiet_NaN() : s[i] / d;
  }
  return from_vector(r, sent.shape(), DType::Float64);
}

std::string label(const ComputationGraph& graph, int index) {
  const GraphTensor& t = graph.tensors[static_cast<std::size_t>(index)];
  std::string out = t.id;
  if (!t.name.empty()) out += " '" + t.name + "'";
  if (t.kind == GraphTensor::Kind::Intermediate) {
    out += " (" + graph.ops[static_cast<std::size_t>(t.producer)].name + " output)";
  } else {
    out += std::string(" (") + kind_name(t.kind) + ")";
  }
  return out + " " + std::string(dtype_name(t.dtype)) + " " + t.shape.str();
}

// --- JSON, written by hand ---

// The shortest text that reads back to the same float32 / float64 value.
void json_number(std::string& out, double v, DType dtype, bool nan_as_null = false) {
  if (std::isnan(v)) {
    out += nan_as_null ? "null" : "\"NaN\"";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
    return;
  }
  char buffer[64];
  const auto result = dtype == DType::Float32 ? std::to_chars(buffer, buffer + sizeof buffer, static_cast<float>(v))
                                              : std::to_chars(buffer, buffer + sizeof buffer, v);
  out.append(buffer, result.ptr);
}

void json_shape(std::string& out, const Shape& shape) {
  out += '[';
  for (std::size_t d = 0; d < shape.rank(); ++d) out += (d ? "," : "") + std::to_string(shape[d]);
  out += ']';
}

// The ids of graph tensors, as a JSON array of strings.
void json_tensor_ids(std::string& out, const ComputationGraph& graph, const std::vector<int>& tensors) {
  out += '[';
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    if (k) out += ',';
    json_string(out, graph.tensors[static_cast<std::size_t>(tensors[k])].id);
  }
  out += ']';
}

// Nested arrays, row-major; a 0-d tensor is a bare number.
void json_values(std::string& out, const std::vector<double>& v, const Shape& shape, DType dtype, bool nan_as_null) {
  if (shape.rank() == 0) {
    json_number(out, v.empty() ? 0.0 : v[0], dtype, nan_as_null);
    return;
  }
  if (v.empty()) {
    out += std::string(shape.rank(), '[') + std::string(shape.rank(), ']');
    return;
  }
  std::vector<std::int64_t> index(shape.rank(), 0);
  for (std::size_t flat = 0; flat < v.size(); ++flat) {
    std::size_t opened = 0;
    for (std::size_t d = shape.rank(); d-- > 0 && index[d] == 0;) ++opened;
    if (flat > 0) out += ',';
    out.append(opened, '[');
    json_number(out, v[flat], dtype, nan_as_null);
    for (std::size_t d = shape.rank(); d-- > 0;) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
      out += ']';
    }
  }
}

// {"shape", "dtype", "values" (null when larger than max_elements),
//  "summary": {"min", "max", "mean", "norm"}} or null when undefined.
void json_tensor(std::string& out, const Tensor& t, std::int64_t max_elements, bool nan_as_null = false) {
  if (!t.defined()) {
    out += "null";
    return;
  }
  const std::vector<double> v = t.to_vector();
  out += "{\"shape\":";
  json_shape(out, t.shape());
  out += ",\"dtype\":";
  json_string(out, dtype_name(t.dtype()));
  out += ",\"values\":";
  if (t.numel() <= max_elements) {
    json_values(out, v, t.shape(), t.dtype(), nan_as_null);
  } else {
    out += "null";
  }
  double lo = INFINITY, hi = -INFINITY, total = 0, squares = 0;
  std::size_t count = 0;
  for (double x : v) {
    if (nan_as_null && std::isnan(x)) continue;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    total += x;
    squares += x * x;
    ++count;
  }
  out += ",\"summary\":";
  if (count == 0) {
    out += "null}";
    return;
  }
  out += "{\"min\":";
  json_number(out, lo, DType::Float64);
  out += ",\"max\":";
  json_number(out, hi, DType::Float64);
  out += ",\"mean\":";
  json_number(out, total / static_cast<double>(count), DType::Float64);
  out += ",\"norm\":";
  json_number(out, std::sqrt(squares), DType::Float64);
  out += "}}";
}

}  // namespace

BackwardTrace trace_backward(const Tensor& root, const TraceOptions& options) {
  if (!root.defined()) throw_invalid("trace_backward", "got an undefined tensor");
  Tensor seed = options.seed;
  if (!seed.defined()) {
    if (root.numel() != 1) {
      throw_invalid("trace_backward", "a gradient can be implied only for a one-element tensor, got ",
                    root.shape().str(), "; pass TraceOptions::seed");
    }
    seed = ones(root.shape(), root.dtype());
  }
  BackwardTrace trace;
  trace.graph_ = build_graph(root);
  trace.seed_ = seed;
  ComputationGraph& graph = trace.graph_;
  std::unordered_map<const Node*, int> op_of;
  for (std::size_t k = 0; k < graph.ops.size(); ++k) op_of.emplace(graph.ops[k].node.get(), static_cast<int>(k));

  const BackwardObserver observer = [&](const BackwardStep& s) {
    const auto found = op_of.find(&s.node);
    if (found == op_of.end()) return;
    const GraphOp& op = graph.ops[static_cast<std::size_t>(found->second)];
    TraceStep step;
    step.index = s.index;
    step.op = found->second;
    // Clones: the engine may reuse its buffers.
    for (std::size_t k = 0; k < s.num_outputs; ++k) {
      const Tensor& upstream = s.grad_outputs != nullptr ? s.grad_outputs[k] : s.grad_output;
      step.grad_outputs.push_back(upstream.defined() ? upstream.clone() : Tensor());
    }
    step.grad_output = step.grad_outputs.front();
    // With several outputs no input has one local derivative per element.
    const bool one_output = s.num_outputs == 1 && step.grad_output.defined();
    const bool one_element_output = one_output && s.grad_output.numel() == 1;
    const bool elementwise = one_output && elementwise_op(op.name);
    for (std::size_t i = 0; i < s.node.inputs().size(); ++i) {
      TraceInput in;
      in.tensor = op.inputs[i];
      in.needs_grad = s.node.inputs()[i].needs_grad();
      if (i < s.input_grads.size() && s.input_grads[i].defined()) in.grad = s.input_grads[i].clone();
      if (!in.grad.defined()) {
        in.local_rule = in.needs_grad ? "no gradient sent" : "needs no gradient";
      } else if (elementwise && in.grad.shape() == s.grad_output.shape()) {
        in.local_derivative = ratio(in.grad, s.grad_output);
        in.local_rule = "elementwise: sent / upstream (nan where upstream is 0)";
      } else if (one_element_output) {
        in.local_derivative = ratio(in.grad, s.grad_output);
        in.local_rule = "one-element output: sent / upstream";
      } else {
        in.local_rule = "see formula";
      }
      step.inputs.push_back(std::move(in));
    }
    trace.steps_.push_back(std::move(step));
  };
  run_backward(root, seed, options.retain_graph, &observer);

  // What the pass taught us: each intermediate's gradient, the leaves' .grad.
  for (const TraceStep& step : trace.steps_) {
    const GraphOp& op = graph.ops[static_cast<std::size_t>(step.op)];
    for (std::size_t k = 0; k < op.outputs.size() && k < step.grad_outputs.size(); ++k) {
      graph.tensors[static_cast<std::size_t>(op.outputs[k])].grad = step.grad_outputs[k];
    }
  }
  for (GraphTensor& t : graph.tensors) {
    if (t.kind == GraphTensor::Kind::Leaf && t.value.defined()) t.grad = t.value.grad();
  }
  return trace;
}

const TraceStep& BackwardTrace::step_for(const Tensor& output) const {
  const int op = output.defined() && output.grad_fn() ? graph_.op_index(output.grad_fn().get()) : -1;
  for (const TraceStep& step : steps_) {
    if (op >= 0 && step.op == op) return step;
  }
  throw_invalid("BackwardTrace::step_for", "no backward step produced this tensor (",
                output.defined() ? output.shape().str() : std::string("undefined"), ")");
}

std::string BackwardTrace::text(const TraceTextOptions& options) const {
  auto values = [&](const Tensor& t) { return format_values(t, options.precision, options.max_elements); };
  std::string out = "Backward trace from " + label(graph_, graph_.root) + ": " + std::to_string(steps_.size()) +
                    " steps, in the order backward visits them\n";
  out += "seed (dL/dL) = " + values(seed_) + "\n";
  for (const TraceStep& step : steps_) {
    const GraphOp& op = graph_.ops[static_cast<std::size_t>(step.op)];
    out += "\nstep " + std::to_string(step.index) + ": " + op.name + " (" + op.id + ")   " + op.formula + "\n";
    const bool several = op.outputs.size() > 1;
    for (std::size_t k = 0; k < op.outputs.size(); ++k) {
      const int tensor = op.outputs[k];
      const std::string y = several ? "y" + std::to_string(k) : std::string("y");
      const Tensor upstream = k < step.grad_outputs.size() ? step.grad_outputs[k] : Tensor();
      out += "  output" + std::string(several ? " " + std::to_string(k) : "  ") + "  " + label(graph_, tensor) + " = " +
             values(graph_.tensors[static_cast<std::size_t>(tensor)].value) + "\n";
      out +=
          "  upstream  dL/d" + y + " = " + (upstream.defined() ? values(upstream) : "none (unused downstream)") + "\n";
    }
    for (std::size_t i = 0; i < step.inputs.size(); ++i) {
      const TraceInput& in = step.inputs[i];
      const GraphTensor& t = graph_.tensors[static_cast<std::size_t>(in.tensor)];
      out += "  input " + std::to_string(i) + "   " + label(graph_, in.tensor) + " = " + values(t.value) + "\n";
      if (!in.grad.defined()) {
        out += "            " + in.local_rule + "\n";
        continue;
      }
      out +=
          "            local ∂y/∂x = " +
          (in.local_derivative.defined() ? values(in.local_derivative) + "   (" + in.local_rule + ")" : in.local_rule) +
          "\n";
      out += "            sent  dL/dx = " + values(in.grad) + "\n";
    }
  }
  return out;
}

std::string BackwardTrace::json(std::int64_t max_elements) const {
  std::string out = "{\"format\":\"tapegrad.backward_trace\",\"version\":1,\"root\":";
  json_string(out, graph_.tensors[static_cast<std::size_t>(graph_.root)].id);
  out += ",\"seed\":";
  json_tensor(out, seed_, max_elements);
  out += ",\n\"nodes\":[";
  bool first = true;
  auto separator = [&] {
    out += first ? "\n" : ",\n";
    first = false;
  };
  for (const GraphTensor& t : graph_.tensors) {
    separator();
    out += "{\"id\":";
    json_string(out, t.id);
    out += ",\"type\":\"tensor\",\"kind\":";
    json_string(out, kind_name(t.kind));
    out += ",\"name\":";
    json_string(out, t.name);
    out += ",\"shape\":";
    json_shape(out, t.shape);
    out += ",\"dtype\":";
    json_string(out, dtype_name(t.dtype));
    out += ",\"producer\":";
    if (t.producer >= 0) {
      json_string(out, graph_.ops[static_cast<std::size_t>(t.producer)].id);
    } else {
      out += "null";
    }
    out += ",\"producer_output\":" + std::to_string(t.producer_output);
    out += ",\"value\":";
    json_tensor(out, t.value, max_elements);
    out += ",\"grad\":";
    json_tensor(out, t.grad, max_elements);
    out += "}";
  }
  for (const GraphOp& op : graph_.ops) {
    separator();
    out += "{\"id\":";
    json_string(out, op.id);
    out += ",\"type\":\"op\",\"op\":";
    json_string(out, op.name);
    out += ",\"formula\":";
    json_string(out, op.formula);
    out += ",\"sequence\":" + std::to_string(op.node->sequence()) + ",\"inputs\":[";
    for (std::size_t i = 0; i < op.inputs.size(); ++i) {
      if (i) out += ',';
      json_string(out, graph_.tensors[static_cast<std::size_t>(op.inputs[i])].id);
    }
    out += "],\"output\":";
    json_string(out, graph_.tensors[static_cast<std::size_t>(op.output)].id);
    out += ",\"output_shape\":";
    json_shape(out, graph_.tensors[static_cast<std::size_t>(op.output)].shape);
    out += ",\"outputs\":";
    json_tensor_ids(out, graph_, op.outputs);
    out += "}";
  }
  out += "],\n\"edges\":[";
  first = true;
  for (const GraphOp& op : graph_.ops) {
    for (std::size_t i = 0; i < op.inputs.size(); ++i) {
      separator();
      out += "{\"from\":";
      json_string(out, graph_.tensors[static_cast<std::size_t>(op.inputs[i])].id);
      out += ",\"to\":";
      json_string(out, op.id);
      out += ",\"input\":" + std::to_string(i) + "}";
    }
    for (std::size_t k = 0; k < op.outputs.size(); ++k) {
      separator();
      out += "{\"from\":";
      json_string(out, op.id);
      out += ",\"to\":";
      json_string(out, graph_.tensors[static_cast<std::size_t>(op.outputs[k])].id);
      out += ",\"input\":null,\"output\":" + std::to_string(k) + "}";
    }
  }
  out += "],\n\"steps\":[";
  first = true;
  for (const TraceStep& step : steps_) {
    const GraphOp& op = graph_.ops[static_cast<std::size_t>(step.op)];
    separator();
    out += "{\"index\":" + std::to_string(step.index) + ",\"op\":";
    json_string(out, op.id);
    out += ",\"name\":";
    json_string(out, op.name);
    out += ",\"formula\":";
    json_string(out, op.formula);
    out += ",\"output\":";
    json_string(out, graph_.tensors[static_cast<std::size_t>(op.output)].id);
    out += ",\"grad_output\":";
    json_tensor(out, step.grad_output, max_elements);
    out += ",\"outputs\":";
    json_tensor_ids(out, graph_, op.outputs);
    out += ",\"grad_outputs\":[";
    for (std::size_t k = 0; k < step.grad_outputs.size(); ++k) {
      if (k) out += ',';
      json_tensor(out, step.grad_outputs[k], max_elements);
    }
    out += "],\"inputs\":[";
    for (std::size_t i = 0; i < step.inputs.size(); ++i) {
      const TraceInput& in = step.inputs[i];
      if (i) out += ',';
      out += "{\"input\":" + std::to_string(i) + ",\"tensor\":";
      json_string(out, graph_.tensors[static_cast<std::size_t>(in.tensor)].id);
      out += std::string(",\"needs_grad\":") + (in.needs_grad ? "true" : "false") + ",\"grad\":";
      json_tensor(out, in.grad, max_elements);
      out += ",\"local_derivative\":";
      json_tensor(out, in.local_derivative, max_elements, /*nan_as_null=*/true);
      out += ",\"local_rule\":";
      json_string(out, in.local_rule);
      out += "}";
    }
    out += "]}";
  }
  out += "]}\n";
  return out;
}

}  // namespace tapegrad::tools
