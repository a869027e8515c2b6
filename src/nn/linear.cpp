#include "tapegrad/nn/linear.hpp"

#include "nn/checks.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/ops/linalg.hpp"
#include "tapegrad/ops/nn.hpp"

namespace tapegrad::nn {

Linear::Linear(std::int64_t in_features, std::int64_t out_features, const LinearOptions& options)
    : Linear("Linear", in_features, out_features, options) {}

Linear::Linear(std::string type_name, std::int64_t in_features, std::int64_t out_features, const LinearOptions& options)
    : Module(std::move(type_name)), in_(in_features), out_(out_features), has_bias_(options.bias) {
  if (in_features <= 0 || out_features <= 0) {
    throw_invalid(this->type_name().c_str(), "sizes must be positive, got ", in_features, " -> ", out_features);
  }
  Tensor w = empty({out_features, in_features});
  if (options.weight_init) {
    options.weight_init(w);
  } else {
    init::fan_in_uniform_(w, in_features);
  }
  register_parameter("weight", w);
  if (has_bias_) {
    Tensor b = empty({out_features});
    if (options.bias_init) {
      options.bias_init(b);
    } else {
      init::fan_in_uniform_(b, in_features);
    }
    register_parameter("bias", b);
  }
}

std::string Linear::str() const {
  return detail::concat(type_name(), "(", in_, " -> ", out_, has_bias_ ? "" : ", bias=false", ")");
}

void Linear::check_input(const Tensor& input) const {
  detail::check_input_dtype(*this, input, weight().dtype());
  detail::check_last_axis_features(*this, input, in_);
}

Tensor Linear::forward(const Tensor& input) {
  check_input(input);
  return linear(input, weight(), bias());
}

DropConnect::DropConnect(std::int64_t in_features, std::int64_t out_features, double p, const LinearOptions& options)
    : Linear("DropConnect", in_features, out_features, options), p_(p) {
  if (!(p >= 0 && p < 1)) throw_invalid("DropConnect", "p must be in [0, 1), got ", p);
}

std::string DropConnect::str() const {
  return detail::concat("DropConnect(", in_features(), " -> ", out_features(), ", p=", p_,
                        bias().defined() ? "" : ", bias=false", ")");
}

Tensor DropConnect::forward(const Tensor& input) {
  check_input(input);
  if ((!is_training() && !monte_carlo_) || p_ == 0) return linear(input, weight(), bias());
  last_mask_ = dropout_mask(weight().shape(), p_, weight().dtype());
  return linear(input, dropout(weight(), last_mask_), bias());
}

}  // namespace tapegrad::nn
