// Teaching and debugging tools: graph export, backward traces, anomaly
// mode, gradient-flow reports, and the worked examples of the lecture notes
// checked against hand-computed numbers.
#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "os/process.hpp"
#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;
using namespace tapegrad::tools;
namespace fs = std::filesystem;

namespace {

double sigmoid_of(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// The XOR network of examples/xor.cpp as a Sequential: 2-4-1, tanh, sigmoid.
std::shared_ptr<nn::Sequential> xor_network() {
  manual_seed(3);
  return std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(2, 4), std::make_shared<nn::Tanh>(),
                                          std::make_shared<nn::Linear>(4, 1), std::make_shared<nn::Sigmoid>());
}

}  // namespace

// ---------------------------------------------------------------- graph export

TEST_CASE("format_values prints small tensors as nested lists and large ones as a summary", "[tools][graph]") {
  CHECK(format_values(Tensor({{1, 2}, {3, 4.5}})) == "[[1, 2], [3, 4.5]]");
  CHECK(format_values(scalar(0.25, DType::Float64)) == "0.25");
  CHECK(format_values(Tensor({1.0 / 3.0}, DType::Float64), 3) == "[0.333]");
  CHECK(format_values(from_vector({1, 2, 3, 4, 5, 6}, {1, 2, 3})) == "[[[1, 2, 3], [4, 5, 6]]]");
  CHECK(format_values(Tensor({std::nan(""), INFINITY}, DType::Float64)) == "[nan, inf]");
  CHECK(format_values(arange(20.0), 4, 16) == "[20] min 0 max 19 mean 9.5");
  CHECK(format_values(Tensor()) == "?");
}

TEST_CASE("the graph of the XOR network: ops with formulas, tensors with shapes, parameters by name",
          "[tools][graph]") {
  auto model = xor_network();
  const Tensor x({{0, 0}, {0, 1}, {1, 0}, {1, 1}});
  const Tensor y({{0}, {1}, {1}, {0}});
  Tensor loss = mse_loss((*model)(x), y);

  const ComputationGraph graph = build_graph(loss);
  REQUIRE(graph.ops.size() == 5);  // linear, tanh, linear, sigmoid, mse_loss
  CHECK(graph.ops[0].name == "linear");
  CHECK(graph.ops[1].name == "tanh");
  CHECK(graph.ops[4].name == "mse_loss");
  CHECK(graph.ops[4].formula == "loss = mean((ŷ - y)²)");
  // 4 parameters, x and y (constants), 5 op outputs.
  CHECK(graph.tensors.size() == 11);
  const GraphTensor& root = graph.tensors[static_cast<std::size_t>(graph.root)];
  CHECK(root.shape == Shape{});
  CHECK(root.value.item() == loss.item());
  const GraphTensor& first_input = graph.tensors[static_cast<std::size_t>(graph.ops[0].inputs[0])];
  CHECK(first_input.kind == GraphTensor::Kind::Constant);
  CHECK(first_input.shape == Shape{4, 2});
  const GraphTensor& weight = graph.tensors[static_cast<std::size_t>(graph.ops[0].inputs[1])];
  CHECK(weight.kind == GraphTensor::Kind::Leaf);
  CHECK(weight.name == "0.weight");

  const std::string dot = to_dot(graph);
  CHECK(contains(dot, "digraph tapegrad {"));
  CHECK(count(dot, "shape=ellipse") == 5);
  CHECK(count(dot, "shape=box") == 11);
  for (const char* part : {"0.weight\\n[4x2] float32", "0.bias\\n[4] float32", "2.weight\\n[1x4] float32",
                           "linear\\ny = x·Wᵀ + b", "tanh\\ny = tanh x", "sigmoid\\ny = 1 / (1 + e^-x)",
                           "constant\\n[4x2] float32", "mse_loss\\nloss = mean((ŷ - y)²)"}) {
    INFO(part);
    CHECK(contains(dot, part));
  }
  // Edges run forward: tensor -> op -> tensor; multi-input ops number them.
  CHECK(contains(dot, "t0 -> op0 [label=\"0\"];"));
  CHECK(contains(dot, "op4 -> t10;"));

  // After backward the parameters' gradients are in the picture.
  loss.backward();
  DotOptions small;
  small.max_elements = 4;
  const std::string with_grads = to_dot(loss, small);
  CHECK(contains(with_grads, "0.bias\\n[4] float32\\nvalue ["));
  CHECK(contains(with_grads, "\\ngrad ["));

  TempDir dir;
  std::ostringstream warnings;
  const RenderResult r = save_dot(dot, dir.file("xor/graph"), {.warnings = &warnings});
  CHECK(read_file(r.dot_path) == dot);
  if (os::find_program("dot").empty()) {
    CHECK_FALSE(r.rendered);
    WARN("graphviz (dot) is not installed: the SVG is not checked (scripts/setup installs it)");
  } else {
    INFO(r.message);
    REQUIRE(r.rendered);
    const std::string svg = read_file(r.image_path);
    CHECK(contains(svg, "<svg"));
    CHECK(contains(svg, "0.weight"));
    CHECK(contains(svg, "mse_loss"));
    CHECK(warnings.str().empty());
    const RenderResult png = save_dot(dot, dir.file("graph"), {.format = "png"});
    CHECK(png.rendered);
  }
}

