// Newton's method on real data, with every Hessian-vector product computed
// by the engine: L2-regularised logistic regression of MNIST digits 0 vs 1,
//
//   L(W, b) = mean_i BCE(σ(W·x_i + b), y_i) + λ/2 ‖W‖²      (y_i = 1 for a one)
//
// in float64. Each Newton step solves H d = −∇L by conjugate gradients;
// every H·v in them is tapegrad::functional::hvp (reverse over reverse: a
// grad with create_graph, then the gradient of ⟨∇L, v⟩): no Hessian is
// written by hand or formed. A backtracking line search guards the step.
//
// For comparison, from the same start θ = 0: gradient descent with the
// fixed step 1/ℓ, where ℓ is the largest Hessian eigenvalue at θ = 0 (found
// by power iteration on hvp; σ' is largest at 0, so ℓ bounds the curvature
// everywhere and the step is safe), and gradient descent with an Armijo
// backtracking line search.
//
// Checks (exit 1 if one fails): hvp agrees with central differences of the
// gradient; Newton-CG reaches ‖∇L‖ ≤ --tolerance within
// --max-newton-iterations; neither gradient descent does within its budget,
// and neither ends lower than Newton (to rounding); Newton's test accuracy is
// at least --min-accuracy.
//
// Data: the MNIST IDX files in --data (scripts/get-data); a missing file
// is an error naming it (exit status 2).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <tapegrad/functional.hpp>
#include <tapegrad/tapegrad.hpp>
#include <utility>
#include <vector>

#include "command_line.hpp"
#include "example_support.hpp"

using namespace tapegrad;

namespace {

const char* kDescription =
    "newton_logistic: Newton-CG (every H·v by the engine) against gradient descent on L2-regularised logistic "
    "regression of MNIST digits 0 vs 1";

// The parameters (W [1, 784], b [1]) and everything of their shapes:
// gradients, search directions, conjugate-gradient vectors.
using Params = std::vector<Tensor>;

double dot(const Params& a, const Params& b) {
  double total = 0;
  for (std::size_t i = 0; i < a.size(); ++i) total += sum(a[i] * b[i]).item();
  return total;
}
double norm(const Params& a) { return std::sqrt(dot(a, a)); }
Params scaled(double alpha, const Params& x) {
  Params out;
  for (const Tensor& t : x) out.push_back(alpha * t);
  return out;
}
// x + alpha·y
Params plus(const Params& x, double alpha, const Params& y) {
  Params out;
  for (std::size_t i = 0; i < x.size(); ++i) out.push_back(x[i] + alpha * y[i]);
  return out;
}

// The digits 0 and 1 of a data set: features float64 [n, 784], targets
// float64 [n, 1] (1 for a one), the logits' shape.
data::Dataset zeros_and_ones(const data::Dataset& set) {
  std::vector<std::int64_t> rows;
  std::vector<double> labels;
  for (std::int64_t i = 0; i < set.size(); ++i) {
    const double digit = set.targets().at({i});
    if (digit == 0 || digit == 1) {
      rows.push_back(i);
      labels.push_back(digit);
    }
  }
  const data::Dataset chosen = set.subset(rows);
  return data::Dataset(chosen.features().to(DType::Float64),
                       from_vector(labels, {static_cast<std::int64_t>(labels.size()), 1}, DType::Float64));
}

class Problem {
 public:
  Problem(data::Dataset train, double lambda) : train_(std::move(train)), lambda_(lambda) {}

  // L(θ), recorded when grad mode is on.
  Tensor loss(const Params& theta) const {
    return bce_with_logits(linear(train_.features(), theta[0], theta[1]), train_.targets()) +
           (0.5 * lambda_) * sum(theta[0] * theta[0]);
  }
  double value(const Params& theta) const {
    NoGradGuard no_grad;
    ++evaluations_;
    return loss(theta).item();
  }
  // L(θ) and ∇L(θ): one forward and one backward.
  std::pair<double, Params> value_and_gradient(const Params& theta) const {
    const functional::Derivative d = functional::vjp(function(), theta);
    return {d.value.item(), d.gradients};
  }
  // H(θ)·v, reverse over reverse.
  Params hessian_times(const Params& theta, const Params& v) const {
    ++hvps_;
    return functional::hvp(function(), theta, v).gradients;
  }

  std::int64_t evaluations() const { return evaluations_; }
  std::int64_t hvps() const { return hvps_; }

