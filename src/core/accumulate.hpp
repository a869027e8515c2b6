#pragma once
#include "tapegrad/tensor.hpp"

namespace tapegrad::detail {

// slot += gradient. The one place gradients are summed (recorded in a
// create-graph pass, where grad mode is on). Shapes are checked
// by the callers, which know what the gradient belongs to. Adds in place
// when the slot's buffer is owned by nobody else; otherwise writes a new
// buffer, because gradients are shared freely (add's backward hands the same
// tensor to both inputs).
void accumulate_into(Tensor& slot, Tensor gradient);

}  // namespace tapegrad::detail
