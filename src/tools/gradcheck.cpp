#include "tapegrad/tools/gradcheck.hpp"

#include <cmath>
#include <random>
#include <sstream>

#include "tapegrad/autograd.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"
#include "tapegrad/random.hpp"

namespace tapegrad {

namespace {

std::string index_string(std::int64_t flat, const Shape& shape) {
  if (flat < 0) return "(random direction)";
  std::vector<std::int64_t> index(shape.rank());
  for (std::size_t axis = shape.rank(); axis-- > 0;) {
    index[axis] = flat % shape[axis];
    flat /= shape[axis];
  }
  std::string out = "[";
  for (std::size_t i = 0; i < index.size(); ++i) out += (i ? "," : "") + std::to_string(index[i]);
  return out + "]";
}

// Reduces f's output to a scalar with fixed random weights, so that every
// output element contributes to the checked gradient.
class ScalarObjective {
 public:
  ScalarObjective(const GradcheckFn& f, const Tensor& first_output, std::uint64_t seed) : f_(f) {
    if (first_output.numel() == 1) return;
    std::mt19937_64 generator(seed ^ 0x9e3779b97f4a7c15ULL);
    std::normal_distribution<double> normal;
    std::vector<double> w(static_cast<std::size_t>(first_output.numel()));
    for (double& v : w) v = normal(generator);
    weights_ = from_vector(w, first_output.shape(), DType::Float64);
  }

  Tensor reduce(const Tensor& output) const {
    if (!weights_.defined()) return output;
    Tensor weighted = record_op({"gradcheck_weights", "y = Σ w·x"}, weigh(output), {&output},
                                [w = weights_](const Tensor& g, InputGrads& grads) {
                                  Tensor gx = empty(w.shape(), DType::Float64);
                                  const double scale = g.data<double>()[0];
                                  for (std::int64_t i = 0, end = w.numel(); i < end; ++i) {
                                    gx.data<double>()[i] = scale * w.data<double>()[i];
                                  }
                                  grads.add(0, gx);
                                });
    return weighted;
  }

  double evaluate(const std::vector<Tensor>& inputs) const {
    NoGradGuard no_recording;
    return reduce(f_(inputs)).item();
  }

 private:
  Tensor weigh(const Tensor& output) const {
    if (output.shape() != weights_.shape()) {
      throw_invalid("gradcheck", "f's output changed shape from ", weights_.shape().str(), " to ",
                    output.shape().str());
    }
    double total = 0;
    for (std::int64_t i = 0, end = output.numel(); i < end; ++i) total += output.data<double>()[i] * weights_.data<double>()[i];
    return scalar(total, DType::Float64);
  }

  const GradcheckFn& f_;
  Tensor weights_;
};

struct Comparison {
  GradcheckResult& result;
  const GradcheckOptions& options;
  double worst_ratio = -1;
  double max_analytic = 0;
  double max_numeric = 0;

  void add(std::size_t input, std::int64_t index, double analytic, double numeric) {
    const double error = std::abs(analytic - numeric);
    const double ratio = error / (options.atol + options.rtol * std::abs(numeric));
    max_analytic = std::max(max_analytic, std::abs(analytic));
    max_numeric = std::max(max_numeric, std::abs(numeric));
    if (ratio > worst_ratio || std::isnan(ratio)) {
      worst_ratio = std::isnan(ratio) ? INFINITY : ratio;
      result.worst_input = input;
      result.worst_index = index;
      result.analytic = analytic;
      result.numeric = numeric;
      result.abs_error = error;
    }
  }
};

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& options) {
  if (!(options.eps > 0) || options.atol < 0 || options.rtol < 0) {
    throw_invalid("gradcheck", "needs eps > 0, atol >= 0, rtol >= 0; got eps=", options.eps, " atol=", options.atol,
                  " rtol=", options.rtol);
  }
  // Fresh leaf copies: the user's tensors and their .grad stay untouched.
  std::vector<Tensor> leaves;
  bool any_checked = false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& input = inputs[i];
    if (!input.defined()) throw_invalid("gradcheck", "input ", i, " is undefined");
    if (input.dtype() != DType::Float64) {
      throw_invalid("gradcheck", "input ", i, " is ", dtype_name(input.dtype()), " ", input.shape().str(),
                    "; central differences need float64 inputs (convert with .to(DType::Float64))");
    }
    Tensor leaf = input.detach().clone();
    if (input.requires_grad()) {
      leaf.requires_grad_();
      any_checked = true;
    }
    leaves.push_back(leaf);
  }
  if (!any_checked) throw_invalid("gradcheck", "no input has requires_grad set: nothing to check");

  Tensor output = f(leaves);
  if (!output.defined() || output.dtype() != DType::Float64) {
    throw_invalid("gradcheck", "f must return a float64 tensor, got ",
                  output.defined() ? dtype_name(output.dtype()) : "an undefined tensor");
  }
  ScalarObjective objective(f, output, options.seed);
  Tensor loss = objective.reduce(output);
  if (!loss.requires_grad()) {
    throw_invalid("gradcheck", "f's output does not depend on any input that requires grad");
  }
  loss.backward();

  GradcheckResult result;
  Comparison comparison{result, options};
  std::mt19937_64 generator(options.seed);
  std::normal_distribution<double> normal;

