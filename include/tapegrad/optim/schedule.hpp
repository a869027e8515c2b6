#pragma once
// Learning-rate schedules with torch.optim.lr_scheduler's semantics. Call
// step() once per epoch, after the optimizer's steps; it sets the learning
// rate of every parameter group. A schedule keeps a reference to its
// optimizer, which must outlive it.
//
// Step, exponential and cosine schedules update each group's current rate
// (PyTorch's chainable form), so they compose with a rate set by hand.
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/optim/optimizer.hpp"

namespace tapegrad::optim {

// A schedule driven by the epoch count alone.
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // Advances one epoch and sets every group's learning rate.
  void step();
  // Epochs stepped so far (0 after construction).
  std::int64_t last_epoch() const { return last_epoch_; }
  // The groups' learning rates when the schedule was created.
  const std::vector<double>& base_lrs() const { return base_lrs_; }

  // "last_epoch" (int64 scalar) and "base_lrs" (float64 [groups]); the
  // rates themselves live in the optimizer's state_dict.
  NamedTensors state_dict() const;
  // Checks everything before changing anything.
  void load_state_dict(const NamedTensors& state);

 protected:
  LRScheduler(Optimizer& optimizer, std::string name);
  // Group's rate for epoch last_epoch() (already advanced), from its current rate.
  virtual double next_learning_rate(std::size_t group, double current) const = 0;

 private:
  Optimizer& optimizer_;
  std::string name_;
  std::vector<double> base_lrs_;
  std::int64_t last_epoch_ = 0;
};

// lr ← lr·gamma every step_size epochs.
class StepLR final : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);

 private:
  double next_learning_rate(std::size_t group, double current) const override;
  std::int64_t step_size_;
  double gamma_;
};

// lr ← lr·gamma every epoch.
class ExponentialLR final : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma);

 private:
  double next_learning_rate(std::size_t group, double current) const override;
  double gamma_;
};

// lr_t = eta_min + (base_lr − eta_min)·(1 + cos(π·t / t_max)) / 2: half a
// cosine from base_lr down to eta_min over t_max epochs, then back up
// (period 2·t_max). Computed by PyTorch's recurrence from the current rate.
class CosineAnnealingLR final : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min = 0);

 private:
  double next_learning_rate(std::size_t group, double current) const override;
  std::int64_t t_max_;
  double eta_min_;
};

enum class PlateauMode { Min, Max };
enum class ThresholdMode { Rel, Abs };

// Fields in PyTorch's argument order (designated initializers).
struct PlateauOptions {
  PlateauMode mode = PlateauMode::Min;  // Min: lower metrics are better
  double factor = 0.1;                  // new lr = max(lr·factor, min_lr)
  std::int64_t patience = 10;           // bad epochs tolerated before a cut
  double threshold = 1e-4;              // how much better counts as better
  ThresholdMode threshold_mode = ThresholdMode::Rel;  // Rel: best·(1 ∓ threshold); Abs: best ∓ threshold
  std::int64_t cooldown = 0;            // epochs ignored after a cut
  double min_lr = 0;                    // floor for every group
  double eps = 1e-8;                    // cuts smaller than this are skipped
};

// Cuts every group's rate by `factor` once the metric has not improved for
// more than `patience` epochs (PyTorch's ReduceLROnPlateau).
class ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(Optimizer& optimizer, const PlateauOptions& options = {});
  ReduceLROnPlateau(const ReduceLROnPlateau&) = delete;
  ReduceLROnPlateau& operator=(const ReduceLROnPlateau&) = delete;

  // One epoch's metric (a validation loss, say). NaN never counts as better.
  void step(double metric);

  const PlateauOptions& options() const { return options_; }
  std::int64_t last_epoch() const { return last_epoch_; }
  double best() const { return best_; }  // ±infinity before the first step
  std::int64_t num_bad_epochs() const { return num_bad_epochs_; }
  std::int64_t cooldown_counter() const { return cooldown_counter_; }

  // "last_epoch", "num_bad_epochs", "cooldown_counter" (int64 scalars) and
  // "best" (float64 scalar).
  NamedTensors state_dict() const;
  void load_state_dict(const NamedTensors& state);

 private:
  bool is_better(double metric) const;

  Optimizer& optimizer_;
  PlateauOptions options_;
  std::int64_t last_epoch_ = 0;
  double best_;
  std::int64_t num_bad_epochs_ = 0;
  std::int64_t cooldown_counter_ = 0;
};

}  // namespace tapegrad::optim
