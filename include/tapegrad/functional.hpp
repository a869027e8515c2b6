#pragma once
// Functional derivatives built on grad(): vector-Jacobian and
// Jacobian-vector products, Hessian-vector products, and whole Jacobians and
// Hessians of small functions. Each takes a function of tensors and the
// point to differentiate at; the point's tensors are detached into fresh
// leaves, so the caller's tensors and their .grad are untouched.
//
// Cost, in units of one forward + backward of f:
//   vjp       1                     (reverse mode)
//   jvp       2: the double-vjp trick (a vjp with a dummy cotangent u,
//                 recorded, then differentiated with respect to u)
//   hvp       2: reverse-over-reverse (grad with create_graph, then grad of ⟨∇f, v⟩)
//   jacobian  one backward per output element
//   hessian   one backward per input element, through a recorded gradient
// Pass create_graph to differentiate the results again.
#include <functional>
#include <utility>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad::functional {

using Function = std::function<Tensor(const std::vector<Tensor>&)>;

struct Derivative {
  Tensor value;                   // f(inputs)
  std::vector<Tensor> gradients;  // one per input (zeros where f does not depend on it)
};

// value = f(x); gradients = vᵀ ∂f/∂x (v of f's output shape; may be
// undefined for a one-element output, meaning 1).
Derivative vjp(const Function& f, const std::vector<Tensor>& inputs, const Tensor& v = {}, bool create_graph = false);

// value = f(x); gradients[0] = Σ_i ∂f/∂x_i · u_i (one tensor of f's output
// shape; u of the inputs' shapes).
Derivative jvp(const Function& f, const std::vector<Tensor>& inputs, const std::vector<Tensor>& u,
               bool create_graph = false);

// For a one-element f: value = f(x); gradients = H v, the Hessian of f at x
// applied to v (v of the inputs' shapes).
Derivative hvp(const Function& f, const std::vector<Tensor>& inputs, const std::vector<Tensor>& v,
               bool create_graph = false);

// ∂f/∂x of a function of one tensor: shape [f's shape..., x's shape...].
Tensor jacobian(const std::function<Tensor(const Tensor&)>& f, const Tensor& x, bool create_graph = false);

// ∂²f/∂x² of a one-element function of one tensor: shape [x's shape..., x's shape...].
Tensor hessian(const std::function<Tensor(const Tensor&)>& f, const Tensor& x, bool create_graph = false);

}  // namespace tapegrad::functional
