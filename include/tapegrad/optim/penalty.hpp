#pragma once
// Regularisation terms to add to the loss. (L2 weight decay is an optimizer
// option instead: it is added to the gradient without building a graph.)
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad::optim {

/// λ · Σ_p Σ_i |p_i|, a differentiable 0-d tensor; its gradient is
/// λ·sign(p) (0 at 0). All parameters must share one dtype.
Tensor l1_penalty(const std::vector<Tensor>& parameters, double lambda);

}  // namespace tapegrad::optim