 private:
  functional::Function function() const {
    return [this](const std::vector<Tensor>& theta) { return loss(theta); };
  }
  data::Dataset train_;
  double lambda_;
  mutable std::int64_t evaluations_ = 0, hvps_ = 0;
};

// Fraction of rows where the logit's sign matches the label.
double accuracy(const Params& theta, const data::Dataset& set) {
  NoGradGuard no_grad;
  const std::vector<double> logits = linear(set.features(), theta[0], theta[1]).to_vector();
  const std::vector<double> labels = set.targets().to_vector();
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < logits.size(); ++i) correct += (logits[i] > 0) == (labels[i] > 0.5) ? 1 : 0;
  return static_cast<double>(correct) / static_cast<double>(logits.size());
}

// One row of a convergence curve.
struct Point {
  std::int64_t iteration;
  double loss, gradient_norm, seconds;
};

struct Run {
  std::string name;
  std::vector<Point> curve;
  Params theta;
  bool converged = false;  // ‖∇L‖ <= tolerance
  double seconds = 0;
  const Point& last() const { return curve.back(); }
  // The first iteration with ‖∇L‖ <= bound, or -1.
  std::int64_t first_below(double bound) const {
    for (const Point& p : curve) {
      if (p.gradient_norm <= bound) return p.iteration;
    }
    return -1;
  }
};

// A direction of θ's shapes, uniformly distributed on the unit sphere.
Params random_unit(const Params& theta) {
  Params v;
  for (const Tensor& t : theta) v.push_back(randn(t.shape(), DType::Float64));
  return scaled(1 / norm(v), v);
}

using Clock = std::chrono::steady_clock;
double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// The largest eigenvalue of H(θ) by power iteration (H is positive definite;
// the Rayleigh quotient approaches it from below).
double largest_eigenvalue(const Problem& problem, const Params& theta, int iterations) {
  Params v = random_unit(theta);
  double eigenvalue = 0;
  for (int k = 0; k < iterations; ++k) {
    v = scaled(1 / norm(v), v);
    const Params hv = problem.hessian_times(theta, v);
    eigenvalue = dot(v, hv);  // the Rayleigh quotient of a unit v
    v = hv;
  }
  return eigenvalue;
}

// H d = b by conjugate gradients, from d = 0, until ‖H d − b‖ <= rtol·‖b‖.
Params conjugate_gradients(const Problem& problem, const Params& theta, const Params& b, double rtol,
                           std::int64_t max_iterations, std::int64_t& iterations) {
  Params d{zeros_like(b[0]), zeros_like(b[1])};
  Params r = b, p = b;
  double rr = dot(r, r);
  const double stop = rtol * std::sqrt(rr);
  for (iterations = 0; iterations < max_iterations && std::sqrt(rr) > stop;) {
    const Params hp = problem.hessian_times(theta, p);
    const double alpha = rr / dot(p, hp);
    d = plus(d, alpha, p);
    r = plus(r, -alpha, hp);
    ++iterations;
    const double rr_next = dot(r, r);
    p = plus(r, rr_next / rr, p);
    rr = rr_next;
  }
  return d;
}

// The largest step alpha (from alpha0, halving) that decreases L by at least
// 1e-4·alpha·|⟨∇L, d⟩| (Armijo's condition), for a descent direction d.
double backtrack(const Problem& problem, const Params& theta, double loss, const Params& gradient, const Params& d,
                 double alpha0) {
  const double slope = dot(gradient, d);
  // Near the minimum the decrease to test falls to the rounding error of
  // the loss itself (a mean of n terms: ~1e-16·L·√n), where comparing two
  // losses says nothing; within a margin above it, a step passes.
  const double rounding = 1e-13 * std::abs(loss);
  double alpha = alpha0;
  for (int halvings = 0; halvings < 60; ++halvings, alpha *= 0.5) {
    if (problem.value(plus(theta, alpha, d)) <= loss + 1e-4 * alpha * slope + rounding) return alpha;
  }
  return 0;  // no decrease found: d is no descent direction at this precision
}

// A method's step from θ, given L(θ) and ∇L(θ): a direction d and a step
// length α (0: no step decreases L, stop).
using StepRule = std::function<std::pair<Params, double>(const Params& theta, double loss, const Params& gradient)>;

// θ ← θ + α d from `start` until ‖∇L‖ <= tolerance or after max_iterations
// steps, recording L and ‖∇L‖ at every iterate.
Run descend(std::string name, const Problem& problem, const Params& start, double tolerance,
            std::int64_t max_iterations, const StepRule& rule) {
  Run run{std::move(name), {}, start};
  const auto t0 = Clock::now();
  for (std::int64_t k = 0;; ++k) {
    const auto [loss, gradient] = problem.value_and_gradient(run.theta);
    const double gradient_norm = norm(gradient);
    run.curve.push_back({k, loss, gradient_norm, since(t0)});
    run.converged = gradient_norm <= tolerance;
    if (run.converged || k == max_iterations) break;
    const auto [direction, step] = rule(run.theta, loss, gradient);
    if (step == 0) break;
    run.theta = plus(run.theta, step, direction);
  }
  run.seconds = since(t0);
  return run;
}

