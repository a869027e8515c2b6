#include "tapegrad/nn/mlp.hpp"

#include "tapegrad/error.hpp"
#include "tapegrad/nn/dropout.hpp"

namespace tapegrad::nn {

namespace {

std::shared_ptr<Module> make(const ModuleFactory& factory, const char* what) {
  std::shared_ptr<Module> module = factory();
  if (!module) throw_invalid("mlp", "the ", what, " factory returned a null module");
  return module;
}

}  // namespace

std::shared_ptr<Sequential> mlp(const std::vector<std::int64_t>& sizes, const MLPOptions& options) {
  if (sizes.size() < 2) {
    throw_invalid("mlp", "needs at least two sizes (inputs and outputs), got ", sizes.size());
  }
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] <= 0) throw_invalid("mlp", "size ", i, " is ", sizes[i], "; every size must be positive");
  }
  if (!(options.dropout >= 0 && options.dropout < 1)) {
    throw_invalid("mlp", "dropout must be in [0, 1), got ", options.dropout);
  }
  if (sizes.size() > 2 && !options.activation) throw_invalid("mlp", "the activation factory is empty");
  auto model = std::make_shared<Sequential>();
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
    model->add(std::make_shared<Linear>(sizes[i], sizes[i + 1], options.linear));
    if (i + 2 == sizes.size()) break;  // the output layer
    if (options.batch_norm) model->add(std::make_shared<BatchNorm1d>(sizes[i + 1], options.batch_norm_options));
    model->add(make(options.activation, "activation"));
    if (options.dropout > 0) model->add(std::make_shared<Dropout>(options.dropout));
  }
  if (options.output_activation) model->add(make(options.output_activation, "output activation"));
  return model;
}

}  // namespace tapegrad::nn
