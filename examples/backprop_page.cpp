// See backpropagation: interactive pages (one self-contained HTML file
// each) that step through the backward pass of two small networks, plus
// their graphs drawn by Graphviz.
//
//   xor        the 2-4-1 XOR network of examples/xor.cpp (tanh hidden
//              layer, sigmoid output, mean squared error) on its four
//              patterns, at its initial weights
//   worked     the lecture's worked example (a) as two linear layers:
//              x = (x1, x2) = (−3, 5), ReLU hidden units 3 and 4, a
//              sigmoid output unit 5, binary cross-entropy against y = 0
//   blackboard the same example with every weight its own scalar leaf
//              (w0,3, w1,3, ...), one op per multiplication and addition
//
// Usage: backprop_page [--out DIR] [--network xor|worked|blackboard|all] [--quiet]
//   --out DIR   where to write (default backprop_page_out):
//               backprop_<network>.html, <network>_graph.dot and, when
//               Graphviz is installed, <network>_graph.svg and .png
// Open a page in a browser; "backprop_xor.html#step=3" opens step 3.
// Exits 1 if a gradient differs from its hand-computed value.
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <sstream>
#include <string>
#include <tapegrad/tapegrad.hpp>

#include "command_line.hpp"
#include "example_support.hpp"

using namespace tapegrad;
using namespace tapegrad::tools;

namespace {

constexpr const char* kDescription =
    "backprop_page: writes interactive backward-pass pages (HTML) and graph pictures into DIR.";

int failures = 0;

void check(const char* name, double got, double expected, bool quiet) {
  const bool ok = std::abs(got - expected) <= 1e-9 * std::max(1.0, std::abs(expected));
  if (!ok) ++failures;
  if (!ok || !quiet) std::printf("  %-10s %+.12f  hand %+.12f  %s\n", name, got, expected, ok ? "ok" : "MISMATCH");
}

Tensor parameter(Tensor value, const char* name) {
  value.requires_grad_();
  value.set_name(name);
  return value;
}

// The page, the graph's DOT and its SVG and PNG pictures.
void save(const std::string& out, const std::string& network, const BackwardTrace& trace, const PageOptions& page,
          const std::string& graph_title, bool quiet) {
  const std::string html = out + "/backprop_" + network + ".html";
  write_backprop_page(html, trace, page);
  DotOptions dot;
  dot.precision = 4;
  dot.title = graph_title;
  std::ostringstream warnings;
  const std::string stem = out + "/" + network + "_graph";
  const RenderResult svg = save_dot(to_dot(trace.graph(), dot), stem, {.format = "svg", .warnings = &warnings});
  const RenderResult png = save_dot(to_dot(trace.graph(), dot), stem, {.format = "png", .warnings = &warnings});
  if (!quiet || !svg.rendered) std::fputs(warnings.str().c_str(), stdout);
  std::printf("wrote %s (%zu backward steps), %s%s%s\n", html.c_str(), trace.steps().size(), svg.dot_path.c_str(),
              svg.rendered ? (", " + svg.image_path).c_str() : "", png.rendered ? (", " + png.image_path).c_str() : "");
}

// The network of examples/xor.cpp at its initial weights, one backward pass.
void xor_page(const std::string& out, bool quiet) {
  CaptureValuesGuard keep_values;  // the page shows every intermediate value
  manual_seed(0);
  const Tensor x = Tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}}).set_name("x");
  const Tensor y = Tensor({{0}, {1}, {1}, {0}}).set_name("y");
  const double a1 = std::sqrt(6.0 / 6.0), a2 = std::sqrt(6.0 / 5.0);  // Xavier-uniform bounds
  Tensor w1 = parameter(rand({4, 2}, DType::Float32, -a1, a1), "W1");
  Tensor b1 = parameter(zeros({4}), "b1");
  Tensor w2 = parameter(rand({1, 4}, DType::Float32, -a2, a2), "W2");
  Tensor b2 = parameter(zeros({1}), "b2");
  Tensor z1 = linear(x, w1, b1).set_name("z1");
  Tensor h = tanh(z1).set_name("h");
  Tensor z2 = linear(h, w2, b2).set_name("z2");
  Tensor y_hat = sigmoid(z2).set_name("ŷ");
  Tensor loss = mse_loss(y_hat, y).set_name("L");
  const BackwardTrace trace = trace_backward(loss);
  if (trace.steps().size() != 5) {
    std::printf("xor: expected 5 backward steps, got %zu\n", trace.steps().size());
    ++failures;
  }
  save(out, "xor", trace,
       {.title = "XOR network: the backward pass, step by step",
        .description = "2-4-1 network, tanh hidden layer, sigmoid output, mean squared error over the four patterns "
                       "(initial weights). Step with \u2190 / \u2192; click an op to jump to its step."},
       "XOR network 2-4-1 (tanh, sigmoid, MSE) at its initial weights: values and gradients after one backward pass",
       quiet);
}

