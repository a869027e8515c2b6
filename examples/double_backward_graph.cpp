// A double backward, made visible. With create_graph, the backward pass
// records what it computes, so a gradient is a tensor with a graph of its
// own, built from ordinary ops, that backward can run through again.
//
// (a) y = tanh(w·x) at x = 0.7, w = 1.3 (float64 scalar leaves). The
//     gradient g = ∂y/∂x = w·(1 − y²) is computed by grad(..., create_graph);
//     its graph is exported as DOT (to_dot(g)): the forward ops (mul, tanh)
//     and the ops the backward pass recorded. Then trace_backward(g) runs
//     backward through that graph, step by step: x.grad = ∂²y/∂x² and
//     w.grad = ∂g/∂w, checked against their closed forms.
// (b) The lecture's second-derivative facts, each computed by two grad()
//     calls (the first with create_graph) and compared with the closed forms
//     at several points, float64, to 1e-12:
//       σ'' = σ'(1 − 2σ)            (σ' = σ(1 − σ))
//       tanh'' = −2 tanh · tanh'    (tanh' = 1 − tanh²)
//
// Usage: double_backward_graph [--out DIR] [--quiet]
//   --out DIR  g's graph (DOT, and SVG when Graphviz is installed) and the
//              trace of its backward (text and JSON) go here
//              (default double_backward_graph_out)
// Exits 1 if a check fails.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <sstream>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "command_line.hpp"
#include "example_support.hpp"

using namespace tapegrad;
using namespace tapegrad::tools;

