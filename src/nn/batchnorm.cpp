#include "tapegrad/nn/batchnorm.hpp"

#include <utility>

#include "nn/checks.hpp"
#include "tapegrad/ops/nn.hpp"

namespace tapegrad::nn {

BatchNorm::BatchNorm(std::string layer_type, std::int64_t num_features, const BatchNormOptions& options,
                     std::vector<Layout> layouts, const char* feature_noun)
    : Module(std::move(layer_type)),
      features_(num_features),
      options_(options),
      layouts_(std::move(layouts)),
      feature_noun_(feature_noun) {
  const char* name = type_name().c_str();
  if (num_features <= 0) throw_invalid(name, "num_features must be positive, got ", num_features);
  if (!(options.eps > 0)) throw_invalid(name, "eps must be > 0, got ", options.eps);
  if (!(options.momentum >= 0 && options.momentum <= 1)) {
    throw_invalid(name, "momentum must be in [0, 1], got ", options.momentum);
  }
  if (options.affine) {
    register_parameter("weight", ones({num_features}));
    register_parameter("bias", zeros({num_features}));
  }
  register_buffer("running_mean", zeros({num_features}));
  register_buffer("running_var", ones({num_features}));
}

std::string BatchNorm::str() const {
  return detail::concat(type_name(), "(", features_, ", eps=", options_.eps, ", momentum=", options_.momentum,
                        options_.affine ? "" : ", affine=false", ")");
}

Tensor BatchNorm::forward(const Tensor& input) {
  detail::check_input_dtype(*this, input, running_mean().dtype());
  bool accepted = false;
  for (const Layout& layout : layouts_) accepted = accepted || input.dim() == layout.rank;
  if (!accepted) {
    std::string expected;
    for (const Layout& layout : layouts_) {
      if (!expected.empty()) expected += " or ";
      expected += detail::concat("[N x ", features_, layout.trailing_axes, "]");
    }
    detail::throw_layer(*this, "expects input ", expected, ", got ", input.shape().str());
  }
  if (input.shape(1) != features_) {
    detail::throw_layer(*this, "input ", input.shape().str(), " has ", input.shape(1), " ", feature_noun_,
                        "s, expected ", features_);
  }
  if (is_training() && input.numel() / features_ < 2) {
    detail::throw_layer(*this, "training needs more than one value per ", feature_noun_, ", got input ",
                        input.shape().str(), " (call eval() to use the running statistics)");
  }
  return batch_norm(input, running_mean(), running_var(), weight(), bias(), is_training(), options_.momentum,
                    options_.eps);
}

BatchNorm1d::BatchNorm1d(std::int64_t num_features, const BatchNormOptions& options)
    : BatchNorm("BatchNorm1d", num_features, options, {{2, ""}, {3, " x L"}}, "feature") {}

BatchNorm2d::BatchNorm2d(std::int64_t num_features, const BatchNormOptions& options)
    : BatchNorm("BatchNorm2d", num_features, options, {{4, " x H x W"}}, "channel") {}

}  // namespace tapegrad::nn