TEST_CASE("save_dot without dot writes the DOT file and warns, and rejects unknown formats", "[tools][graph][errors]") {
  TempDir dir;
  std::ostringstream warnings;
  const std::string stem = dir.file("g");
  const RenderResult r =
      save_dot("digraph { a -> b; }\n", stem, {.program = "no-such-dot-program", .warnings = &warnings});
  CHECK_FALSE(r.rendered);
  CHECK(fs::exists(r.dot_path));
  CHECK_FALSE(fs::exists(r.image_path));
  CHECK(r.message == "'no-such-dot-program' not found on PATH (Debian package graphviz)");
  CHECK(warnings.str() ==
        "save_dot: warning: 'no-such-dot-program' not found on PATH (Debian package graphviz); wrote " + stem +
            ".dot but no svg (draw it with: dot -Tsvg -o " + stem + ".svg " + stem + ".dot)\n");
  REQUIRE_THROWS_MESSAGE(save_dot("digraph {}", stem, {.format = "gif"}), std::invalid_argument,
                         "save_dot: format 'gif' is not one of svg, png, pdf");
  if (const std::string dot = os::find_program("dot"); !dot.empty()) {
    // dot runs and fails: the message names it, its status and what it said.
    const RenderResult broken = save_dot("digraph { a -> ", stem, {.warnings = &warnings});
    CHECK_FALSE(broken.rendered);
    CHECK(broken.message.rfind(dot + " exited with status 1 and drew no svg: Error: ", 0) == 0);
    CHECK(contains(broken.message, "syntax error"));
  }
  REQUIRE_THROWS_MESSAGE(build_graph(Tensor()), std::invalid_argument, "build_graph: got an undefined tensor");
}

TEST_CASE("graph export: shared inputs appear once, names and captured values show, deep graphs need no recursion",
          "[tools][graph]") {
  Tensor a = leaf({1, 2});
  a.set_name("a");
  Tensor b = a * a + a;  // a feeds two ops
  const ComputationGraph graph = build_graph(sum(b));
  std::size_t leaves = 0;
  for (const GraphTensor& t : graph.tensors) leaves += t.kind == GraphTensor::Kind::Leaf ? 1 : 0;
  CHECK(leaves == 1);
  CHECK(graph.ops.size() == 3);

  // A temporary's value is gone with it, unless values are captured.
  Tensor data({3, 4}, DType::Float64);
  Tensor without = sum(exp(a) * data);
  CHECK_FALSE(build_graph(without).tensors[2].value.defined());  // exp's output
  Tensor with;
  {
    CaptureValuesGuard capture;
    with = sum(exp(a) * data);
  }
  const ComputationGraph captured = build_graph(with);
  REQUIRE(captured.ops.size() == 3);
  const GraphTensor& exp_out = captured.tensors[static_cast<std::size_t>(captured.ops[0].output)];
  CHECK(exp_out.value.to_vector() == exp(a).to_vector());
  const GraphTensor& constant = captured.tensors[static_cast<std::size_t>(captured.ops[1].inputs[1])];
  CHECK(constant.kind == GraphTensor::Kind::Constant);
  CHECK(constant.value.to_vector() == std::vector<double>{3, 4});
  CHECK(contains(to_dot(captured), "a\\n[2] float64\\nvalue [1, 2]"));
  // A captured constant used twice is one tensor of the graph.
  Tensor twice;
  {
    CaptureValuesGuard capture;
    data.set_name("data");
    twice = sum(data * a + data);
  }
  std::size_t constants = 0;
  for (const GraphTensor& t : build_graph(twice).tensors) constants += t.kind == GraphTensor::Kind::Constant ? 1 : 0;
  CHECK(constants == 1);
  CHECK(contains(to_dot(twice), "data\\n[2] float64\\nvalue [3, 4]"));

  Tensor x = Tensor({0.5}).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = tanh(y);
  const ComputationGraph deep = build_graph(y);
  CHECK(deep.ops.size() == 100000);
  CHECK(deep.ops.front().inputs[0] == 0);
}

// Two steps of lstm_cell (batch 2, input 4, hidden 3), its weights named:
// the multi-output node behind the graph tests below.
struct TwoLstmSteps {
  Tensor w_ih = randn({12, 4}, DType::Float64).requires_grad_().set_name("W_ih");
  Tensor w_hh = randn({12, 3}, DType::Float64).requires_grad_().set_name("W_hh");
  Tensor x1 = randn({2, 4}, DType::Float64).set_name("x1");
  Tensor x2 = randn({2, 4}, DType::Float64).set_name("x2");
  LstmState zero{zeros({2, 3}, DType::Float64), zeros({2, 3}, DType::Float64)};
  LstmState step(const Tensor& x, const LstmState& state) const { return lstm_cell(x, state, w_ih, w_hh); }
};

