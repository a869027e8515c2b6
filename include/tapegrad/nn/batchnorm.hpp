#pragma once
// Batch normalisation layers: BatchNorm1d for [N, C] and [N, C, L] inputs,
// BatchNorm2d for images [N, C, H, W]. One implementation (BatchNorm) over
// the op tapegrad::batch_norm; the two differ only in the input ranks they
// accept.
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/nn/module.hpp"

namespace tapegrad::nn {

struct BatchNormOptions {
  double eps = 1e-5;      // > 0, added to the variance
  double momentum = 0.1;  // in [0, 1]: weight of the new batch in the running statistics
  bool affine = true;     // learnable γ ("weight", init 1) and β ("bias", init 0)
};

/// The common base of BatchNorm1d and BatchNorm2d: normalisation per channel
/// (axis 1) over the batch and every trailing axis (op: tapegrad::batch_norm).
/// Training: normalises with the batch mean and biased variance (+ ε), then
/// y = γ x̂ + β, and updates the buffers "running_mean" (init 0) and
/// "running_var" (init 1) with `momentum`, the latter from the unbiased batch
/// variance, as PyTorch does. Evaluation: normalises with the running
/// statistics (one sample at a time is fine).
class BatchNorm : public Module {
 public:
  Tensor forward(const Tensor& input) override;
  // "BatchNorm2d(16, eps=1e-05, momentum=0.1)", as PyTorch's repr.
  std::string str() const override;

  std::int64_t num_features() const { return features_; }
  const BatchNormOptions& options() const { return options_; }
  // γ and β; undefined when affine = false.
  Tensor weight() const { return options_.affine ? parameter("weight") : Tensor(); }
  Tensor bias() const { return options_.affine ? parameter("bias") : Tensor(); }
  const Tensor& running_mean() const { return buffer("running_mean"); }
  const Tensor& running_var() const { return buffer("running_var"); }

 protected:
  // An accepted input layout: its rank and the names of its axes after
  // [N x C], for error messages (" x L", " x H x W"; "" for [N x C]).
  struct Layout {
    std::size_t rank;
    const char* trailing_axes;
  };
  // `layouts`: the inputs the layer accepts; `feature_noun` names one entry
  // of axis 1 in errors ("feature", "channel"; "s" makes the plural).
  BatchNorm(std::string layer_type, std::int64_t num_features, const BatchNormOptions& options,
            std::vector<Layout> layouts, const char* feature_noun);

 private:
  std::int64_t features_;
  BatchNormOptions options_;
  std::vector<Layout> layouts_;
  const char* feature_noun_;
};

/// Batch normalisation of [N, C] (features) or [N, C, L] (C channels of
/// length L) inputs over the feature axis 1.
/// Placement as in the lectures: after the affine map, before the activation,
/// i.e. φ(BN(Wx + b)) (what nn::mlp builds with batch_norm = true).
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(std::int64_t num_features, const BatchNormOptions& options = {});
};

/// Batch normalisation of images [N, C, H, W] per channel, over the N·H·W
/// values of each channel (placed after a convolution, before its activation).
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(std::int64_t num_features, const BatchNormOptions& options = {});
};

}  // namespace tapegrad::nn
