#pragma once
// Maxout (Goodfellow et al., 2013): each output unit is the largest of k
// affine pieces of the input.
#include <cstdint>
#include <string>

#include "tapegrad/nn/linear.hpp"

namespace tapegrad::nn {

/// y_j = max_{i < k} (x·W_{jk+i}ᵀ + b_{jk+i}) for x [..., in]: one Linear to
/// out·k values, grouped per unit; "weight" [out·k, in], "bias" [out·k]
/// (rows jk .. jk+k-1 are unit j's pieces). The gradient reaches only the
/// winning piece (split evenly on ties, as max does). Initialised as Linear
/// (options.weight_init / bias_init override).
class Maxout : public Module {
 public:
  Maxout(std::int64_t in_features, std::int64_t out_features, std::int64_t pieces, const LinearOptions& options = {});

  Tensor forward(const Tensor& input) override;
  std::string str() const override;

  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }
  std::int64_t pieces() const { return pieces_; }
  const Tensor& weight() const { return parameter("weight"); }
  Tensor bias() const { return has_bias_ ? parameter("bias") : Tensor(); }

 private:
  std::int64_t in_;
  std::int64_t out_;
  std::int64_t pieces_;
  bool has_bias_;
};

}  // namespace tapegrad::nn
