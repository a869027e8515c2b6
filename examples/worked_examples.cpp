// The worked backpropagation examples of the lecture notes, reproduced with
// exact numbers, each step explained by a backward trace.
//
// (a) Inputs x1, x2; hidden ReLU units 3 and 4; a sigmoid output unit 5;
//     binary cross-entropy against the target y = 0. Every weight is its own
//     scalar leaf, named as in the notes (w0,j is unit j's bias), so the
//     graph and the trace read like the blackboard.
// (b) Two inputs, z = Wx + b, sigmoid hidden units h1, h2, a linear output
//     ŷ = w5·h1 + w6·h2 and the squared error E = (y − ŷ)²: ∂E/∂w5 and
//     ∂E/∂w1 as products of the local factors the trace shows.
//
// Usage: worked_examples [--out DIR] [--quiet]
//   --out DIR  also write each graph (DOT, and SVG when Graphviz is
//              installed) and each trace (text and JSON) into DIR
//   --quiet    print only the check results
// Exits 1 if a number differs from its hand-computed value.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "command_line.hpp"

using namespace tapegrad;
using namespace tapegrad::tools;

namespace {

struct Options {
  std::string out;
  bool quiet = false;
};

int failures = 0;

// Prints "name  tapegrad  hand" and counts a failure when they differ by
// more than a relative 1e-9 (the float64 rounding of a few ops).
void check(const char* name, double got, double expected, bool quiet, double tolerance = 1e-9) {
  const bool ok = std::abs(got - expected) <= tolerance * std::max(1.0, std::abs(expected));
  if (!ok) ++failures;
  if (!quiet || !ok) {
    // Pad by characters, not bytes: names hold UTF-8 (ŷ, ∂, Π).
    std::size_t width = 0;
    for (const char* c = name; *c; ++c) width += (static_cast<unsigned char>(*c) & 0xC0) != 0x80;
    const std::string padding(width < 12 ? 12 - width : 0, ' ');
    std::printf("  %s%s = %+.15f   hand: %+.15f   %s\n", name, padding.c_str(), got, expected, ok ? "ok" : "MISMATCH");
  }
}

Tensor weight(const char* name, double value) {
  Tensor w = scalar(value, DType::Float64);
  w.requires_grad_();
  w.set_name(name);
  return w;
}

Tensor input(const char* name, double value) {
  Tensor x = scalar(value, DType::Float64);
  x.set_name(name);
  return x;
}

void save(const Options& options, const std::string& stem, const BackwardTrace& trace) {
  if (options.out.empty()) return;
  std::filesystem::create_directories(options.out);
  const std::string path = options.out + "/" + stem;
  DotOptions dot;
  dot.precision = 6;
  const RenderResult picture = save_dot(to_dot(trace.graph(), dot), path);
  std::ofstream(path + "_trace.txt") << trace.text();
  std::ofstream(path + "_trace.json") << trace.json();
  std::printf("wrote %s%s, %s_trace.txt and %s_trace.json\n", picture.dot_path.c_str(),
              picture.rendered ? (" and " + picture.image_path).c_str() : "", path.c_str(), path.c_str());
}

// ---------------------------------------------------------------------------
// (a) By hand:
//   z3 = w0,3 + w1,3·x1 + w2,3·x2 = 2 + 2·(−3) + 3·5 = 11,   h3 = ReLU(11) = 11
//   z4 = w0,4 + w1,4·x1 + w2,4·x2 = −1 + 4·(−3) + 1·5 = −8,  h4 = ReLU(−8) = 0
//   z5 = w0,5 + w3,5·h3 + w4,5·h4 = 1 + 2·11 + 3·0 = 23,     ŷ = σ(23) ≈ 0.99999999989738
//   L  = −(y ln ŷ + (1 − y) ln(1 − ŷ)) = −ln(1 − σ(23)) = ln(1 + e^23) ≈ 23.0000000001026
// Backward, with δj = ∂L/∂zj:
//   δ5 = ∂L/∂ŷ · σ'(z5) = (ŷ − y)/(ŷ(1 − ŷ)) · ŷ(1 − ŷ) = ŷ − y = ŷ
//   ∂L/∂w0,5 = δ5,  ∂L/∂w3,5 = δ5·h3 = 11ŷ,  ∂L/∂w4,5 = δ5·h4 = 0
//   δ3 = δ5·w3,5·ReLU'(z3) = 2ŷ·1 = 2ŷ,   δ4 = δ5·w4,5·ReLU'(z4) = 3ŷ·0 = 0
//   ∂L/∂w0,3 = δ3 = 2ŷ,  ∂L/∂w1,3 = δ3·x1 = −6ŷ,  ∂L/∂w2,3 = δ3·x2 = 10ŷ
//   ∂L/∂w0,4 = ∂L/∂w1,4 = ∂L/∂w2,4 = 0 (unit 4 is off: no gradient flows through it)
// ---------------------------------------------------------------------------
void example_a(const Options& options) {
  std::printf("(a) ReLU hidden units 3, 4; sigmoid output unit 5; binary cross-entropy\n");
  CaptureValuesGuard keep_values;  // so the trace shows every intermediate value
  Tensor w03 = weight("w0,3", 2), w04 = weight("w0,4", -1), w05 = weight("w0,5", 1);
  Tensor w13 = weight("w1,3", 2), w14 = weight("w1,4", 4);
  Tensor w23 = weight("w2,3", 3), w24 = weight("w2,4", 1);
  Tensor w35 = weight("w3,5", 2), w45 = weight("w4,5", 3);
  const Tensor x1 = input("x1", -3), x2 = input("x2", 5), y = input("y", 0);

  // One statement per op, so the ops are recorded (and numbered) in the
  // order of the notes: z = (w0 + w1·a) + w2·b.
  auto unit = [](const Tensor& w0, const Tensor& w1, const Tensor& a, const Tensor& w2, const Tensor& b) {
    Tensor first = w1 * a;
    Tensor partial = w0 + first;
    Tensor second = w2 * b;
    return partial + second;
  };
  Tensor z3 = unit(w03, w13, x1, w23, x2);
  Tensor h3 = relu(z3);
  Tensor z4 = unit(w04, w14, x1, w24, x2);
  Tensor h4 = relu(z4);
  Tensor z5 = unit(w05, w35, h3, w45, h4);
  Tensor y_hat = sigmoid(z5);
  Tensor loss = binary_cross_entropy(y_hat, y);
  for (auto [t, name] :
       {std::pair{&z3, "z3"}, {&h3, "h3"}, {&z4, "z4"}, {&h4, "h4"}, {&z5, "z5"}, {&y_hat, "ŷ"}, {&loss, "L"}}) {
    t->set_name(name);
  }

  const BackwardTrace trace = trace_backward(loss);
  if (!options.quiet) {
    std::printf("%s\n", trace.text({.precision = 12, .max_elements = 16}).c_str());
    std::printf("forward and gradients (tapegrad vs the hand derivation above):\n");
  }
  const double s = 1.0 / (1.0 + std::exp(-23.0));  // ŷ = σ(23)
  const bool quiet = options.quiet;
  check("z3", z3.item(), 11, quiet);
  check("z4", z4.item(), -8, quiet);
  check("z5", z5.item(), 23, quiet);
  check("ŷ", y_hat.item(), s, quiet);
  // L = ln(1 + e^23) = 23.0000000001026. Computed as −ln(1 − ŷ), where
  // 1 − ŷ ≈ 1e-10 is left with float64's absolute error of ~1e-16, so L is
  // only good to ~1e-7; bce_with_logits on z5 never forms 1 − ŷ and is exact.
  check("L", loss.item(), 23 + std::log1p(std::exp(-23.0)), quiet, 1e-7);
  check("L (logits)", bce_with_logits(z5.detach(), y).item(), 23 + std::log1p(std::exp(-23.0)), quiet);
  check("dL/dw0,3", w03.grad().item(), 2 * s, quiet);
  check("dL/dw1,3", w13.grad().item(), -6 * s, quiet);
  check("dL/dw2,3", w23.grad().item(), 10 * s, quiet);
  check("dL/dw0,4", w04.grad().item(), 0, quiet);
  check("dL/dw1,4", w14.grad().item(), 0, quiet);
  check("dL/dw2,4", w24.grad().item(), 0, quiet);
  check("dL/dw0,5", w05.grad().item(), s, quiet);
  check("dL/dw3,5", w35.grad().item(), 11 * s, quiet);
  check("dL/dw4,5", w45.grad().item(), 0, quiet);
  save(options, "worked_a", trace);
}

// ---------------------------------------------------------------------------
// (b) x = (x1, x2) = (0.5, −1), W = [[w1, w2], [w3, w4]] = [[0.2, −0.3], [0.4, 0.1]],
//     b = (0.1, −0.2), output weights (w5, w6) = (0.6, −0.4), target y = 1.
//   z1 = 0.1 + 0.2·0.5 − 0.3·(−1) = 0.5,    h1 = σ(0.5)  ≈ 0.622459331202
//   z2 = −0.2 + 0.4·0.5 + 0.1·(−1) = −0.1,  h2 = σ(−0.1) ≈ 0.475020812521
//   ŷ  = 0.6·h1 − 0.4·h2 ≈ 0.183467273713,  E = (y − ŷ)² ≈ 0.666725693098
//   ∂E/∂w5 = ∂E/∂ŷ · ∂ŷ/∂w5                   = −2(y − ŷ) · h1
//          ≈ −1.633065452575 · 0.622459331202  ≈ −1.016516829418
//   ∂E/∂w1 = ∂E/∂ŷ · ∂ŷ/∂h1 · ∂h1/∂z1 · ∂z1/∂w1 = −2(y − ŷ) · w5 · h1(1 − h1) · x1
//          ≈ −1.633065452575 · 0.6 · 0.235003712202 · 0.5 ≈ −0.115132933087
// ---------------------------------------------------------------------------
void example_b(const Options& options) {
  std::printf("(b) sigmoid hidden units, linear output, squared error: the chain rule as a product of local factors\n");
  CaptureValuesGuard keep_values;
  Tensor x = Tensor({0.5, -1.0}, DType::Float64).set_name("x");
  Tensor W = Tensor({{0.2, -0.3}, {0.4, 0.1}}, DType::Float64).requires_grad_().set_name("W");
  Tensor b = Tensor({0.1, -0.2}, DType::Float64).requires_grad_().set_name("b");
  Tensor v = Tensor({{0.6, -0.4}}, DType::Float64).requires_grad_().set_name("(w5, w6)");
  const Tensor y = Tensor({1.0}, DType::Float64).set_name("y");

  Tensor z = linear(x, W, b).set_name("z");
  Tensor h = sigmoid(z).set_name("h");
  Tensor y_hat = linear(h, v).set_name("ŷ");
  Tensor E = sse_loss(y_hat, y).set_name("E");  // Σ (ŷ − y)² = (y − ŷ)² for one output

  const BackwardTrace trace = trace_backward(E);
  if (!options.quiet) std::printf("%s\n", trace.text({.precision = 12, .max_elements = 16}).c_str());

  // The local factors, read off the trace's steps.
  const double dE_dyhat = trace.step_for(E).inputs[0].local_derivative.item();           // −2(y − ŷ)
  const double dyhat_dh1 = trace.step_for(y_hat).inputs[0].local_derivative.at({0});     // w5
  const double dyhat_dw5 = trace.step_for(y_hat).inputs[1].local_derivative.at({0, 0});  // h1
  const double dh1_dz1 = trace.step_for(h).inputs[0].local_derivative.at({0});           // h1(1 − h1)
  const double dz1_dw1 = x.at({0});  // linear's Jacobian is not diagonal: from its formula, ∂z1/∂w1 = x1
  const double dE_dw5 = dE_dyhat * dyhat_dw5;
  const double dE_dw1 = dE_dyhat * dyhat_dh1 * dh1_dz1 * dz1_dw1;
  if (!options.quiet) {
    std::printf("∂E/∂w5 = −2(y − ŷ) · h1 = %.12f · %.12f = %.12f   backward: %.12f\n", dE_dyhat, dyhat_dw5, dE_dw5,
                v.grad().at({0, 0}));
    std::printf("∂E/∂w1 = −2(y − ŷ) · w5 · h1(1 − h1) · x1 = %.12f · %.12f · %.12f · %.12f = %.12f   backward: %.12f\n",
                dE_dyhat, dyhat_dh1, dh1_dz1, dz1_dw1, dE_dw1, W.grad().at({0, 0}));
    std::printf("checks (tapegrad vs the hand derivation above):\n");
  }
  const double h1 = 1 / (1 + std::exp(-0.5)), h2 = 1 / (1 + std::exp(0.1));
  const double yh = 0.6 * h1 - 0.4 * h2;
  const bool quiet = options.quiet;
  check("h1", h.at({0}), h1, quiet);
  check("ŷ", y_hat.item(), yh, quiet);
  check("E", E.item(), (1 - yh) * (1 - yh), quiet);
  check("−2(y − ŷ)", dE_dyhat, -2 * (1 - yh), quiet);
  check("w5", dyhat_dh1, 0.6, quiet);
  check("h1(1 − h1)", dh1_dz1, h1 * (1 - h1), quiet);
  // The products of the trace's local factors, and backward's gradients,
  // against the hand formulas.
  check("Π ∂E/∂w5", dE_dw5, -2 * (1 - yh) * h1, quiet);
  check("∂E/∂w5", v.grad().at({0, 0}), -2 * (1 - yh) * h1, quiet);
  check("Π ∂E/∂w1", dE_dw1, -2 * (1 - yh) * 0.6 * h1 * (1 - h1) * 0.5, quiet);
  check("∂E/∂w1", W.grad().at({0, 0}), -2 * (1 - yh) * 0.6 * h1 * (1 - h1) * 0.5, quiet);
  save(options, "worked_b", trace);
}

int run(int argc, char** argv) {
  Options options;
  examples::CommandLine cli(
      "worked_examples: the lecture's worked backpropagation examples with exact numbers, each checked against its "
      "hand derivation");
  cli.text("--out", options.out, "write each example's trace and graph here (default: nothing written)", "DIR");
  cli.flag("--quiet", options.quiet, "print only the mismatches and the result");
  if (!cli.parse(argc, argv)) return 0;
  example_a(options);
  std::printf("\n");
  example_b(options);
  std::printf("\n%s\n", failures == 0 ? "all worked examples agree with the hand derivations"
                                      : (std::to_string(failures) + " mismatches").c_str());
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("worked_examples", argc, argv, run); }
