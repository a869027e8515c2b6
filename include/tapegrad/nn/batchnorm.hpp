#pragma once
// Batch normalisation for [N, C] (and [N, C, L]) inputs.
#include <cstdint>
#include <string>

#include "tapegrad/nn/module.hpp"

namespace tapegrad::nn {

struct BatchNormOptions {
  double eps = 1e-5;      // > 0, added to the variance
  double momentum = 0.1;  // in [0, 1]: weight of the new batch in the running statistics
  bool affine = true;     // learnable γ ("weight", init 1) and β ("bias", init 0)
};

/// BatchNorm1d over the feature axis 1 (op: tapegrad::batch_norm).
/// Training: normalises with the batch mean and biased variance (+ ε), then
/// y = γ x̂ + β, and updates the buffers "running_mean" (init 0) and
/// "running_var" (init 1) with `momentum`, the latter from the unbiased batch
/// variance, as PyTorch does. Evaluation: normalises with the running
/// statistics (one sample at a time is fine).
/// Placement as in the lectures: after the affine map, before the activation,
/// i.e. φ(BN(Wx + b)) (what nn::mlp builds with batch_norm = true).
class BatchNorm1d : public Module {
 public:
  explicit BatchNorm1d(std::int64_t num_features, const BatchNormOptions& options = {});

  Tensor forward(const Tensor& input) override;
  std::string str() const override;

  std::int64_t num_features() const { return features_; }
  const BatchNormOptions& options() const { return options_; }
  // γ and β; undefined when affine = false.
  Tensor weight() const { return options_.affine ? parameter("weight") : Tensor(); }
  Tensor bias() const { return options_.affine ? parameter("bias") : Tensor(); }
  const Tensor& running_mean() const { return buffer("running_mean"); }
  const Tensor& running_var() const { return buffer("running_var"); }

 private:
  std::int64_t features_;
  BatchNormOptions options_;
};

}  // namespace tapegrad::nn
