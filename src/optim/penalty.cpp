#include "tapegrad/optim/penalty.hpp"

#include "optim/checks.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"

namespace tapegrad::optim {

Tensor l1_penalty(const std::vector<Tensor>& parameters, double lambda) {
  const char* who = "l1_penalty";
  detail::check_nonnegative(who, "lambda", lambda);
  if (parameters.empty()) throw_invalid(who, "got an empty parameter list");
  Tensor total;
  for (std::size_t k = 0; k < parameters.size(); ++k) {
    const Tensor& p = parameters[k];
    if (!p.defined()) throw_invalid(who, "parameter ", k, " is undefined");
    if (!is_floating(p.dtype())) throw_invalid(who, "parameter ", k, " is int64 ", p.shape().str());
    if (p.dtype() != parameters[0].dtype()) {
      throw_invalid(who, "parameter ", k, " is ", dtype_name(p.dtype()), " ", p.shape().str(), " but parameter 0 is ",
                    dtype_name(parameters[0].dtype()), " ", parameters[0].shape().str(), " (convert one with .to())");
    }
    Tensor term = sum(abs(p));
    total = total.defined() ? total + term : term;
  }
  return lambda * total;
}

}  // namespace tapegrad::optim