TEST_CASE("graph export of lstm_cell: both outputs drawn, and step 1's c feeds step 2's c input", "[tools][graph]") {
  manual_seed(4);
  const TwoLstmSteps lstm;
  Tensor loss;
  {
    const LstmState s2 = lstm.step(lstm.x2, lstm.step(lstm.x1, lstm.zero));
    loss = sum(s2.h);
  }  // h1, c1, h2, c2 gone: their boxes are labelled by the op
  const ComputationGraph graph = build_graph(loss);
  REQUIRE(graph.ops.size() == 3);
  const GraphOp& step1 = graph.ops[0];
  const GraphOp& step2 = graph.ops[1];
  CHECK(step1.name == "lstm_cell");
  REQUIRE(step1.outputs.size() == 2);
  REQUIRE(step2.outputs.size() == 2);
  CHECK(step1.output == step1.outputs[0]);
  CHECK(graph.ops[2].outputs.size() == 1);
  // lstm_cell's inputs are x, h, c, W_ih, W_hh: h1 into h, c1 into c.
  REQUIRE(step2.inputs.size() == 5);
  CHECK(step2.inputs[1] == step1.outputs[0]);
  CHECK(step2.inputs[2] == step1.outputs[1]);
  const GraphTensor& c1 = graph.tensors[static_cast<std::size_t>(step1.outputs[1])];
  CHECK(c1.producer == 0);
  CHECK(c1.producer_output == 1);
  CHECK(c1.shape == Shape{2, 3});
  // c2 feeds nothing here, and is in the graph all the same.
  CHECK(graph.tensors[static_cast<std::size_t>(step2.outputs[1])].producer_output == 1);

  const std::string dot = to_dot(graph);
  CHECK(count(dot, "label=\"lstm_cell\\nc' = σ(a_f)⊙c + σ(a_i)⊙tanh(a_g), h' = σ(a_o)⊙tanh(c')\"") == 2);
  CHECK(count(dot, "lstm_cell output 0\\n[2x3] float64") == 2);
  CHECK(count(dot, "lstm_cell output 1\\n[2x3] float64") == 2);
  CHECK(count(dot, "shape=box") == 11);  // x1, h0, c0, W_ih, W_hh, h1, c1, x2, h2, c2, the loss
  const std::string c1_id = c1.id;
  CHECK(contains(dot,
                 step1.id + " -> " + graph.tensors[static_cast<std::size_t>(step1.outputs[0])].id + " [label=\"0\"];"));
  CHECK(contains(dot, step1.id + " -> " + c1_id + " [label=\"1\"];"));
  CHECK(contains(dot, c1_id + " -> " + step2.id + " [label=\"2\"];"));
  CHECK(contains(dot, graph.ops[2].id + " -> " + graph.tensors[static_cast<std::size_t>(graph.root)].id + ";"));

  // A graph built from an op's second output has it as its root.
  const LstmState s1 = lstm.step(lstm.x1, lstm.zero);
  const ComputationGraph from_c = build_graph(s1.c);
  REQUIRE(from_c.ops.size() == 1);
  CHECK(from_c.root == from_c.ops[0].outputs[1]);
  CHECK(contains(to_dot(from_c), "t6 [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", penwidth=2"));
}

TEST_CASE("captured values of a node with several outputs: each output's own, and the inputs' names",
          "[tools][graph]") {
  manual_seed(4);
  const TwoLstmSteps lstm;
  std::vector<double> h1, c1;
  Tensor loss;
  {
    CaptureValuesGuard capture;
    const LstmState s1 = lstm.step(lstm.x1, lstm.zero);
    h1 = s1.h.to_vector();
    c1 = s1.c.to_vector();
    loss = sum(lstm.step(lstm.x2, s1).h);
  }
  const ComputationGraph graph = build_graph(loss);
  REQUIRE(graph.ops.size() == 3);
  CHECK(graph.tensors[static_cast<std::size_t>(graph.ops[0].outputs[0])].value.to_vector() == h1);
  CHECK(graph.tensors[static_cast<std::size_t>(graph.ops[0].outputs[1])].value.to_vector() == c1);
  const GraphTensor& x1 = graph.tensors[static_cast<std::size_t>(graph.ops[0].inputs[0])];
  CHECK(x1.name == "x1");
  CHECK(x1.value.to_vector() == lstm.x1.to_vector());
  CHECK(contains(to_dot(graph), "x2\\n[2x4] float64\\nvalue "));
}

// ---------------------------------------------------------------- backward trace

TEST_CASE("a backward trace lists each step: op, upstream gradient, local derivative, gradient sent",
          "[tools][trace]") {
  Tensor x = leaf({1, 2});
  x.set_name("x");
  Tensor h = log(x);
  h.set_name("h");
  Tensor loss = sum(h * h);  // dL/dx = 2 ln x / x
  loss.set_name("loss");
  const BackwardTrace trace = trace_backward(loss);

  REQUIRE(trace.steps().size() == 3);
  const auto& g = trace.graph();
  auto op_name = [&](const TraceStep& s) { return g.ops[static_cast<std::size_t>(s.op)].name; };
  CHECK(op_name(trace.steps()[0]) == "sum");
  CHECK(op_name(trace.steps()[1]) == "mul");
  CHECK(op_name(trace.steps()[2]) == "log");

  const TraceStep& sum_step = trace.steps()[0];
  CHECK(sum_step.grad_output.item() == 1);
  CHECK(sum_step.inputs[0].local_rule == "one-element output: sent / upstream");
  CHECK(sum_step.inputs[0].local_derivative.to_vector() == std::vector<double>{1, 1});

  const TraceStep& log_step = trace.step_for(h);
  CHECK(log_step.index == 2);
  const double l2 = std::log(2.0);
  CHECK(log_step.grad_output.to_vector() == std::vector<double>{0, 2 * l2});
  // ∂ln x/∂x = 1/x, but where the upstream gradient is 0 it cannot be read off.
  const std::vector<double> local = log_step.inputs[0].local_derivative.to_vector();
  CHECK(std::isnan(local[0]));
  CHECK(local[1] == Approx(0.5));
  CHECK(log_step.inputs[0].grad.to_vector() == std::vector<double>{0, l2});
  CHECK(x.grad().to_vector() == std::vector<double>{0, l2});  // backward really ran

  // A matmul's local derivative is a Jacobian: the trace points at the formula.
  Tensor w = leaf({{1, 2}, {3, 4}});
  const BackwardTrace mm = trace_backward(sum(matmul(w, w)));
  CHECK(mm.steps()[1].inputs[0].local_rule == "see formula");
  CHECK_FALSE(mm.steps()[1].inputs[0].local_derivative.defined());

  const std::string text = trace.text();
  INFO(text);
  CHECK(text.rfind("Backward trace from t3 'loss' (sum output) float64 []: 3 steps, in the order backward visits them\n"
                   "seed (dL/dL) = 1\n",
                   0) == 0);
  CHECK(contains(text,
                 "\nstep 2: log (op0)   y = ln x\n"
                 "  output    t1 'h' (log output) float64 [2] = [0, 0.693147]\n"
                 "  upstream  dL/dy = [0, 1.38629]\n"
                 "  input 0   t0 'x' (leaf) float64 [2] = [1, 2]\n"
                 "            local ∂y/∂x = [nan, 0.5]   (elementwise: sent / upstream (nan where upstream is 0))\n"
                 "            sent  dL/dx = [0, 0.693147]\n"));
}

TEST_CASE("trace JSON: nodes, edges and ordered steps, valid and complete", "[tools][trace]") {
  Tensor w = leaf({{0.5, -1}});
  w.set_name("w \"quoted\"");
  Tensor x({2, 3}, DType::Float64);
  Tensor loss;
  {
    CaptureValuesGuard capture;
    loss = sigmoid(sum(w * x));
  }
  const BackwardTrace trace = trace_backward(loss);
  const nlohmann::json j = nlohmann::json::parse(trace.json());
  CHECK(j["format"] == "tapegrad.backward_trace");
  CHECK(j["version"] == 1);
  CHECK(j["root"] == "t4");
  const auto& nodes = j["nodes"];
  REQUIRE(nodes.size() == 8);  // w, x, the outputs of mul, sum and sigmoid; the 3 ops
  CHECK(nodes[0]["id"] == "t0");
  CHECK(nodes[0]["kind"] == "leaf");
  CHECK(nodes[0]["name"] == "w \"quoted\"");
  CHECK(nodes[0]["shape"] == nlohmann::json::array({1, 2}));
  CHECK(nodes[0]["value"]["values"] == nlohmann::json::parse("[[0.5,-1]]"));
  CHECK(nodes[1]["kind"] == "constant");
  CHECK(nodes[1]["value"]["values"] == nlohmann::json::parse("[2,3]"));
  CHECK(nodes[2]["producer"] == "op0");
  CHECK(nodes[5]["type"] == "op");
  CHECK(nodes[5]["op"] == "mul");
  CHECK(nodes[5]["formula"] == "y = a * b");
  CHECK(nodes[5]["inputs"] == nlohmann::json::array({"t0", "t1"}));
  CHECK(nodes[7]["op"] == "sigmoid");
  CHECK(nodes[7]["output"] == "t4");
  CHECK(nodes[3]["value"]["values"].get<double>() == -2);  // sum(w * x) = 0.5·2 - 3
  const double s = sigmoid_of(-2.0);
  CHECK(nodes[4]["value"]["values"].get<double>() == Approx(s));
  CHECK(nodes[4]["grad"]["values"].get<double>() == 1);
  CHECK(j["edges"].size() == 7);
  CHECK(j["edges"][1] == nlohmann::json::parse(R"({"from":"t1","to":"op0","input":1})"));
  const auto& steps = j["steps"];
  REQUIRE(steps.size() == 3);
  CHECK(steps[0]["name"] == "sigmoid");
  CHECK(steps[0]["inputs"][0]["local_derivative"]["values"].get<double>() == Approx(s * (1 - s)));
  CHECK(steps[2]["name"] == "mul");
  CHECK(steps[2]["inputs"][1]["needs_grad"] == false);
  CHECK(steps[2]["inputs"][1]["grad"].is_null());
  CHECK(steps[2]["inputs"][0]["grad"]["values"][0][1].get<double>() == Approx(3 * s * (1 - s)));

  // Non-finite numbers are strings, undefined local derivatives null.
  Tensor z = leaf({0, 1});
  const nlohmann::json k = nlohmann::json::parse(trace_backward(sum(relu(z) / z)).json());
  CHECK(k["nodes"][2]["value"]["values"][0] == "NaN");  // 0 / 0
  // relu at 0 with upstream 1/0 = inf sends inf·0 = NaN: no local derivative to read off.
  CHECK(k["steps"][2]["inputs"][0]["local_derivative"]["values"][0].is_null());
  CHECK(k["steps"][2]["inputs"][0]["local_derivative"]["values"][1] == 1);
}

TEST_CASE("a backward trace of lstm_cell steps gives each output its own upstream gradient", "[tools][trace]") {
  manual_seed(5);
  const TwoLstmSteps lstm;
  LstmState s1 = lstm.step(lstm.x1, lstm.zero);
  s1.h.retain_grad();
  s1.c.retain_grad();
  const LstmState s2 = lstm.step(lstm.x2, s1);
  const Tensor loss = sum(s2.h);  // s2.c is not used: its upstream is none
  const BackwardTrace trace = trace_backward(loss);
  const ComputationGraph& graph = trace.graph();

  REQUIRE(graph.ops[0].name == "lstm_cell");
  const TraceStep& first = trace.step_for(s1.c);  // either output finds its op's step
  CHECK(&first == &trace.step_for(s1.h));
  REQUIRE(first.grad_outputs.size() == 2);
  CHECK(first.grad_outputs[0].to_vector() == s1.h.grad().to_vector());
  CHECK(first.grad_outputs[1].to_vector() == s1.c.grad().to_vector());
  CHECK(first.grad_output.to_vector() == s1.h.grad().to_vector());
  const TraceStep& second = trace.step_for(s2.h);
  REQUIRE(second.grad_outputs.size() == 2);
  CHECK(second.grad_outputs[0].to_vector() == std::vector<double>(6, 1.0));
  CHECK_FALSE(second.grad_outputs[1].defined());
  for (const TraceInput& in : first.inputs) {
    if (in.grad.defined()) CHECK(in.local_rule == "see formula");  // a Jacobian per output, not one number
  }
  // The graph's tensors carry what the pass gave them: c1's gradient too.
  CHECK(graph.tensors[static_cast<std::size_t>(graph.ops[0].outputs[1])].grad.to_vector() == s1.c.grad().to_vector());

  const std::string text = trace.text();
  CHECK(contains(text, "upstream  dL/dy0 = "));
  CHECK(contains(text, "upstream  dL/dy1 = none (unused downstream)"));
  const std::string json = trace.json();
  const std::string c1 = graph.tensors[static_cast<std::size_t>(graph.ops[0].outputs[1])].id;
  const std::string h1 = graph.tensors[static_cast<std::size_t>(graph.ops[0].outputs[0])].id;
  CHECK(contains(json, "\"outputs\":[\"" + h1 + "\",\"" + c1 + "\"]"));
  CHECK(contains(json, "\"to\":\"" + c1 + "\",\"input\":null,\"output\":1}"));
  CHECK(contains(json, "\"grad_outputs\":[{"));
  CHECK(contains(json, ",null],\"inputs\""));  // the second step's unused c
}

TEST_CASE("trace_backward errors", "[tools][trace][errors]") {
  Tensor x = leaf({1, 2});
  REQUIRE_THROWS_MESSAGE(trace_backward(x * 2.0), std::invalid_argument,
                         "trace_backward: a gradient can be implied only for a one-element tensor, got [2]; pass "
                         "TraceOptions::seed");
  const BackwardTrace seeded = trace_backward(x * 2.0, {.seed = Tensor({1, 10}, DType::Float64)});
  CHECK(x.grad().to_vector() == std::vector<double>{2, 20});
  CHECK(seeded.steps()[0].inputs[0].local_derivative.to_vector() == std::vector<double>{2, 2});
  REQUIRE_THROWS_MESSAGE(seeded.step_for(x), std::invalid_argument,
                         "BackwardTrace::step_for: no backward step produced this tensor ([2])");
}

// ---------------------------------------------------------------- anomaly mode

namespace {

// A layer that takes the log of its input: NaN for negative inputs.
class LogLayer : public nn::Module {
 public:
  LogLayer() : Module("LogLayer") {}
  static constexpr int kLine = __LINE__ + 1;
  Tensor forward(const Tensor& input) override { return log(input); }
};

}  // namespace

TEST_CASE("anomaly mode names the op that made a NaN in the forward pass and the user's line", "[tools][anomaly]") {
  manual_seed(0);
  nn::Sequential model(std::make_shared<nn::Linear>(3, 4), std::make_shared<nn::Tanh>(),
                       std::make_shared<nn::Linear>(4, 4), std::make_shared<LogLayer>(),
                       std::make_shared<nn::Linear>(4, 1));
  model.to(DType::Float64);
  const Tensor x = rand({5, 3}, DType::Float64, -1, 1);

  CHECK_FALSE(anomaly_enabled());
  Tensor quiet = sum(model(x));  // some outputs of the second Linear are negative
  CHECK(std::isnan(quiet.item()));

  AnomalyGuard anomaly;
  CHECK(anomaly_enabled());
  try {
    (void)model(x);
    FAIL("anomaly mode did not throw");
  } catch (const AnomalyError& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK(e.op() == "log");
    CHECK(e.phase() == "forward");
    CHECK(e.input_shapes() == std::vector<Shape>{Shape{5, 4}});
    CHECK(message.rfind("log: anomaly mode: NaN in the forward output (float64 [5x4], first at [", 0) == 0);
    CHECK(contains(message, ") of y = ln x; inputs: float64 [5x4]; created at "));
    const StackFrame& site = e.call_site();
    CHECK(contains(site.function, "LogLayer::forward"));
    // test_tools is always built with -g (tests/CMakeLists.txt), so the
    // site resolves to file:line.
    CHECK(fs::path(site.file).filename() == "test_tools.cpp");
    CHECK(site.line == LogLayer::kLine);
    CHECK(contains(message, "test_tools.cpp:" + std::to_string(LogLayer::kLine) + " in "));
  }
}

TEST_CASE("anomaly mode catches a non-finite gradient in backward, names the op and cleans up",
          "[tools][anomaly][errors]") {
  Tensor x = leaf({0, 4});
  Tensor y = sum(x * 3.0 + sqrt(x));  // d sqrt(x)/dx = 1 / (2 sqrt x): infinite at 0
  {
    AnomalyGuard anomaly;
    REQUIRE_THROWS_MESSAGE(y.backward(/*retain_graph=*/true), AnomalyError,
                           "sqrt: anomaly mode: Inf in the gradient sent to input 0 (float64 [2], first at [0]) by "
                           "the backward of y = sqrt(x); inputs: float64 [2]; created outside anomaly mode (no call "
                           "site recorded)");
  }
  CHECK_FALSE(anomaly_enabled());
  // The nodes still queued when it threw kept no partial gradient: a second
  // backward through the same graph sees every contribution.
  x.zero_grad();
  y.backward();
  CHECK(std::isinf(x.grad().at({0})));
  CHECK(x.grad().at({1}) == 3.25);

  // Recorded in anomaly mode, the node knows where it was made.
  AnomalyGuard anomaly;
  Tensor z = leaf({0});
  Tensor s = sum(sqrt(z));
  try {
    s.backward();
    FAIL("anomaly mode did not throw");
  } catch (const AnomalyError& e) {
    CHECK(e.phase() == "backward");
    CHECK(e.op() == "sqrt");
    CHECK(contains(e.what(), "; created at "));
    CHECK_FALSE(e.call_site().function.empty());
  }
  CHECK_FALSE(creation_site(*s.grad_fn()).function.empty());
}

TEST_CASE("anomaly mode is off by default, scoped by its guard, and lets finite values through", "[tools][anomaly]") {
  CHECK_FALSE(anomaly_enabled());
  {
    AnomalyGuard on;
    CHECK(anomaly_enabled());
    {
      AnomalyGuard off(false);
      CHECK_FALSE(anomaly_enabled());
      Tensor x = leaf({-1});
      CHECK(std::isnan(log(x).item()));
    }
    CHECK(anomaly_enabled());
    Tensor x = leaf({1, 2});
    Tensor loss = sum(exp(x) * x);
    loss.backward();
    CHECK(x.grad().at({1}) == Approx(3 * std::exp(2.0)));
    REQUIRE(debug_info(*loss.grad_fn()) != nullptr);
    CHECK_FALSE(debug_info(*loss.grad_fn())->stack.empty());
  }
  CHECK_FALSE(anomaly_enabled());
  set_anomaly_enabled(true);
  CHECK(anomaly_enabled());
  set_anomaly_enabled(false);
  Tensor x = leaf({1});
  const Tensor y = x * 2.0;
  CHECK(debug_info(*y.grad_fn()) == nullptr);  // nothing recorded when off
}

// Per-op cost of anomaly mode; run with: test_tools "[.bench]"
TEST_CASE("anomaly mode cost per op", "[.bench]") {
  constexpr int kNodes = 1000;
  Tensor x = randn({1, 8}).requires_grad_();
  auto per_node = [&](bool anomaly, bool capture) {
    AnomalyGuard guard(anomaly);
    std::optional<CaptureValuesGuard> values;
    if (capture) values.emplace();
    double best = 1e9;
    for (int round = 0; round < 30; ++round) {
      const auto start = std::chrono::steady_clock::now();
      Tensor y = x;
      for (int i = 0; i < kNodes; ++i) y = tanh(y);
      sum(y).backward();
      x.zero_grad();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return best / kNodes * 1e6;
  };
  const double off = per_node(false, false);
  const double capture = per_node(false, true);
  const double on = per_node(true, false);
  std::printf("tanh node forward+backward, 1x8 float32, best of 30 rounds of %d nodes:\n", kNodes);
  std::printf(
      "  anomaly off:      %.3f us/node\n  values captured:  %.3f us/node\n  anomaly on:       %.3f us/node (%.1fx)\n",
      off, capture, on, on / off);
}

// ---------------------------------------------------------------- worked examples

// (a) of the lecture notes: inputs x1, x2; ReLU hidden units 3, 4; sigmoid
// output unit 5; binary cross-entropy; w0,j is unit j's bias. By hand:
//   z3 = 2 + 2·(−3) + 3·5 = 11,  h3 = 11;   z4 = −1 + 4·(−3) + 1·5 = −8,  h4 = 0
//   z5 = 1 + 2·11 + 3·0 = 23,    ŷ = σ(23) = 1 / (1 + e^−23) ≈ 0.99999999989738
//   L = −ln(1 − ŷ) = ln(1 + e^23) ≈ 23.0000000001026 (y = 0)
//   dL/dz5 = ŷ − y = ŷ;  dL/dw0,5 = ŷ,  dL/dw3,5 = ŷ·h3 = 11ŷ,  dL/dw4,5 = ŷ·h4 = 0
//   dL/dz3 = ŷ·w3,5·ReLU'(11) = 2ŷ:  dL/dw0,3 = 2ŷ, dL/dw1,3 = 2ŷ·x1 = −6ŷ, dL/dw2,3 = 2ŷ·x2 = 10ŷ
//   dL/dz4 = ŷ·w4,5·ReLU'(−8) = 0:   dL/dw0,4 = dL/dw1,4 = dL/dw2,4 = 0
TEST_CASE("worked example (a): ReLU hidden units, sigmoid output, cross-entropy, every weight's gradient",
          "[tools][worked]") {
  const double s = sigmoid_of(23);
  const double loss_exact = 23 + std::log1p(std::exp(-23.0));

  SECTION("one scalar leaf per weight, as on the blackboard") {
    auto w = [](const char* name, double value) {
      Tensor t = scalar(value, DType::Float64).requires_grad_();
      t.set_name(name);
      return t;
    };
    Tensor w03 = w("w0,3", 2), w04 = w("w0,4", -1), w05 = w("w0,5", 1), w13 = w("w1,3", 2), w14 = w("w1,4", 4);
    Tensor w23 = w("w2,3", 3), w24 = w("w2,4", 1), w35 = w("w3,5", 2), w45 = w("w4,5", 3);
    const Tensor x1 = scalar(-3, DType::Float64), x2 = scalar(5, DType::Float64), y = scalar(0, DType::Float64);
    Tensor h3 = relu(w03 + w13 * x1 + w23 * x2);
    Tensor h4 = relu(w04 + w14 * x1 + w24 * x2);
    Tensor y_hat = sigmoid(w05 + w35 * h3 + w45 * h4);
    Tensor loss = binary_cross_entropy(y_hat, y);
    CHECK(h3.item() == 11);
    CHECK(h4.item() == 0);
    CHECK(y_hat.item() == Approx(s).epsilon(1e-15));
    // −ln(1 − ŷ) with 1 − ŷ ≈ 1e-10 keeps only ~7 digits in float64.
    CHECK(loss.item() == Approx(loss_exact).epsilon(1e-8));

    const BackwardTrace trace = trace_backward(loss);
    const TraceStep& out = trace.step_for(y_hat);  // sigmoid: local derivative ŷ(1 − ŷ)
    CHECK(out.inputs[0].local_derivative.item() == Approx(s * (1 - s)).epsilon(1e-6));
    CHECK(out.inputs[0].grad.item() == Approx(s).epsilon(1e-12));      // δ5 = ŷ − y
    CHECK(trace.step_for(h4).inputs[0].local_derivative.item() == 0);  // ReLU'(−8)
    CHECK(trace.step_for(h3).inputs[0].local_derivative.item() == 1);  // ReLU'(11)

    CHECK(w03.grad().item() == Approx(2 * s).epsilon(1e-12));
    CHECK(w13.grad().item() == Approx(-6 * s).epsilon(1e-12));
    CHECK(w23.grad().item() == Approx(10 * s).epsilon(1e-12));
    CHECK(w04.grad().item() == 0);
    CHECK(w14.grad().item() == 0);
    CHECK(w24.grad().item() == 0);
    CHECK(w05.grad().item() == Approx(s).epsilon(1e-12));
    CHECK(w35.grad().item() == Approx(11 * s).epsilon(1e-12));
    CHECK(w45.grad().item() == 0);
  }

  SECTION("the same network as two linear layers") {
    Tensor W1 = Tensor({{2, 3}, {4, 1}}, DType::Float64).requires_grad_();  // rows: units 3, 4; columns: x1, x2
    Tensor b1 = Tensor({2, -1}, DType::Float64).requires_grad_();           // w0,3, w0,4
    Tensor W2 = Tensor({{2, 3}}, DType::Float64).requires_grad_();          // w3,5, w4,5
    Tensor b2 = Tensor({1}, DType::Float64).requires_grad_();               // w0,5
    const Tensor x({{-3, 5}}, DType::Float64);
    const Tensor y({{0}}, DType::Float64);
    Tensor loss = binary_cross_entropy(sigmoid(linear(relu(linear(x, W1, b1)), W2, b2)), y);
    CHECK(loss.item() == Approx(loss_exact).epsilon(1e-8));
    loss.backward();
    const std::vector<double> dW1 = W1.grad().to_vector();
    CHECK(dW1[0] == Approx(-6 * s).epsilon(1e-12));
    CHECK(dW1[1] == Approx(10 * s).epsilon(1e-12));
    CHECK(dW1[2] == 0);
    CHECK(dW1[3] == 0);
    CHECK(b1.grad().to_vector()[0] == Approx(2 * s).epsilon(1e-12));
    CHECK(b1.grad().to_vector()[1] == 0);
    CHECK(W2.grad().to_vector()[0] == Approx(11 * s).epsilon(1e-12));
    CHECK(W2.grad().to_vector()[1] == 0);
    CHECK(b2.grad().item() == Approx(s).epsilon(1e-12));
  }
}

// (b): x = (0.5, −1), W = [[w1, w2], [w3, w4]] = [[0.2, −0.3], [0.4, 0.1]],
// b = (0.1, −0.2), ŷ = w5·h1 + w6·h2 with (w5, w6) = (0.6, −0.4), y = 1,
// E = (y − ŷ)². By hand: z1 = 0.1 + 0.1 + 0.3 = 0.5, z2 = −0.2 + 0.2 − 0.1 = −0.1,
// h1 = σ(0.5) ≈ 0.622459331202, h2 = σ(−0.1) ≈ 0.475020812521,
// ŷ ≈ 0.183467273713, −2(y − ŷ) ≈ −1.633065452575, h1(1 − h1) ≈ 0.235003712202:
//   ∂E/∂w5 = −2(y − ŷ)·h1                      ≈ −1.016516829418
//   ∂E/∂w1 = −2(y − ŷ)·w5·h1(1 − h1)·x1        ≈ −0.115132933087
TEST_CASE("worked example (b): dE/dw5 and dE/dw1 are the products of the trace's local factors", "[tools][worked]") {
  const Tensor x({0.5, -1.0}, DType::Float64);
  Tensor W = Tensor({{0.2, -0.3}, {0.4, 0.1}}, DType::Float64).requires_grad_();
  Tensor b = Tensor({0.1, -0.2}, DType::Float64).requires_grad_();
  Tensor v = Tensor({{0.6, -0.4}}, DType::Float64).requires_grad_();
  const Tensor y({1.0}, DType::Float64);
  Tensor h = sigmoid(linear(x, W, b));
  Tensor y_hat = linear(h, v);
  Tensor E = sse_loss(y_hat, y);
  const BackwardTrace trace = trace_backward(E);

  const double h1 = sigmoid_of(0.5);
  const double yh = 0.6 * h1 - 0.4 * sigmoid_of(-0.1);
  CHECK(yh == Approx(0.183467273713));
  CHECK(E.item() == Approx((1 - yh) * (1 - yh)).epsilon(1e-14));

  const double dE_dyhat = trace.step_for(E).inputs[0].local_derivative.item();
  const double w5 = trace.step_for(y_hat).inputs[0].local_derivative.at({0});
  const double dyhat_dw5 = trace.step_for(y_hat).inputs[1].local_derivative.at({0, 0});
  const double dh1_dz1 = trace.step_for(h).inputs[0].local_derivative.at({0});
  CHECK(dE_dyhat == Approx(-2 * (1 - yh)).epsilon(1e-14));
  CHECK(dE_dyhat == Approx(-1.633065452575));
  CHECK(w5 == Approx(0.6).epsilon(1e-14));
  CHECK(dyhat_dw5 == Approx(h1).epsilon(1e-14));
  CHECK(dh1_dz1 == Approx(h1 * (1 - h1)).epsilon(1e-14));
  CHECK(dh1_dz1 == Approx(0.235003712202));
  // The first linear layer's Jacobian is not diagonal: ∂z1/∂w1 = x1 comes from its formula.
  CHECK(trace.step_for(h).inputs[0].local_rule == "elementwise: sent / upstream (nan where upstream is 0)");
  CHECK(trace.steps().back().inputs[1].local_rule == "see formula");

  CHECK(v.grad().at({0, 0}) == Approx(dE_dyhat * dyhat_dw5).epsilon(1e-14));
  CHECK(v.grad().at({0, 0}) == Approx(-1.016516829418));
  CHECK(W.grad().at({0, 0}) == Approx(dE_dyhat * w5 * dh1_dz1 * 0.5).epsilon(1e-14));
  CHECK(W.grad().at({0, 0}) == Approx(-0.115132933087));
}

// ---------------------------------------------------------------- gradient flow

namespace {

GradFlow record_deep(bool relu_units) {
  manual_seed(7);
  nn::MLPOptions options;
  options.activation = relu_units ? nn::ModuleFactory([] { return std::make_shared<nn::ReLU>(); })
                                  : nn::ModuleFactory([] { return std::make_shared<nn::Sigmoid>(); });
  options.linear.weight_init = nn::init::kaiming_normal();
  options.linear.bias_init = nn::init::zeros();
  auto model = nn::mlp({16, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 1}, options);  // 10 hidden layers
  manual_seed(11);
  const Tensor x = randn({64, 16});
  const Tensor y = randn({64, 1});
  GradFlow flow;
  Tensor out = flow.forward(*model, x);
  CHECK(out.to_vector() == (*model)(x).to_vector());  // the same result as the model itself
  mse_loss(out, y).backward();
  flow.record(0, *model);
  return flow;
}

}  // namespace

TEST_CASE("gradient flow: 10 sigmoid layers starve the first layer, ReLU does not", "[tools][grad_flow]") {
  const GradFlow sigmoid_flow = record_deep(false);
  const GradFlow relu_flow = record_deep(true);
  const GradFlowRecord& s = sigmoid_flow.records().back();
  const GradFlowRecord& r = relu_flow.records().back();
  REQUIRE(s.parameters.size() == 22);
  CHECK(s.parameters[0].name == "0.weight");
  CHECK(s.parameters[0].layer == "0");
  CHECK(s.parameters[0].shape == Shape{32, 16});
  REQUIRE(s.activations.size() == 21);  // 11 Linear + 10 activations
  CHECK(s.activations[1].module == "Sigmoid");
  CHECK(r.activations[1].fraction_zero > 0.3);  // about half the ReLUs are off
  CHECK(s.activations[1].min > 0);

  const double first_sigmoid = s.parameters[0].grad_norm;
  const double first_relu = r.parameters[0].grad_norm;
  INFO("first layer gradient norm: sigmoid " << first_sigmoid << ", ReLU " << first_relu);
  CHECK(first_sigmoid > 0);
  CHECK(first_sigmoid * 1000 < first_relu);  // orders of magnitude apart
  // With sigmoid each layer shrinks it; the last layer still gets a healthy one.
  CHECK(s.parameters[20].grad_norm > 1000 * first_sigmoid);
  CHECK(s.activations[0].grad_norm < s.activations[19].grad_norm / 1000);

  const std::string table = sigmoid_flow.table();
  CHECK(table.rfind(
            "gradient flow at step 0\n  parameter              shape           grad norm   max |grad|   value norm\n"
            "  0.weight               [32x16]  ",
            0) == 0);
  CHECK(contains(table, "  1      Sigmoid  "));

  TempDir dir;
  std::ostringstream warnings;
  GradFlowPlotOptions plot;
  plot.warnings = &warnings;
  const GradFlowPlotResult files = sigmoid_flow.save(dir.file("flow"), plot);
  const std::string parameters = read_file(files.parameters_csv);
  CHECK(parameters.rfind("index,parameter,shape,grad_norm_step_0\n0,0.weight,[32x16],", 0) == 0);
  CHECK(count(parameters, "\n") == 23);
  const std::string activations = read_file(files.activations_csv);
  CHECK(activations.rfind("index,layer,module,label,grad_norm_step_0,std_step_0\n0,0,Linear(16 -> 32),0 Linear,", 0) ==
        0);
  CHECK(contains(read_file(files.script_path), "set logscale y"));
  if (os::find_program("gnuplot").empty()) {
    WARN("gnuplot is not installed: the PNG is not checked");
  } else {
    INFO(files.message);
    CHECK(files.png_written);
  }
}

TEST_CASE("gradient flow errors", "[tools][grad_flow][errors]") {
  GradFlow flow;
  REQUIRE_THROWS_MESSAGE(flow.table(), std::invalid_argument,
                         "GradFlow::table: nothing recorded yet (call record() after backward)");
  REQUIRE_THROWS_MESSAGE(flow.save("unused"), std::invalid_argument,
                         "GradFlow::save: nothing recorded yet (call record() after backward)");
  nn::Linear layer(2, 1);
  flow.record(3, layer);  // no backward yet: parameters without gradients
  CHECK_FALSE(flow.records()[0].parameters[0].has_grad);
  CHECK(contains(flow.table(), "  weight                 [1x2]                   -            -"));
  REQUIRE_THROWS_MESSAGE(flow.table(1), std::out_of_range, "GradFlow::table: record 1 does not exist (1 recorded)");
}

TEST_CASE("anomaly mode also checks ops that record no node", "[tools][anomaly]") {
  // log(-1) on a constant: no input requires grad, so no node is recorded,
  // but the README promises the first op whose output holds a NaN.
  const Tensor constant({-1.0, 4.0}, DType::Float64);
  AnomalyGuard anomaly;
  try {
    (void)log(constant);
    FAIL("anomaly mode did not throw");
  } catch (const AnomalyError& e) {
    CHECK(e.op() == "log");
    CHECK(e.phase() == "forward");
    CHECK(e.input_shapes() == std::vector<Shape>{Shape{2}});
    const std::string message = e.what();
    INFO(message);
    CHECK(message.rfind("log: anomaly mode: NaN in the forward output (float64 [2], first at [0]) of y = ln x (no "
                        "input requires grad: no node was recorded); inputs: float64 [2]; created at ",
                        0) == 0);
  }
  // The same under no_grad with an input that does require grad, and for a
  // fused op that skips building its closure.
  Tensor x = leaf({0.5, -0.5});
  {
    NoGradGuard no_grad;
    REQUIRE_THROWS_AS(sqrt(x), AnomalyError);
  }
  const Tensor logits({{INFINITY, 0.0}}, DType::Float64);
  REQUIRE_THROWS_WITH(softmax(logits), Catch::Contains("softmax: anomaly mode: NaN in the forward output"));
  CHECK(log(Tensor({1.0, 2.0})).defined());  // finite outputs pass
}