struct NewtonStep {
  std::int64_t cg_iterations;
  double step;
};

// Newton-CG: d solves H d = −∇L by conjugate gradients on hvp, then a
// backtracking line search from the full step.
Run newton(const Problem& problem, const Params& start, double tolerance, std::int64_t max_iterations,
           std::int64_t max_cg, std::vector<NewtonStep>& steps) {
  return descend("Newton-CG", problem, start, tolerance, max_iterations,
                 [&](const Params& theta, double loss, const Params& gradient) {
                   // CG stops at ‖H d + ∇L‖ <= min(0.5, ‖∇L‖)·‖∇L‖: loose solves
                   // far away, tight ones near the minimum, which keeps Newton's
                   // quadratic convergence (Dembo, Eisenstat and Steihaug's
                   // forcing terms).
                   const double rtol = std::min(0.5, norm(gradient));
                   NewtonStep step{0, 0};
                   Params d =
                       conjugate_gradients(problem, theta, scaled(-1.0, gradient), rtol, max_cg, step.cg_iterations);
                   step.step = backtrack(problem, theta, loss, gradient, d, 1.0);
                   steps.push_back(step);
                   return std::pair{std::move(d), step.step};
                 });
}

// Gradient descent with the fixed step `fixed_step`, or with Armijo
// backtracking (fixed_step = 0) from twice the previous step.
Run gradient_descent(const char* name, const Problem& problem, const Params& start, double tolerance,
                     std::int64_t iterations, double fixed_step) {
  double step = 1.0;
  return descend(name, problem, start, tolerance, iterations,
                 [&](const Params& theta, double loss, const Params& gradient) {
                   Params descent = scaled(-1.0, gradient);  // −∇L
                   step = fixed_step > 0 ? fixed_step : backtrack(problem, theta, loss, gradient, descent, 2 * step);
                   return std::pair{std::move(descent), step};
                 });
}

// max over elements of |hvp − (∇L(θ + εv) − ∇L(θ − εv)) / 2ε| / max |hvp|.
double hvp_against_differences(const Problem& problem, const Params& theta) {
  const Params v = random_unit(theta);
  const double eps = 1e-5;
  const Params hv = problem.hessian_times(theta, v);
  const Params up = problem.value_and_gradient(plus(theta, eps, v)).second;
  const Params down = problem.value_and_gradient(plus(theta, -eps, v)).second;
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < hv.size(); ++i) {
    const std::vector<double> a = hv[i].to_vector(), u = up[i].to_vector(), d = down[i].to_vector();
    for (std::size_t j = 0; j < a.size(); ++j) {
      worst = std::max(worst, std::abs(a[j] - (u[j] - d[j]) / (2 * eps)));
      scale = std::max(scale, std::abs(a[j]));
    }
  }
  return worst / scale;
}

void write_curves(const std::string& out_dir, const std::vector<const Run*>& runs, bool quiet) {
  const examples::PlotFiles files = examples::plot_files(out_dir, "newton_logistic");
  std::ostringstream csv;
  csv << "method,iteration,loss,gradient_norm,seconds\n";
  for (const Run* run : runs) {
    for (const Point& p : run->curve) {
      csv << run->name << ',' << p.iteration << ',' << p.loss << ',' << p.gradient_norm << ',' << p.seconds << '\n';
    }
  }
  examples::write_file(files.data, csv.str());
  std::ostringstream gp;
  gp << "# Drawn by the newton_logistic example. Redraw with: gnuplot newton_logistic.gp\n"
     << train::gnuplot_png_terminal(900, 600, files.png) << "set datafile separator ','\n"
     << "set logscale xy\nset format y '10^{%L}'\nset xlabel 'iteration + 1'\nset ylabel '‖∇L‖'\nset grid\n"
     << "set title 'L2-regularised logistic regression, MNIST 0 vs 1: gradient norm per iteration'\n"
     << "plot ";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    gp << (i ? ", \\\n     " : "") << "'" << files.data << "' using (strcol(1) eq '" << runs[i]->name
       << "' ? $2 + 1 : 1/0):4 with linespoints pt 7 ps 0.5 lw 2 title '" << runs[i]->name << "'";
  }
  gp << "\nset output\n";
  examples::write_file(files.script, gp.str());
  if (examples::run_gnuplot_or_note(files.script, files.png) && !quiet) {
    std::printf("picture: %s (data %s)\n", files.png.c_str(), files.data.c_str());
  }
}

