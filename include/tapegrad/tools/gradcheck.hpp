#pragma once
// Gradient checkers: compare the gradients backward() computes (and, for
// gradgradcheck, the gradients of those gradients) with central
// differences, in float64. A public tool for users' own functions and
// models, and what the test suite runs on every op.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

struct GradcheckOptions {
  double eps = 1e-6;   // central-difference step
  double atol = 1e-5;  // |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-3;
  // A check where every analytic and numeric gradient is zero proves
  // nothing; it fails unless this says zero is the expected answer.
  bool allow_all_zero = false;
  // Inputs with more elements than this are checked along random
  // directions instead of element by element.
  std::int64_t max_elements_per_input = 4096;
  int directions = 4;          // random directions for large inputs
  std::uint64_t seed = 1234;   // for those directions
  bool throw_on_failure = false;
};

struct GradcheckResult {
  bool passed = false;
  // Worst element: which input, its flat index (-1 for a directional
  // check), the two gradients and their difference.
  std::size_t worst_input = 0;
  std::int64_t worst_index = -1;
  double analytic = 0;
  double numeric = 0;
  double abs_error = 0;
  std::int64_t elements_checked = 0;
  std::int64_t directions_checked = 0;
  std::string message;  // a readable verdict naming the worst element
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// f maps the inputs to a tensor (any shape: a non-scalar output is reduced
// with fixed random weights, so every output element is checked). Inputs
// must be float64; those with requires_grad() are checked.
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

// Second order: checks the gradient of the gradient. With v a fixed random
// weighting of f's output, the function x ↦ ∂⟨v, f(x)⟩/∂x (computed by a
// create-graph grad(), so itself a recorded function of x) is gradchecked:
// its backward (a double backward of f) against central differences of the
// first-order gradients. Same options and guarantees as gradcheck: fails on
// all-zero second derivatives unless allow_all_zero (a piecewise-linear f,
// relu, has them), and names the worst element.
GradcheckResult gradgradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options = {});

}  // namespace tapegrad
