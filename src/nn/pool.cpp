#include "tapegrad/nn/pool.hpp"

#include "tapegrad/error.hpp"

namespace tapegrad::nn {

namespace {

// ", stride=2" when set (not the default).
std::string size_option(const char* name, Size2 value, Size2 unset) {
  return value == unset ? "" : detail::concat(", ", name, "=", value.str());
}

std::string flag_option(const char* name, bool value, bool unset) {
  return value == unset ? "" : detail::concat(", ", name, "=", value ? "true" : "false");
}

}  // namespace

MaxPool2d::MaxPool2d(Size2 kernel, MaxPool2dOptions options)
    : Module("MaxPool2d"), kernel_(kernel), options_(options) {}

Tensor MaxPool2d::forward(const Tensor& input) { return max_pool2d(input, kernel_, options_); }

std::string MaxPool2d::str() const {
  return detail::concat("MaxPool2d(kernel=", kernel_.str(), size_option("stride", options_.stride, 0),
                        size_option("padding", options_.padding, 0), size_option("dilation", options_.dilation, 1),
                        flag_option("ceil_mode", options_.ceil_mode, false), ")");
}

AvgPool2d::AvgPool2d(Size2 kernel, AvgPool2dOptions options)
    : Module("AvgPool2d"), kernel_(kernel), options_(options) {}

Tensor AvgPool2d::forward(const Tensor& input) { return avg_pool2d(input, kernel_, options_); }

std::string AvgPool2d::str() const {
  return detail::concat("AvgPool2d(kernel=", kernel_.str(), size_option("stride", options_.stride, 0),
                        size_option("padding", options_.padding, 0),
                        flag_option("ceil_mode", options_.ceil_mode, false),
                        flag_option("count_include_pad", options_.count_include_pad, true), ")");
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(Size2 output_size) : Module("AdaptiveAvgPool2d"), output_size_(output_size) {}

Tensor AdaptiveAvgPool2d::forward(const Tensor& input) { return adaptive_avg_pool2d(input, output_size_); }

std::string AdaptiveAvgPool2d::str() const {
  return detail::concat("AdaptiveAvgPool2d(output_size=", output_size_.str(), ")");
}

}  // namespace tapegrad::nn
