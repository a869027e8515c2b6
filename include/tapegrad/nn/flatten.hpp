#pragma once
// Flatten: the bridge from feature maps [N, C, H, W] to a Linear layer.
#include <cstdint>
#include <string>

#include "tapegrad/nn/module.hpp"

namespace tapegrad::nn {

/// Merges axes start_axis..end_axis (inclusive; negative counts from the
/// end) into one (op: tapegrad::flatten, no copy). The defaults keep the batch
/// axis, as PyTorch's nn.Flatten: [N, C, H, W] -> [N, C·H·W].
class Flatten : public Module {
 public:
  explicit Flatten(std::int64_t start_axis = 1, std::int64_t end_axis = -1);

  Tensor forward(const Tensor& input) override;
  // "Flatten(start_axis=1, end_axis=-1)".
  std::string str() const override;

  std::int64_t start_axis() const { return start_axis_; }
  std::int64_t end_axis() const { return end_axis_; }

 private:
  std::int64_t start_axis_;
  std::int64_t end_axis_;
};

}  // namespace tapegrad::nn
