#pragma once
// Pooling layers over images [N, C, H, W], over the ops of ops/pool.hpp:
// no parameters, the same in training and evaluation.
#include <string>

#include "tapegrad/nn/module.hpp"
#include "tapegrad/ops/pool.hpp"

namespace tapegrad::nn {

/// y = max_pool2d(x, kernel, options): the largest value of each window
/// (the stride defaults to the kernel: windows side by side).
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Size2 kernel, MaxPool2dOptions options = {});
  Tensor forward(const Tensor& input) override;
  std::string str() const override;

 private:
  Size2 kernel_;
  MaxPool2dOptions options_;
};

/// y = avg_pool2d(x, kernel, options): the mean of each window.
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Size2 kernel, AvgPool2dOptions options = {});
  Tensor forward(const Tensor& input) override;
  std::string str() const override;

 private:
  Size2 kernel_;
  AvgPool2dOptions options_;
};

/// y = adaptive_avg_pool2d(x, output_size): each image averaged down to
/// output_size whatever its size; output_size 1 is global average pooling
/// (one number per channel, the usual head of a modern CNN).
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size);
  Tensor forward(const Tensor& input) override;
  std::string str() const override;

 private:
  Size2 output_size_;
};

}  // namespace tapegrad::nn
