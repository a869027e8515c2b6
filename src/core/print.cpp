// Printing goes through xtensor's formatter: it aligns columns and elides
// the middle of large tensors the way NumPy does.
#include <ostream>
#include <xtensor/xio.hpp>

#include "core/dispatch.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/xtensor.hpp"

namespace tapegrad {

std::ostream& operator<<(std::ostream& out, const Shape& shape) { return out << shape.str(); }

std::ostream& operator<<(std::ostream& out, const Tensor& tensor) {
  if (!tensor.defined()) return out << "tensor(undefined)";
  out << "tensor(";
  detail::dispatch_any(tensor.dtype(), [&](auto tag) { out << as_xtensor<decltype(tag)>(tensor); });
  out << ", shape=" << tensor.shape().str() << ", dtype=" << dtype_name(tensor.dtype());
  if (tensor.grad_fn()) {
    out << ", grad_fn=" << tensor.grad_fn()->name();
  } else if (tensor.requires_grad()) {
    out << ", requires_grad=true";
  }
  return out << ")";
}

}  // namespace tapegrad