std::string iteration_text(std::int64_t iteration, std::int64_t budget) {
  return iteration >= 0 ? std::to_string(iteration) : "> " + std::to_string(budget);
}

int run(int argc, char** argv) {
  std::string data_dir = TAPEGRAD_SOURCE_DIR "/data/mnist", out_dir = "newton_logistic_out";
  double lambda = 0.01, tolerance = 1e-10, min_accuracy = 0.99;
  std::int64_t max_newton = 10, max_cg = 200, gd_iterations = 3000;
  bool short_mode = false, quiet = false;
  const std::int64_t one = 1;
  examples::CommandLine cli(kDescription);
  cli.text("--data", data_dir, "MNIST IDX files (the default is the repository's data/mnist)", "DIR");
  cli.number("--lambda", lambda, "L2 penalty λ on the weights", examples::above(0));
  cli.number("--tolerance", tolerance, "Newton stops at ‖∇L‖ <= X", examples::above(0));
  cli.integer("--max-newton-iterations", max_newton, "Newton steps allowed to reach the tolerance", one);
  cli.integer("--max-cg-iterations", max_cg, "conjugate-gradient steps per Newton step", one);
  cli.default_when(
      short_mode,
      cli.integer("--gd-iterations", gd_iterations, "budget of each gradient descent (500 with --short)", one),
      gd_iterations, std::int64_t{500});
  cli.flag("--short", short_mode,
           "gradient descent budget 500 unless --gd-iterations says otherwise (the test suite's mode)");
  cli.number("--min-accuracy", min_accuracy, "exit 1 unless Newton's test accuracy is at least X",
             examples::closed(0, 1));
  cli.text("--out", out_dir, "convergence curves (CSV) and their picture go here", "DIR");
  cli.flag("--quiet", quiet, "print only the result lines");
  if (!cli.parse(argc, argv)) return 0;

  manual_seed(1);  // the random directions of the power iteration and of the hvp check
  const data::MnistData mnist = data::load_mnist(data_dir, {.flatten = true});
  const data::Dataset train_set = zeros_and_ones(mnist.train);
  const data::Dataset test_set = zeros_and_ones(mnist.test);
  const Problem problem(train_set, lambda);
  const Params start{zeros({1, train_set.features().shape(1)}, DType::Float64), zeros({1}, DType::Float64)};
  if (!quiet) {
    std::printf("MNIST 0 vs 1 from %s: %lld training and %lld test images, %lld pixels + a bias\n", data_dir.c_str(),
                static_cast<long long>(train_set.size()), static_cast<long long>(test_set.size()),
                static_cast<long long>(train_set.features().shape(1)));
    std::printf("L = mean BCE with logits + λ/2 ‖W‖², λ = %g, float64, from θ = 0\n\n", lambda);
  }
  int failures = 0;
  auto require = [&](bool ok, const std::string& what) {
    if (!ok) ++failures;
    if (!ok || !quiet) std::printf("check: %s: %s\n", what.c_str(), ok ? "ok" : "FAILED");
  };

  const double hvp_error = hvp_against_differences(problem, start);
  char text[160];
  std::snprintf(text, sizeof text, "hvp vs central differences of ∇L at θ = 0: relative error %.2g <= 1e-6", hvp_error);
  require(hvp_error <= 1e-6, text);

  const double curvature = largest_eigenvalue(problem, start, 50);
  if (!quiet) {
    std::printf("largest Hessian eigenvalue at θ = 0 (50 power iterations on hvp): ℓ = %.6g; smallest >= λ = %g\n",
                curvature, lambda);
    std::printf("  condition number of H(0) <= ℓ/λ = %.0f; gradient descent's fixed step 1/ℓ = %.6g\n\n",
                curvature / lambda, 1 / curvature);
  }

  std::vector<NewtonStep> steps;
  const std::int64_t hvps_before = problem.hvps(), evaluations_before = problem.evaluations();
  const Run newton_run = newton(problem, start, tolerance, max_newton, max_cg, steps);
  const std::int64_t newton_hvps = problem.hvps() - hvps_before;
  const std::int64_t newton_evaluations = problem.evaluations() - evaluations_before;
  if (!quiet) {
    std::printf("Newton-CG (every H·v by functional::hvp):\n");
    std::printf("  iter  loss                ‖∇L‖       CG steps  step\n");
    for (const Point& p : newton_run.curve) {
      std::printf("  %4lld  %.16f  %.3e", static_cast<long long>(p.iteration), p.loss, p.gradient_norm);
      if (static_cast<std::size_t>(p.iteration) < steps.size()) {
        const NewtonStep& s = steps[static_cast<std::size_t>(p.iteration)];
        std::printf("  %8lld  %g", static_cast<long long>(s.cg_iterations), s.step);
      }
      std::printf("\n");
    }
    std::printf("  %lld Hessian-vector products, %lld gradients, %lld loss evaluations (line search), %.2f s\n\n",
                static_cast<long long>(newton_hvps), static_cast<long long>(newton_run.curve.size()),
                static_cast<long long>(newton_evaluations), newton_run.seconds);
  }

  const Run fixed = gradient_descent("GD step 1/ℓ", problem, start, tolerance, gd_iterations, 1 / curvature);
  const std::int64_t evaluations_before_armijo = problem.evaluations();
  const Run armijo = gradient_descent("GD Armijo", problem, start, tolerance, gd_iterations, 0);
  const std::int64_t armijo_evaluations = problem.evaluations() - evaluations_before_armijo;

  const double optimum = newton_run.last().loss;
  if (!quiet) {
    std::printf("iterations to reach ‖∇L‖ <= bound (budget: %lld gradient descent steps)\n",
                static_cast<long long>(gd_iterations));
    std::printf("  bound     Newton-CG  GD step 1/ℓ  GD Armijo\n");
    for (double bound = 1e-2; bound >= tolerance * 0.99; bound /= 100) {
      std::printf("  %-8.0e  %9s  %11s  %9s\n", bound,
                  iteration_text(newton_run.first_below(bound), max_newton).c_str(),
                  iteration_text(fixed.first_below(bound), gd_iterations).c_str(),
                  iteration_text(armijo.first_below(bound), gd_iterations).c_str());
    }
    std::printf(
        "\n  method        iterations  loss                L − L(Newton)  ‖∇L‖       train acc  test acc  seconds\n");
    for (const Run* r : {&newton_run, &fixed, &armijo}) {
      std::printf("  %s  %10lld  %.16f  %.3e      %.3e  %.4f     %.4f    %5.2f\n",
                  examples::padded(r->name, 12).c_str(), static_cast<long long>(r->last().iteration), r->last().loss,
                  r->last().loss - optimum, r->last().gradient_norm, accuracy(r->theta, train_set),
                  accuracy(r->theta, test_set), r->seconds);
    }
    std::printf("  (GD with Armijo evaluated the loss %lld more times for its line search.)\n\n",
                static_cast<long long>(armijo_evaluations));
  }
  write_curves(out_dir, {&newton_run, &fixed, &armijo}, quiet);

  const double test_accuracy = accuracy(newton_run.theta, test_set);
  std::snprintf(text, sizeof text, "Newton-CG reaches ‖∇L‖ <= %g within %lld iterations", tolerance,
                static_cast<long long>(max_newton));
  require(newton_run.converged, text);
  for (const Run* r : {&fixed, &armijo}) {
    std::snprintf(text, sizeof text, "%s after %lld steps: ‖∇L‖ = %.3g > %g", r->name.c_str(),
                  static_cast<long long>(r->last().iteration), r->last().gradient_norm, tolerance);
    require(!r->converged, text);
    // Losses this close to the minimum differ by rounding: Newton's must be
    // the lowest to within it.
    std::snprintf(text, sizeof text, "Newton's loss <= %s's (+ 1e-13·L)", r->name.c_str());
    require(optimum <= r->last().loss + 1e-13 * optimum, text);
  }
  std::snprintf(text, sizeof text, "Newton's test accuracy %.4f >= %g", test_accuracy, min_accuracy);
  require(test_accuracy >= min_accuracy, text);

  std::printf("newton_iterations=%lld\n", static_cast<long long>(newton_run.last().iteration));
  std::printf("newton_hvps=%lld\n", static_cast<long long>(newton_hvps));
  std::printf("newton_loss=%.16f\n", newton_run.last().loss);
  std::printf("newton_grad_norm=%.3e (tolerance %g)\n", newton_run.last().gradient_norm, tolerance);
  std::printf("gd_grad_norm=%.3e (step 1/ℓ, %lld steps), %.3e (Armijo)\n", fixed.last().gradient_norm,
              static_cast<long long>(fixed.last().iteration), armijo.last().gradient_norm);
  std::printf("test_accuracy=%.4f (bound %g)\n", test_accuracy, min_accuracy);
  if (failures > 0) std::printf("FAILED: %d checks\n", failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("newton_logistic", argc, argv, run); }