namespace {

const char* kDescription =
    "double_backward_graph: the graph of a create-graph gradient, and second derivatives by backward through it, "
    "checked against closed forms.";

constexpr double kTolerance = 1e-12;  // float64: a handful of roundings of O(1) numbers
int failures = 0;

// Prints "name  tapegrad  closed form" and counts a failure when they
// differ by more than kTolerance (absolute: every value here is O(1)).
void check(const std::string& name, double got, double expected, bool quiet) {
  const bool ok = std::abs(got - expected) <= kTolerance;
  if (!ok) ++failures;
  if (!quiet || !ok) {
    std::printf("  %s %+.15f   closed form %+.15f   %s\n", examples::padded(name, 34).c_str(), got, expected,
                ok ? "ok" : "MISMATCH");
  }
}

void require(bool ok, const std::string& what, bool quiet) {
  if (!ok) ++failures;
  if (!quiet || !ok) std::printf("  %s %s\n", examples::padded(what, 34).c_str(), ok ? "ok" : "FAILED");
}

Tensor leaf(const char* name, double value) {
  Tensor t = scalar(value, DType::Float64).requires_grad_();
  t.set_name(name);
  return t;
}

// ---------------------------------------------------------------------------
// (a) By hand, with t = tanh(wx):
//   g      = ∂y/∂x   = w (1 − t²)
//   ∂g/∂x  = ∂²y/∂x² = w² · tanh''(wx) = −2 w² t (1 − t²)
//   ∂g/∂w            = (1 − t²) + w · x · tanh''(wx) = (1 − t²) − 2 w x t (1 − t²)
// and in g's backward the tanh node receives ∂g/∂y = −2 w y (g = w(1 − y²)).
// ---------------------------------------------------------------------------
void gradient_graph(const std::string& out_dir, bool quiet) {
  std::printf("(a) y = tanh(w·x), g = grad(y, x, create_graph): the graph of a gradient\n");
  CaptureValuesGuard keep_values;  // every value in the picture, also of tensors freed since
  Tensor x = leaf("x", 0.7);
  Tensor w = leaf("w", 1.3);
  Tensor z = (w * x).set_name("z = w·x");
  Tensor y = tanh(z).set_name("y = tanh z");
  // The seed dy/dy = 1, named so that the picture tells it from the 1 of 1 − y².
  const Tensor seed = scalar(1.0, DType::Float64).set_name("seed dy/dy");
  Tensor g = grad({y}, {x}, {seed}, {.create_graph = true})[0];
  g.set_name("g = ∂y/∂x");

  // Which ops the backward pass recorded: those created after y's node
  // (sequence numbers follow creation order, and nothing else ran between).
  const ComputationGraph graph = build_graph(g);
  const std::uint64_t forward_end = y.grad_fn()->sequence();
  const int y_index = graph.ops[static_cast<std::size_t>(graph.op_index(y.grad_fn().get()))].output;
  const int w_index = [&] {
    for (std::size_t i = 0; i < graph.tensors.size(); ++i) {
      if (graph.tensors[i].name == "w") return static_cast<int>(i);
    }
    return -1;
  }();
  std::vector<const GraphOp*> recorded_by_backward;
  bool reads_y = false, reads_w = false;
  for (const GraphOp& op : graph.ops) {
    if (op.node->sequence() <= forward_end) continue;
    recorded_by_backward.push_back(&op);
    for (int input : op.inputs) {
      reads_y = reads_y || input == y_index;
      reads_w = reads_w || input == w_index;
    }
  }
  DotOptions dot_options;
  dot_options.precision = 6;
  dot_options.title = "g = ∂y/∂x of y = tanh(w·x), recorded by grad(..., create_graph = true)";
  const std::string dot = to_dot(graph, dot_options);
  if (!quiet) {
    std::printf("g's graph: %zu ops; recorded by the backward pass:", graph.ops.size());
    for (const GraphOp* op : recorded_by_backward)
      std::printf(" %s (%s: %s)", op->id.c_str(), op->name.c_str(), op->formula.c_str());
    std::printf("\n");
  }
  require(graph.op_index(y.grad_fn().get()) >= 0, "the forward tanh is in g's graph", quiet);
  require(!recorded_by_backward.empty(), "the backward pass recorded ops", quiet);
  bool all_in_dot = !recorded_by_backward.empty();
  for (const GraphOp* op : recorded_by_backward) {
    all_in_dot = all_in_dot && dot.find(op->id + " [shape=ellipse") != std::string::npos &&
                 dot.find("label=\"" + op->name + "\\n") != std::string::npos;
  }
  require(all_in_dot, "the DOT draws every backward op", quiet);
  // tanh's derivative comes from its result (1 − y²): y feeds the backward
  // ops, and so does w (mul's backward multiplies by the other factor).
  require(reads_y, "a backward op reads y = tanh(z)", quiet);
  require(reads_w, "a backward op reads w", quiet);

  const BackwardTrace trace = trace_backward(g);  // x.grad = ∂g/∂x, w.grad = ∂g/∂w
  if (!quiet) std::printf("\n%s\n", trace.text({.precision = 12, .max_elements = 16}).c_str());

  const double t = std::tanh(1.3 * 0.7), wv = 1.3, xv = 0.7;
  const double tanh2 = -2 * t * (1 - t * t);  // tanh''(wx)
  check("g = w(1 − t²)", g.item(), wv * (1 - t * t), quiet);
  check("x.grad = ∂²y/∂x² = −2w²t(1 − t²)", x.grad().item(), wv * wv * tanh2, quiet);
  check("w.grad = ∂g/∂w", w.grad().item(), (1 - t * t) + wv * xv * tanh2, quiet);
  check("tanh node's upstream −2wy", trace.step_for(y).grad_output.item(), -2 * wv * t, quiet);

  namespace fs = std::filesystem;
  fs::create_directories(out_dir);
  const std::string stem = out_dir + "/gradient_graph";
  std::ostringstream dot_warnings;
  const RenderResult picture = save_dot(dot, stem, {.warnings = &dot_warnings});
  examples::write_file(stem + "_trace.txt", trace.text({.precision = 12, .max_elements = 16}));
  examples::write_file(stem + "_trace.json", trace.json());
  if (!quiet) {
    std::printf("wrote %s%s, %s_trace.txt and %s_trace.json%s\n", picture.dot_path.c_str(),
                picture.rendered ? (" and " + picture.image_path).c_str() : "", stem.c_str(), stem.c_str(),
                picture.rendered ? "" : (" (no picture: " + picture.message + ")").c_str());
  }
}

// ---------------------------------------------------------------------------
// (b) First and second derivatives by two grad() calls at one point.
// ---------------------------------------------------------------------------
struct Derivatives {
  double value, first, second;
};

Derivatives two_grads(Tensor (*f)(const Tensor&), double at) {
  Tensor x = leaf("x", at);
  const Tensor y = f(x);
  const Tensor first = grad({y}, {x}, {}, {.create_graph = true})[0];
  const Tensor second = grad({first}, {x})[0];
  return {y.item(), first.item(), second.item()};
}

void second_derivatives(bool quiet) {
  std::printf("(b) second derivatives by two grad() calls vs the closed forms (|difference| <= %g)\n", kTolerance);
  const double points[] = {-4.0, -2.0, -1.0, -0.5, 0.0, 0.3, 1.0, 2.5};
  double worst = 0;
  if (!quiet) std::printf("        x       σ''(x)          σ'(1 − 2σ)      tanh''(x)       −2 tanh·tanh'\n");
  for (double at : points) {
    const Derivatives s = two_grads(sigmoid, at);
    const Derivatives t = two_grads(tanh, at);
    const double sigma = 1 / (1 + std::exp(-at)), sigma1 = sigma * (1 - sigma);
    const double th = std::tanh(at), tanh1 = 1 - th * th;
    const double closed[] = {sigma1, sigma1 * (1 - 2 * sigma), tanh1, -2 * th * tanh1};
    const double got[] = {s.first, s.second, t.first, t.second};
    const char* names[] = {"σ'", "σ''", "tanh'", "tanh''"};
    for (int k = 0; k < 4; ++k) {
      const double error = std::abs(got[k] - closed[k]);
      worst = std::max(worst, error);
      if (error > kTolerance) {
        ++failures;
        std::printf("  MISMATCH %s(%g): %+.17g, closed form %+.17g\n", names[k], at, got[k], closed[k]);
      }
    }
    if (!quiet) {
      std::printf("  %+6.2f   %+.12f  %+.12f  %+.12f  %+.12f\n", at, s.second, closed[1], t.second, closed[3]);
    }
  }
  std::printf("  largest |tapegrad − closed form| over σ', σ'', tanh', tanh'' at %zu points: %.3g\n", std::size(points),
              worst);
}

int run(int argc, char** argv) {
  std::string out_dir = "double_backward_graph_out";
  bool quiet = false;
  examples::CommandLine cli(kDescription);
  cli.text("--out", out_dir, "the gradient's graph (.dot, .svg) and the trace of its backward (.txt, .json)", "DIR");
  cli.flag("--quiet", quiet, "print only the checks and the result line");
  if (!cli.parse(argc, argv)) return 0;

  gradient_graph(out_dir, quiet);
  std::printf("\n");
  second_derivatives(quiet);
  std::printf("\n%s\n", failures == 0 ? "double backward: every check passed"
                                      : ("double backward: " + std::to_string(failures) + " checks FAILED").c_str());
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("double_backward_graph", argc, argv, run); }