  for (std::size_t i = 0; i < leaves.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    Tensor& leaf = leaves[i];
    double* x = leaf.data<double>();
    const Tensor grad = leaf.grad();
    const double* analytic = grad.defined() ? grad.data<double>() : nullptr;
    const std::int64_t n = leaf.numel();
    if (n <= options.max_elements_per_input) {
      for (std::int64_t j = 0; j < n; ++j) {
        const double original = x[j];
        x[j] = original + options.eps;
        const double plus = objective.evaluate(leaves);
        x[j] = original - options.eps;
        const double minus = objective.evaluate(leaves);
        x[j] = original;
        comparison.add(i, j, analytic ? analytic[j] : 0.0, (plus - minus) / (2 * options.eps));
        ++result.elements_checked;
      }
      continue;
    }
    // Too many elements to perturb one by one: compare directional
    // derivatives along random unit vectors v: (f(x+εv) - f(x-εv)) / 2ε vs ⟨∇f, v⟩.
    std::vector<double> original(x, x + n);
    for (int d = 0; d < options.directions; ++d) {
      std::vector<double> v(static_cast<std::size_t>(n));
      double norm = 0;
      for (double& value : v) {
        value = normal(generator);
        norm += value * value;
      }
      norm = std::sqrt(norm);
      double projected = 0;
      for (std::int64_t j = 0; j < n; ++j) {
        v[j] /= norm;
        projected += (analytic ? analytic[j] : 0.0) * v[j];
      }
      for (std::int64_t j = 0; j < n; ++j) x[j] = original[j] + options.eps * v[j];
      const double plus = objective.evaluate(leaves);
      for (std::int64_t j = 0; j < n; ++j) x[j] = original[j] - options.eps * v[j];
      const double minus = objective.evaluate(leaves);
      std::copy(original.begin(), original.end(), x);
      comparison.add(i, -1, projected, (plus - minus) / (2 * options.eps));
      ++result.directions_checked;
    }
  }

  const bool all_zero = comparison.max_analytic == 0 && comparison.max_numeric <= options.atol;
  const bool within = comparison.worst_ratio <= 1.0;
  result.passed = within && (!all_zero || options.allow_all_zero);

  std::ostringstream message;
  message.precision(10);
  if (all_zero && !options.allow_all_zero) {
    message << "gradcheck: failed: every analytic and numeric gradient is zero, which proves nothing "
               "(set allow_all_zero if zero is the expected gradient)";
  } else {
    message << "gradcheck: " << (result.passed ? "passed" : "failed") << " (" << result.elements_checked
            << " elements, " << result.directions_checked << " directions); worst: input " << result.worst_input
            << " " << leaves[result.worst_input].shape().str() << " at "
            << index_string(result.worst_index, leaves[result.worst_input].shape()) << ": analytic "
            << result.analytic << ", numeric " << result.numeric << ", |difference| " << result.abs_error
            << " (allowed " << options.atol + options.rtol * std::abs(result.numeric) << ")";
  }
  result.message = message.str();
  if (!result.passed && options.throw_on_failure) throw std::runtime_error(result.message);
  return result;
}

GradcheckResult gradgradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options) {
  std::vector<std::size_t> checked;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].defined() && inputs[i].requires_grad()) checked.push_back(i);
  }
  if (checked.empty()) throw_invalid("gradgradcheck", "no input has requires_grad set: nothing to check");
  // A fixed weighting of f's output, drawn once from the output's shape.
  Tensor weights;
  {
    std::vector<Tensor> probe;
    for (const Tensor& input : inputs) probe.push_back(input.detach());
    NoGradGuard no_recording;
    const Tensor output = f(probe);
    if (!output.defined() || output.dtype() != DType::Float64) {
      throw_invalid("gradgradcheck", "f must return a float64 tensor, got ",
                    output.defined() ? dtype_name(output.dtype()) : "an undefined tensor");
    }
    Generator generator(options.seed ^ 0x5bd1e995u);
    weights = randn(output.shape(), DType::Float64, 0, 1, &generator);
  }
  // x ↦ the first-order gradients, flattened and joined: a recorded function
  // of x, because grad() records its backward (create_graph).
  const GradcheckFn first_order = [&](const std::vector<Tensor>& x) {
    const bool previous = grad_enabled();
    set_grad_enabled(true);  // gradcheck evaluates under no_grad; grad() needs a graph
    std::vector<Tensor> wrt;
    for (std::size_t i : checked) wrt.push_back(x[i]);
    std::vector<Tensor> leaves = x;
    std::vector<Tensor> gradients;
    try {
      // Perturbed copies from gradcheck's numeric pass do not require grad:
      // take fresh leaves then, so that grad() has something to differentiate.
      for (std::size_t k = 0; k < checked.size(); ++k) {
        if (!wrt[k].requires_grad()) {
          wrt[k] = wrt[k].detach().requires_grad_();
          leaves[checked[k]] = wrt[k];
        }
      }
      const Tensor output = f(leaves);
      gradients = grad({output}, wrt, {weights}, {.create_graph = true, .allow_unused = true});
    } catch (...) {
      set_grad_enabled(previous);
      throw;
    }
    std::vector<Tensor> flat;
    for (std::size_t k = 0; k < gradients.size(); ++k) {
      flat.push_back(reshape(gradients[k].defined() ? gradients[k] : zeros_like(wrt[k]), {-1}));
    }
    Tensor joined = concat(flat, 0);
    if (!joined.requires_grad()) {
      // f is at most linear in the checked inputs: the gradients are
      // constants. Tie them to x with a zero term, so that the check runs
      // and reports the all-zero second derivatives honestly.
      for (const Tensor& input : wrt) joined = joined + sum(input) * 0.0;
    }
    set_grad_enabled(previous);
    return joined;
  };
  GradcheckOptions inner = options;
  inner.throw_on_failure = false;  // thrown below, with this checker's name
  GradcheckResult result = gradcheck(first_order, inputs, inner);
  const std::string prefix = "gradcheck: ";
  if (result.message.rfind(prefix, 0) == 0) result.message = "gradgradcheck: " + result.message.substr(prefix.size());
  if (!result.passed && options.throw_on_failure) throw std::runtime_error(result.message);
  return result;
}

}  // namespace tapegrad
