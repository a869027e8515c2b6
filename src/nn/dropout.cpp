#include "tapegrad/nn/dropout.hpp"

#include "nn/checks.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/nn/linear.hpp"
#include "tapegrad/ops/nn.hpp"

namespace tapegrad::nn {

Dropout::Dropout(double p) : Module("Dropout"), p_(p) {
  if (!(p >= 0 && p < 1)) throw_invalid("Dropout", "p must be in [0, 1), got ", p);
}

Tensor Dropout::forward(const Tensor& input) {
  if (!input.defined() || !is_floating(input.dtype())) {
    detail::throw_layer(*this, "expects a floating-point tensor, got ",
                        input.defined() ? dtype_name(input.dtype()) : "an undefined tensor");
  }
  if (!active()) return input;
  last_mask_ = dropout_mask(input.shape(), p_, input.dtype());
  return dropout(input, last_mask_);
}

std::string Dropout::str() const { return detail::concat("Dropout(p=", p_, ")"); }

int set_monte_carlo_dropout(Module& model, bool on) {
  int found = 0;
  if (auto* d = dynamic_cast<Dropout*>(&model)) {
    d->set_monte_carlo(on);
    ++found;
  } else if (auto* c = dynamic_cast<DropConnect*>(&model)) {
    c->set_monte_carlo(on);
    ++found;
  }
  for (const auto& [name, child] : model.children()) found += set_monte_carlo_dropout(*child, on);
  return found;
}

}  // namespace tapegrad::nn