// Worked example (a) with z = W1·x + b1: rows of W1 are units 3 and 4,
// columns x1 and x2; b1 = (w0,3, w0,4); W2 = (w3,5, w4,5), b2 = w0,5.
void worked_page(const std::string& out, bool quiet) {
  CaptureValuesGuard keep_values;
  const Tensor x = Tensor({{-3, 5}}, DType::Float64).set_name("x");
  const Tensor y = Tensor({{0}}, DType::Float64).set_name("y");
  Tensor w1 = parameter(Tensor({{2, 3}, {4, 1}}, DType::Float64), "W1");
  Tensor b1 = parameter(Tensor({2, -1}, DType::Float64), "b1");
  Tensor w2 = parameter(Tensor({{2, 3}}, DType::Float64), "W2");
  Tensor b2 = parameter(Tensor({1}, DType::Float64), "b2");
  Tensor z = linear(x, w1, b1).set_name("z3, z4");
  Tensor h = relu(z).set_name("h3, h4");
  Tensor z5 = linear(h, w2, b2).set_name("z5");
  Tensor y_hat = sigmoid(z5).set_name("ŷ");
  Tensor loss = binary_cross_entropy(y_hat, y).set_name("L");
  const BackwardTrace trace = trace_backward(loss);
  const double s = 1.0 / (1.0 + std::exp(-23.0));  // ŷ = σ(23); δ5 = ŷ − y = ŷ
  if (!quiet) std::printf("worked example (a), gradients vs the hand derivation:\n");
  check("dL/dw1,3", w1.grad().at({0, 0}), -6 * s, quiet);
  check("dL/dw2,3", w1.grad().at({0, 1}), 10 * s, quiet);
  check("dL/dw1,4", w1.grad().at({1, 0}), 0, quiet);
  check("dL/dw0,3", b1.grad().at({0}), 2 * s, quiet);
  check("dL/dw3,5", w2.grad().at({0, 0}), 11 * s, quiet);
  check("dL/dw4,5", w2.grad().at({0, 1}), 0, quiet);
  check("dL/dw0,5", b2.grad().at({0}), s, quiet);
  save(out, "worked", trace,
       {.title = "Worked example (a): backpropagation, step by step",
        .description =
            "x = (\u22123, 5); ReLU hidden units 3 and 4 (z = W1\u00B7x + b1); sigmoid output unit 5; "
            "binary cross-entropy against y = 0. Step with \u2190 / \u2192; click an op to jump to its step."},
       "Worked example (a): values and gradients after one backward pass", quiet);
}

// The same example on the blackboard: one scalar leaf per weight.
void blackboard_page(const std::string& out, bool quiet) {
  CaptureValuesGuard keep_values;
  auto weight = [](const char* name, double value) { return parameter(scalar(value, DType::Float64), name); };
  Tensor w03 = weight("w0,3", 2), w04 = weight("w0,4", -1), w05 = weight("w0,5", 1);
  Tensor w13 = weight("w1,3", 2), w14 = weight("w1,4", 4), w23 = weight("w2,3", 3), w24 = weight("w2,4", 1);
  Tensor w35 = weight("w3,5", 2), w45 = weight("w4,5", 3);
  Tensor x1 = scalar(-3, DType::Float64).set_name("x1");
  Tensor x2 = scalar(5, DType::Float64).set_name("x2");
  Tensor y = scalar(0, DType::Float64).set_name("y");
  Tensor z3 = (w03 + w13 * x1 + w23 * x2).set_name("z3");
  Tensor h3 = relu(z3).set_name("h3");
  Tensor z4 = (w04 + w14 * x1 + w24 * x2).set_name("z4");
  Tensor h4 = relu(z4).set_name("h4");
  Tensor z5 = (w05 + w35 * h3 + w45 * h4).set_name("z5");
  Tensor y_hat = sigmoid(z5).set_name("ŷ");
  Tensor loss = binary_cross_entropy(y_hat, y).set_name("L");
  const BackwardTrace trace = trace_backward(loss);
  const double s = 1.0 / (1.0 + std::exp(-23.0));
  if (!quiet) std::printf("the same on the blackboard (one scalar per weight):\n");
  check("dL/dw2,3", w23.grad().item(), 10 * s, quiet);
  check("dL/dw2,4", w24.grad().item(), 0, quiet);
  save(out, "blackboard", trace,
       {.title = "Worked example (a) on the blackboard: every weight a scalar",
        .description = "x1 = \u22123, x2 = 5; ReLU units 3 and 4; sigmoid unit 5; binary cross-entropy against y = 0. "
                       "Watch h4 = ReLU(\u22128) = 0 stop the gradient of unit 4's weights."},
       "Worked example (a), one scalar per weight: values and gradients after one backward pass", quiet);
}

int run(int argc, char** argv) {
  std::string out = "backprop_page_out", network = "all";
  bool quiet = false;
  examples::CommandLine cli(kDescription);
  cli.text("--out", out, "the pages and pictures go here", "DIR");
  cli.choice("--network", network, "which network's pages", {"xor", "worked", "blackboard", "all"});
  cli.flag("--quiet", quiet, "print only the files written and any mismatch");
  if (!cli.parse(argc, argv)) return 0;
  std::filesystem::create_directories(out);
  if (network == "xor" || network == "all") xor_page(out, quiet);
  if (network == "worked" || network == "all") worked_page(out, quiet);
  if (network == "blackboard" || network == "all") blackboard_page(out, quiet);
  if (failures > 0) std::printf("%d gradient(s) differ from the hand derivation\n", failures);
  return failures > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("backprop_page", argc, argv, run); }
