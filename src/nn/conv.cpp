#include "tapegrad/nn/conv.hpp"

#include "nn/checks.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::nn {

namespace {

struct WeightAndBias {
  Tensor weight, bias;  // bias undefined without one
};

// Checks the sizes and creates the weight (of `weight_shape`) and the bias.
WeightAndBias create_parameters(const char* type, std::int64_t in, std::int64_t out, std::int64_t groups,
                                const Shape& weight_shape, const ConvParameters& parameters) {
  if (in <= 0 || out <= 0) throw_invalid(type, "channels must be positive, got ", in, " -> ", out);
  if (groups < 1) throw_invalid(type, "groups must be >= 1, got ", groups);
  if (in % groups != 0 || out % groups != 0) {
    throw_invalid(type, "channels ", in, " -> ", out, " are not both divisible by groups = ", groups);
  }
  for (std::size_t axis = 2; axis < weight_shape.rank(); ++axis) {
    if (weight_shape[axis] < 1) throw_invalid(type, "kernel size must be >= 1, got weight ", weight_shape.str());
  }
  Tensor w = empty(weight_shape);
  if (parameters.weight_init) {
    parameters.weight_init(w);
  } else {
    init::fan_in_uniform_(w);
  }
  if (!parameters.bias) return {w, Tensor()};
  Tensor b = empty({out});
  if (parameters.bias_init) {
    parameters.bias_init(b);
  } else {
    init::fan_in_uniform_(b, init::fans(weight_shape, type).in);
  }
  return {w, b};
}

// ", stride=2" when the value differs from the default.
template <class V>
std::string option_text(const char* name, const V& value, const V& default_value) {
  if (value == default_value) return "";
  if constexpr (std::is_same_v<V, Size2>) {
    return detail::concat(", ", name, "=", value.str());
  } else {
    return detail::concat(", ", name, "=", value);
  }
}

// The input has `rank` axes and `channels` on axis 1; `layout` names the
// expected shape in the message, e.g. "[N x 1 x H x W]".
void check_channels(const Module& layer, const Tensor& input, DType dtype, std::size_t rank, std::int64_t channels,
                    const char* trailing) {
  detail::check_input_dtype(layer, input, dtype);
  if (input.dim() != rank || input.shape(1) != channels) {
    detail::throw_layer(layer, "expects input [N x ", channels, " x ", trailing, "], got ", input.shape().str());
  }
}

}  // namespace

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel, Conv2dOptions options,
               const ConvParameters& parameters)
    : Module("Conv2d"),
      in_(in_channels),
      out_(out_channels),
      kernel_(kernel),
      options_(options),
      has_bias_(parameters.bias) {
  const std::int64_t per_group = options.groups >= 1 ? in_channels / options.groups : in_channels;
  const WeightAndBias created = create_parameters("Conv2d", in_channels, out_channels, options.groups,
                                                  Shape{out_channels, per_group, kernel.h, kernel.w}, parameters);
  register_parameter("weight", created.weight);
  if (has_bias_) register_parameter("bias", created.bias);
}

std::string Conv2d::str() const {
  return detail::concat(
      "Conv2d(", in_, " -> ", out_, ", kernel=", kernel_.str(), option_text("stride", options_.stride, Size2(1)),
      option_text("padding", options_.padding, Size2(0)), option_text("dilation", options_.dilation, Size2(1)),
      option_text("groups", options_.groups, std::int64_t{1}), has_bias_ ? "" : ", bias=false", ")");
}

Tensor Conv2d::forward(const Tensor& input) {
  check_channels(*this, input, weight().dtype(), 4, in_, "H x W");
  return conv2d(input, weight(), bias(), options_);
}

Conv1d::Conv1d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel, Conv1dOptions options,
               const ConvParameters& parameters)
    : Module("Conv1d"),
      in_(in_channels),
      out_(out_channels),
      kernel_(kernel),
      options_(options),
      has_bias_(parameters.bias) {
  const std::int64_t per_group = options.groups >= 1 ? in_channels / options.groups : in_channels;
  const WeightAndBias created = create_parameters("Conv1d", in_channels, out_channels, options.groups,
                                                  Shape{out_channels, per_group, kernel}, parameters);
  register_parameter("weight", created.weight);
  if (has_bias_) register_parameter("bias", created.bias);
}

std::string Conv1d::str() const {
  return detail::concat("Conv1d(", in_, " -> ", out_, ", kernel=", kernel_,
                        option_text("stride", options_.stride, std::int64_t{1}),
                        option_text("padding", options_.padding, std::int64_t{0}),
                        option_text("dilation", options_.dilation, std::int64_t{1}),
                        option_text("groups", options_.groups, std::int64_t{1}), has_bias_ ? "" : ", bias=false", ")");
}

Tensor Conv1d::forward(const Tensor& input) {
  check_channels(*this, input, weight().dtype(), 3, in_, "L");
  return conv1d(input, weight(), bias(), options_);
}

}  // namespace tapegrad::nn
