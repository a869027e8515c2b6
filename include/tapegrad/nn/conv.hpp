#pragma once
// Convolution layers: Conv2d over images [N, C, H, W] and Conv1d over
// sequences [N, C, L], over the conv2d and conv1d ops (ops/conv.hpp, which
// also has the output-size formula).
#include <cstdint>
#include <string>

#include "tapegrad/nn/init.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/ops/conv.hpp"

namespace tapegrad::nn {

// How a convolution layer creates its parameters.
struct ConvParameters {
  bool bias = true;
  // Empty: the default below. Otherwise called on the weight / the bias
  // right after they are created.
  Initializer weight_init{};
  Initializer bias_init{};
};

/// y = conv2d(x, W, b, options) for x [N, in_channels, H, W]; parameters
/// "weight" [out_channels, in_channels/groups, kH, kW] and "bias"
/// [out_channels] (PyTorch's names and layout, so that its state dicts load).
///
/// Default initialisation, as PyTorch's: W and b ~ U(±1/√n_in) with
/// n_in = in_channels/groups·kH·kW (a filter's fan-in): a model loaded or
/// seeded like PyTorch's starts from the same distribution. For deep ReLU
/// nets prefer init::kaiming_normal(); the initialisers take the fan-in and
/// fan-out of a 4-D weight from its receptive field.
class Conv2d : public Module {
 public:
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel, Conv2dOptions options = {},
         const ConvParameters& parameters = {});

  Tensor forward(const Tensor& input) override;
  std::string str() const override;

  std::int64_t in_channels() const { return in_; }
  std::int64_t out_channels() const { return out_; }
  Size2 kernel() const { return kernel_; }
  const Conv2dOptions& options() const { return options_; }
  const Tensor& weight() const { return parameter("weight"); }
  // Undefined when built with bias = false.
  Tensor bias() const { return has_bias_ ? parameter("bias") : Tensor(); }

 private:
  std::int64_t in_;
  std::int64_t out_;
  Size2 kernel_;
  Conv2dOptions options_;
  bool has_bias_;
};

/// y = conv1d(x, W, b, options) for x [N, in_channels, L]; parameters
/// "weight" [out_channels, in_channels/groups, k] and "bias" [out_channels];
/// initialised as Conv2d.
class Conv1d : public Module {
 public:
  Conv1d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel, Conv1dOptions options = {},
         const ConvParameters& parameters = {});

  Tensor forward(const Tensor& input) override;
  std::string str() const override;

  std::int64_t in_channels() const { return in_; }
  std::int64_t out_channels() const { return out_; }
  std::int64_t kernel() const { return kernel_; }
  const Conv1dOptions& options() const { return options_; }
  const Tensor& weight() const { return parameter("weight"); }
  Tensor bias() const { return has_bias_ ? parameter("bias") : Tensor(); }

 private:
  std::int64_t in_;
  std::int64_t out_;
  std::int64_t kernel_;
  Conv1dOptions options_;
  bool has_bias_;
};

}  // namespace tapegrad::nn
