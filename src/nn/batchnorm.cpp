#include "tapegrad/nn/batchnorm.hpp"

#include "nn/checks.hpp"
#include "tapegrad/ops/nn.hpp"

namespace tapegrad::nn {

BatchNorm1d::BatchNorm1d(std::int64_t num_features, const BatchNormOptions& options)
    : Module("BatchNorm1d"), features_(num_features), options_(options) {
  if (num_features <= 0) throw_invalid("BatchNorm1d", "num_features must be positive, got ", num_features);
  if (!(options.eps > 0)) throw_invalid("BatchNorm1d", "eps must be > 0, got ", options.eps);
  if (!(options.momentum >= 0 && options.momentum <= 1)) {
    throw_invalid("BatchNorm1d", "momentum must be in [0, 1], got ", options.momentum);
  }
  if (options.affine) {
    register_parameter("weight", ones({num_features}));
    register_parameter("bias", zeros({num_features}));
  }
  register_buffer("running_mean", zeros({num_features}));
  register_buffer("running_var", ones({num_features}));
}

std::string BatchNorm1d::str() const {
  return detail::concat("BatchNorm1d(", features_, ", eps=", options_.eps, ", momentum=", options_.momentum,
                        options_.affine ? "" : ", affine=false", ")");
}

Tensor BatchNorm1d::forward(const Tensor& input) {
  detail::check_input_dtype(*this, input, running_mean().dtype());
  if (input.dim() != 2 && input.dim() != 3) {
    detail::throw_layer(*this, "expects input [N x ", features_, "] or [N x ", features_, " x L], got ",
                        input.shape().str());
  }
  if (input.shape(1) != features_) {
    detail::throw_layer(*this, "input ", input.shape().str(), " has ", input.shape(1), " features, expected ",
                        features_);
  }
  if (is_training() && input.numel() / features_ < 2) {
    detail::throw_layer(*this, "training needs more than one value per feature, got input ", input.shape().str(),
                        " (call eval() to use the running statistics)");
  }
  return batch_norm(input, running_mean(), running_var(), weight(), bias(), is_training(), options_.momentum,
                    options_.eps);
}

}  // namespace tapegrad::nn
