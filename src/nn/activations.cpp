#include "tapegrad/nn/activations.hpp"

#include <cmath>

#include "tapegrad/error.hpp"

namespace tapegrad::nn {

LeakyReLU::LeakyReLU(double slope) : Module("LeakyReLU"), slope_(slope) {
  if (!std::isfinite(slope)) throw_invalid("LeakyReLU", "slope must be finite, got ", slope);
}

Tensor LeakyReLU::forward(const Tensor& input) { return leaky_relu(input, slope_); }

std::string LeakyReLU::str() const { return detail::concat("LeakyReLU(slope=", slope_, ")"); }

HardTanh::HardTanh(double low, double high) : Module("HardTanh"), low_(low), high_(high) {
  if (!(low < high)) throw_invalid("HardTanh", "needs low < high, got low=", low, " high=", high);
}

Tensor HardTanh::forward(const Tensor& input) { return hard_tanh(input, low_, high_); }

std::string HardTanh::str() const { return detail::concat("HardTanh(low=", low_, ", high=", high_, ")"); }

SoftExponential::SoftExponential(double alpha) : Module("SoftExponential") {
  if (!std::isfinite(alpha)) throw_invalid("SoftExponential", "alpha must be finite, got ", alpha);
  register_parameter("alpha", full({1}, alpha));
}

Tensor SoftExponential::forward(const Tensor& input) { return soft_exponential(input, alpha()); }

std::string SoftExponential::str() const { return detail::concat("SoftExponential(alpha=", alpha().item(), ")"); }

std::string Softmax::str() const { return detail::concat("Softmax(axis=", axis_, ")"); }

std::string LogSoftmax::str() const { return detail::concat("LogSoftmax(axis=", axis_, ")"); }

}  // namespace tapegrad::nn
