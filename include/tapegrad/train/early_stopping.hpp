#pragma once
// Early stopping: watches the validation loss once per epoch, keeps a copy
// of the best weights, and says when to stop: after `patience` epochs in a
// row without an improvement larger than `min_delta`. On stopping it puts
// the best weights back into the module (restore_best).
//
//   EarlyStopping stopper(model, {.patience = 5, .min_delta = 1e-4});
//   for (int epoch = 1; epoch <= max_epochs; ++epoch) {
//     ... train ...
//     if (stopper.step(validation_loss)) break;   // best weights restored
//   }
//   stopper.restore_best();   // after the loop, if it ran out of epochs
#include <cstdint>
#include <limits>

#include "tapegrad/nn/module.hpp"

namespace tapegrad::train {

struct EarlyStoppingOptions {
  std::int64_t patience = 5;   // epochs without improvement before stopping
  double min_delta = 0.0;      // an improvement must lower the best loss by more than this
  bool restore_best = true;    // load the best weights when step() says stop
};

class EarlyStopping {
 public:
  // Keeps a reference to `module`: it must outlive this object.
  explicit EarlyStopping(nn::Module& module, EarlyStoppingOptions options = {});

  // Records one epoch's validation loss; true when training should stop.
  // A NaN loss never counts as an improvement.
  bool step(double validation_loss);

  bool should_stop() const { return stopped_; }
  double best_loss() const { return best_loss_; }
  // 1-based number of the step() call that gave the best loss; 0 before any.
  std::int64_t best_epoch() const { return best_epoch_; }
  std::int64_t epochs() const { return epochs_; }
  std::int64_t epochs_without_improvement() const { return bad_epochs_; }
  // Copies of the best parameters and buffers (empty before any step()).
  const nn::NamedTensors& best_state() const { return best_state_; }
  // Loads the best weights into the module (no-op before any step()).
  void restore_best();

 private:
  nn::Module& module_;
  EarlyStoppingOptions options_;
  nn::NamedTensors best_state_;
  double best_loss_ = std::numeric_limits<double>::infinity();
  std::int64_t best_epoch_ = 0;
  std::int64_t epochs_ = 0;
  std::int64_t bad_epochs_ = 0;
  bool stopped_ = false;
};

}  // namespace tapegrad::train
