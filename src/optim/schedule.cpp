#include "tapegrad/optim/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "optim/checks.hpp"
#include "tapegrad/optim/basic_optimizer.hpp"

namespace tapegrad::optim {

namespace {

void check_at_least_one(const char* who, const char* option, std::int64_t value) {
  if (value < 1) throw_invalid(who, option, " must be >= 1, got ", value);
}

void check_count(const char* who, const char* option, std::int64_t value) {
  if (value < 0) throw_invalid(who, option, " must be >= 0, got ", value);
}

std::vector<double> learning_rates(const Optimizer& optimizer) {
  std::vector<double> rates;
  for (std::size_t g = 0; g < optimizer.num_groups(); ++g) rates.push_back(optimizer.learning_rate(g));
  return rates;
}

}  // namespace

// --- LRScheduler ---

LRScheduler::LRScheduler(Optimizer& optimizer, std::string name)
    : optimizer_(optimizer), name_(std::move(name)), base_lrs_(learning_rates(optimizer)) {}

void LRScheduler::step() {
  if (optimizer_.num_groups() != base_lrs_.size()) {
    throw_invalid(name_.c_str(), "the optimizer now has ", optimizer_.num_groups(), " groups; the schedule was made for ",
                  base_lrs_.size());
  }
  ++last_epoch_;
  for (std::size_t g = 0; g < base_lrs_.size(); ++g) {
    optimizer_.set_learning_rate(g, next_learning_rate(g, optimizer_.learning_rate(g)));
  }
}

NamedTensors LRScheduler::state_dict() const {
  return {{"last_epoch", from_indices({last_epoch_}, Shape{})},
          {"base_lrs", from_vector(base_lrs_, Shape{static_cast<std::int64_t>(base_lrs_.size())}, DType::Float64)}};
}

void LRScheduler::load_state_dict(const NamedTensors& state) {
  detail::StateReader reader(name_ + ".load_state_dict", state);
  const std::int64_t last_epoch = reader.take_count("last_epoch");
  std::vector<double> base_lrs = reader.take_numbers("base_lrs", optimizer_.num_groups());
  reader.finish();
  last_epoch_ = last_epoch;
  base_lrs_ = std::move(base_lrs);
}

// --- StepLR ---

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer, "StepLR"), step_size_(step_size), gamma_(gamma) {
  check_at_least_one("StepLR", "step_size", step_size);
  detail::check_positive("StepLR", "gamma", gamma);
}

double StepLR::next_learning_rate(std::size_t, double current) const {
  return last_epoch() % step_size_ == 0 ? current * gamma_ : current;
}

// --- ExponentialLR ---

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma) : LRScheduler(optimizer, "ExponentialLR"), gamma_(gamma) {
  detail::check_positive("ExponentialLR", "gamma", gamma);
}

double ExponentialLR::next_learning_rate(std::size_t, double current) const { return current * gamma_; }

// --- CosineAnnealingLR ---

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min)
    : LRScheduler(optimizer, "CosineAnnealingLR"), t_max_(t_max), eta_min_(eta_min) {
  check_at_least_one("CosineAnnealingLR", "t_max", t_max);
  detail::check_nonnegative("CosineAnnealingLR", "eta_min", eta_min);
}

double CosineAnnealingLR::next_learning_rate(std::size_t group, double current) const {
  constexpr double pi = std::numbers::pi;
  const std::int64_t t = last_epoch();
  const double t_max = static_cast<double>(t_max_);
  // At t = t_max + 1 (mod 2·t_max) the ratio below would be 0/0: the rate
  // leaves eta_min, so PyTorch adds the first step of the rise instead.
  const std::int64_t period = 2 * t_max_;
  if (((t - 1 - t_max_) % period + period) % period == 0) {
    return current + (base_lrs()[group] - eta_min_) * (1 - std::cos(pi / t_max)) / 2;
  }
  // Ratio of consecutive closed-form values, applied to the current rate.
  return (1 + std::cos(pi * static_cast<double>(t) / t_max)) / (1 + std::cos(pi * static_cast<double>(t - 1) / t_max)) *
             (current - eta_min_) +
         eta_min_;
}

// --- ReduceLROnPlateau ---

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, const PlateauOptions& options)
    : optimizer_(optimizer), options_(options) {
  const char* who = "ReduceLROnPlateau";
  detail::check_rate(who, "factor", options.factor);
  check_count(who, "patience", options.patience);
  detail::check_nonnegative(who, "threshold", options.threshold);
  check_count(who, "cooldown", options.cooldown);
  detail::check_nonnegative(who, "min_lr", options.min_lr);
  detail::check_nonnegative(who, "eps", options.eps);
  best_ = options.mode == PlateauMode::Min ? std::numeric_limits<double>::infinity()
                                           : -std::numeric_limits<double>::infinity();
}

bool ReduceLROnPlateau::is_better(double metric) const {
  const double t = options_.threshold;
  const bool relative = options_.threshold_mode == ThresholdMode::Rel;
  if (options_.mode == PlateauMode::Min) return metric < (relative ? best_ * (1 - t) : best_ - t);
  return metric > (relative ? best_ * (1 + t) : best_ + t);
}

void ReduceLROnPlateau::step(double metric) {
  ++last_epoch_;
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad epochs during a cooldown do not count
  }
  if (num_bad_epochs_ > options_.patience) {
    for (std::size_t g = 0; g < optimizer_.num_groups(); ++g) {
      const double old_lr = optimizer_.learning_rate(g);
      const double new_lr = std::max(old_lr * options_.factor, options_.min_lr);
      if (old_lr - new_lr > options_.eps) optimizer_.set_learning_rate(g, new_lr);
    }
    cooldown_counter_ = options_.cooldown;
    num_bad_epochs_ = 0;
  }
}

NamedTensors ReduceLROnPlateau::state_dict() const {
  return {{"last_epoch", from_indices({last_epoch_}, Shape{})},
          {"best", scalar(best_, DType::Float64)},
          {"num_bad_epochs", from_indices({num_bad_epochs_}, Shape{})},
          {"cooldown_counter", from_indices({cooldown_counter_}, Shape{})}};
}

void ReduceLROnPlateau::load_state_dict(const NamedTensors& state) {
  detail::StateReader reader("ReduceLROnPlateau.load_state_dict", state);
  const std::int64_t last_epoch = reader.take_count("last_epoch");
  const double best = reader.take_number("best");
  const std::int64_t num_bad_epochs = reader.take_count("num_bad_epochs");
  const std::int64_t cooldown_counter = reader.take_count("cooldown_counter");
  reader.finish();
  last_epoch_ = last_epoch;
  best_ = best;
  num_bad_epochs_ = num_bad_epochs;
  cooldown_counter_ = cooldown_counter;
}

}  // namespace tapegrad::optim
