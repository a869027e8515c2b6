#pragma once
// Named tensors in order: what a module's, an optimizer's or a schedule's
// state is, what checkpoints and .npz files hold, and what the distributed
// broadcasts send. Kept here, beside Tensor, so that optim, io and dist need
// not include nn for it.
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

}  // namespace tapegrad
