#include "tapegrad/nn/dropout.hpp"

#include <utility>

#include "nn/checks.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/nn/linear.hpp"
#include "tapegrad/ops/nn.hpp"

namespace tapegrad::nn {

namespace {

void check_floating_input(const Module& layer, const Tensor& input) {
  if (!input.defined() || !is_floating(input.dtype())) {
    detail::throw_layer(layer, "expects a floating-point tensor, got ",
                        input.defined() ? dtype_name(input.dtype()) : "an undefined tensor");
  }
}

}  // namespace

Dropout::Dropout(double p) : Dropout("Dropout", p) {}

Dropout::Dropout(std::string layer_type, double p) : Module(std::move(layer_type)), p_(p) {
  if (!(p >= 0 && p < 1)) throw_invalid(type_name().c_str(), "p must be in [0, 1), got ", p);
}

Tensor Dropout::forward(const Tensor& input) {
  check_floating_input(*this, input);
  if (!active()) return input;
  last_mask_ = dropout_mask(input.shape(), p_, input.dtype());
  return dropout(input, last_mask_);
}

std::string Dropout::str() const { return detail::concat(type_name(), "(p=", p_, ")"); }

Tensor Dropout2d::forward(const Tensor& input) {
  check_floating_input(*this, input);
  if (input.dim() != 3 && input.dim() != 4) {
    detail::throw_layer(*this, "expects input [N x C x H x W] or [C x H x W], got ", input.shape().str());
  }
  if (!active()) return input;
  Shape mask_shape = input.shape();  // one draw per feature map, broadcast over H and W
  mask_shape[input.dim() - 1] = 1;
  mask_shape[input.dim() - 2] = 1;
  set_last_mask(dropout_mask(mask_shape, p(), input.dtype()));
  return dropout2d(input, last_mask());
}

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
