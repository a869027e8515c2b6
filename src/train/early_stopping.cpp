#include "tapegrad/train/early_stopping.hpp"

#include <cmath>

#include "tapegrad/error.hpp"

namespace tapegrad::train {

EarlyStopping::EarlyStopping(nn::Module& module, EarlyStoppingOptions options) : module_(module), options_(options) {
  if (options_.patience < 1) throw_invalid("EarlyStopping", "patience must be at least 1, got ", options_.patience);
  if (!(options_.min_delta >= 0)) throw_invalid("EarlyStopping", "min_delta must be non-negative, got ", options_.min_delta);
}

bool EarlyStopping::step(double validation_loss) {
  ++epochs_;
  // The first finite loss is always an improvement; NaN never is.
  const bool improved = !std::isnan(validation_loss) &&
                        (best_epoch_ == 0 ? true : validation_loss < best_loss_ - options_.min_delta);
  if (improved) {
    best_loss_ = validation_loss;
    best_epoch_ = epochs_;
    bad_epochs_ = 0;
    // Copies, not handles: the optimizer keeps changing the module's tensors.
    best_state_.clear();
    for (const auto& [name, tensor] : module_.state_dict()) best_state_.emplace_back(name, tensor.detach().clone());
  } else {
    ++bad_epochs_;
  }
  if (bad_epochs_ >= options_.patience && !stopped_) {
    stopped_ = true;
    if (options_.restore_best) restore_best();
  }
  return stopped_;
}

void EarlyStopping::restore_best() {
  if (!best_state_.empty()) module_.load_state_dict(best_state_);
}

}  // namespace tapegrad::train
