#pragma once
// Collectives on tensors: every rank calls the same one, in the same order,
// with a tensor of the same dtype and shape. Each call first exchanges a
// small header (which collective, dtype, shape, reduction or root), so a
// rank that disagrees makes every rank throw std::invalid_argument naming
// both sides, e.g.
//   all_reduce: ranks disagree: rank 0 passes float32 [3x4] (sum), rank 1 passes float32 [5] (sum)
// rather than hang or reduce garbage. The data is changed in place (the
// storage's version moves on, so a copy saved for backward notices); none
// of them is differentiable or may run while a step is being captured.
#include "tapegrad/nn/module.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::dist {

enum class ReduceOp { Sum, Mean, Max, Min };

// Every rank ends with the element-wise reduction over all ranks. Mean
// needs a floating-point tensor.
void all_reduce(Tensor& tensor, ReduceOp op = ReduceOp::Sum);
// Every rank ends with `root`'s values.
void broadcast(Tensor& tensor, int root = 0);
// Returns once every rank has called it.
void barrier();

// The module's parameters and buffers take `root`'s values (all ranks start
// from the same model); a model with a different parameter or buffer on some
// rank throws naming it.
void broadcast_parameters(const nn::Module& module, int root = 0);
// Every rank ends with `root`'s list: the same names, dtypes, shapes and
// values (other ranks' entries are replaced; their lists may differ).
void broadcast_named_tensors(NamedTensors& entries, int root = 0);

}  // namespace tapegrad::dist
