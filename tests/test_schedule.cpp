// Learning-rate schedules: hand-computed values, PyTorch's sequences
// (tests/data/optim_schedules.txt, written by scripts/make_optimizer_fixtures.py;
// the table below mirrors its SCHEDULES), state save/load, and every error.
#include <cmath>
#include <functional>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include "fixture.hpp"

using namespace tapegrad;
using namespace tapegrad::optim;
using namespace tapegrad::testing;

namespace {

// An optimizer whose only job is to hold learning rates: one group per rate.
std::unique_ptr<SGD> holder(const std::vector<double>& rates) {
  auto optimizer = std::make_unique<SGD>(std::vector<Tensor>{leaf({0})}, SGDOptions{.lr = rates[0]});
  for (std::size_t g = 1; g < rates.size(); ++g) optimizer->add_param_group({leaf({0})}, {.lr = rates[g]});
  return optimizer;
}

}  // namespace

TEST_CASE("StepLR multiplies by gamma every step_size epochs", "[schedule]") {
  auto optimizer = holder({0.1, 0.02});
  StepLR schedule(*optimizer, 2, 0.5);
  CHECK(schedule.last_epoch() == 0);
  CHECK(schedule.base_lrs() == std::vector<double>{0.1, 0.02});
  const std::vector<double> expected = {0.1, 0.05, 0.05, 0.025, 0.025, 0.0125};  // epochs 1..6
  for (double want : expected) {
    schedule.step();
    CHECK(optimizer->learning_rate(0) == Approx(want).epsilon(1e-15));
    CHECK(optimizer->learning_rate(1) == Approx(want / 5).epsilon(1e-15));  // the same factors
  }
  CHECK(schedule.last_epoch() == 6);
}

TEST_CASE("ExponentialLR multiplies by gamma every epoch", "[schedule]") {
  auto optimizer = holder({1.0});
  ExponentialLR schedule(*optimizer, 0.5);
  for (double want : {0.5, 0.25, 0.125}) {
    schedule.step();
    CHECK(optimizer->learning_rate() == want);
  }
}

TEST_CASE("schedules update the current rate, so they compose with a rate set by hand", "[schedule]") {
  auto optimizer = holder({1.0});
  StepLR schedule(*optimizer, 1, 0.5);
  schedule.step();
  CHECK(optimizer->learning_rate() == 0.5);
  optimizer->set_learning_rate(0.2);
  schedule.step();
  CHECK(optimizer->learning_rate() == Approx(0.1));
}

TEST_CASE("CosineAnnealingLR follows the half cosine down to eta_min and back up", "[schedule]") {
  auto optimizer = holder({1.0, 0.5});
  CosineAnnealingLR schedule(*optimizer, 4, 0.1);
  // lr_t = eta_min + (base - eta_min)·(1 + cos(π·t / 4)) / 2, period 8. For
  // base 1: t = 1: 0.1 + 0.45·(1 + √2/2) ≈ 0.868; t = 2: 0.55; t = 4: 0.1
  // (the minimum); t = 5 (PyTorch's special case): back to ≈ 0.232; t = 8: 1.
  const double pi = std::numbers::pi;
  for (int t = 1; t <= 12; ++t) {
    schedule.step();
    INFO("epoch " << t);
    CHECK(optimizer->learning_rate(0) == Approx(0.1 + 0.9 * (1 + std::cos(pi * t / 4)) / 2).epsilon(1e-13));
    CHECK(optimizer->learning_rate(1) == Approx(0.1 + 0.4 * (1 + std::cos(pi * t / 4)) / 2).epsilon(1e-13));
    if (t == 2) CHECK(optimizer->learning_rate(0) == Approx(0.55));
    if (t == 4) CHECK(optimizer->learning_rate(0) == Approx(0.1));
    if (t == 8) CHECK(optimizer->learning_rate(0) == Approx(1.0));
  }
}

TEST_CASE("ReduceLROnPlateau by hand: patience, threshold, cooldown, min_lr", "[schedule]") {
  auto optimizer = holder({0.1});
  ReduceLROnPlateau plateau(*optimizer, {.factor = 0.5, .patience = 1, .threshold = 0.1, .cooldown = 1, .min_lr = 0.02});
  CHECK(plateau.best() == INFINITY);
  // Better means below best·(1 - 0.1). A cut needs 2 bad epochs in a row
  // (more than patience 1) and is followed by 1 cooldown epoch whose bad
  // count is forgotten.
  struct Epoch {
    double metric;
    double lr;  // after the step
    const char* why;
  };
  const std::vector<Epoch> epochs = {
      {1.0, 0.1, "better than +inf: best 1"},
      {0.95, 0.1, "not below 0.9: 1 bad epoch"},
      {0.92, 0.05, "2 bad epochs > patience: cut to 0.05, cooldown 1"},
      {0.91, 0.05, "bad, but in cooldown: count reset"},
      {0.91, 0.05, "1 bad epoch"},
      {0.91, 0.025, "2 bad epochs: cut to 0.025"},
      {0.5, 0.025, "better: best 0.5 (cooldown ends)"},
      {0.5, 0.025, "not below 0.45: 1 bad epoch"},
      {0.5, 0.02, "2 bad epochs: cut to max(0.0125, min_lr 0.02)"},
      {0.5, 0.02, "cooldown"},
      {0.5, 0.02, "1 bad epoch"},
      {0.5, 0.02, "2 bad epochs: max(0.01, 0.02) = 0.02, no change"},
  };
  for (const Epoch& e : epochs) {
    INFO(e.why);
    plateau.step(e.metric);
    CHECK(optimizer->learning_rate() == Approx(e.lr).epsilon(1e-15));
  }
  CHECK(plateau.best() == 0.5);
  CHECK(plateau.last_epoch() == 12);
  CHECK(plateau.num_bad_epochs() == 0);
  CHECK(plateau.cooldown_counter() == 1);
}

TEST_CASE("ReduceLROnPlateau in max mode with an absolute threshold, and its eps", "[schedule]") {
  auto optimizer = holder({1.0});
  ReduceLROnPlateau plateau(*optimizer, {.mode = PlateauMode::Max, .factor = 0.5, .patience = 0, .threshold = 0.5,
                                         .threshold_mode = ThresholdMode::Abs});
  CHECK(plateau.best() == -INFINITY);
  plateau.step(1.0);  // better than -inf
  CHECK(optimizer->learning_rate() == 1.0);
  plateau.step(1.4);  // not above 1 + 0.5: a bad epoch > patience 0: cut
  CHECK(optimizer->learning_rate() == 0.5);
  plateau.step(2.0);  // above 1.5: better
  CHECK(optimizer->learning_rate() == 0.5);
  CHECK(plateau.best() == 2.0);
  plateau.step(std::nan(""));  // NaN is never better
  CHECK(optimizer->learning_rate() == 0.25);

  // A cut smaller than eps (1e-8 by default) is skipped.
  auto tiny = holder({1e-8});
  ReduceLROnPlateau skip(*tiny, {.factor = 0.5, .patience = 0});
  skip.step(1.0);
  skip.step(1.0);  // 1e-8 - 5e-9 = 5e-9 < eps: unchanged
  CHECK(tiny->learning_rate() == 1e-8);
  ReduceLROnPlateau exact(*tiny, {.factor = 0.5, .patience = 0, .eps = 0});
  exact.step(1.0);
  exact.step(1.0);
  CHECK(tiny->learning_rate() == 5e-9);
}

TEST_CASE("schedule state round-trips through state_dict", "[schedule][state]") {
  auto optimizer = holder({1.0, 0.5});
  CosineAnnealingLR schedule(*optimizer, 10);
  for (int t = 0; t < 3; ++t) schedule.step();
  const NamedTensors state = schedule.state_dict();
  REQUIRE(state.size() == 2);
  CHECK(state[0].first == "last_epoch");
  CHECK(state[0].second.dtype() == DType::Int64);
  CHECK(state[0].second.item() == 3);
  CHECK(state[1].first == "base_lrs");
  CHECK(state[1].second.to_vector() == std::vector<double>{1.0, 0.5});

  auto resumed_optimizer = holder({7.0, 7.0});
  resumed_optimizer->load_state_dict(optimizer->state_dict());  // the rates live in the optimizer
  CosineAnnealingLR resumed(*resumed_optimizer, 10);
  resumed.load_state_dict(state);
  CHECK(resumed.last_epoch() == 3);
  CHECK(resumed.base_lrs() == std::vector<double>{1.0, 0.5});
  schedule.step();
  resumed.step();
  CHECK(resumed_optimizer->learning_rate(0) == optimizer->learning_rate(0));
  CHECK(resumed_optimizer->learning_rate(1) == optimizer->learning_rate(1));

  ReduceLROnPlateau plateau(*optimizer, {.patience = 3});
  plateau.step(2.0);
  plateau.step(3.0);
  ReduceLROnPlateau other(*optimizer, {.patience = 3});
  other.load_state_dict(plateau.state_dict());
  CHECK(other.best() == 2.0);
  CHECK(other.num_bad_epochs() == 1);
  CHECK(other.last_epoch() == 2);
  CHECK(other.cooldown_counter() == 0);
}

TEST_CASE("schedule options are validated", "[schedule][errors]") {
  auto optimizer = holder({0.1});
  Optimizer& o = *optimizer;
  using E = std::invalid_argument;
  REQUIRE_THROWS_MESSAGE(StepLR(o, 0), E, "StepLR: step_size must be >= 1, got 0");
  REQUIRE_THROWS_MESSAGE(StepLR(o, 3, 0), E, "StepLR: gamma must be > 0, got 0");
  REQUIRE_THROWS_MESSAGE(StepLR(o, 3, INFINITY), E, "StepLR: gamma must be finite, got inf");
  REQUIRE_THROWS_MESSAGE(ExponentialLR(o, -0.5), E, "ExponentialLR: gamma must be > 0, got -0.5");
  REQUIRE_THROWS_MESSAGE(CosineAnnealingLR(o, 0), E, "CosineAnnealingLR: t_max must be >= 1, got 0");
  REQUIRE_THROWS_MESSAGE(CosineAnnealingLR(o, 5, -0.1), E, "CosineAnnealingLR: eta_min must be >= 0, got -0.1");
  REQUIRE_THROWS_MESSAGE(ReduceLROnPlateau(o, {.factor = 1}), E, "ReduceLROnPlateau: factor must be in [0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(ReduceLROnPlateau(o, {.factor = -0.1}), E,
                         "ReduceLROnPlateau: factor must be in [0, 1), got -0.1");
  REQUIRE_THROWS_MESSAGE(ReduceLROnPlateau(o, {.patience = -1}), E, "ReduceLROnPlateau: patience must be >= 0, got -1");
  REQUIRE_THROWS_MESSAGE(ReduceLROnPlateau(o, {.threshold = -0.1}), E,
                         "ReduceLROnPlateau: threshold must be >= 0, got -0.1");
  REQUIRE_THROWS_MESSAGE(ReduceLROnPlateau(o, {.cooldown = -2}), E, "ReduceLROnPlateau: cooldown must be >= 0, got -2");
  REQUIRE_THROWS_MESSAGE(ReduceLROnPlateau(o, {.min_lr = -1}), E, "ReduceLROnPlateau: min_lr must be >= 0, got -1");
  REQUIRE_THROWS_MESSAGE(ReduceLROnPlateau(o, {.eps = -1e-8}), E, "ReduceLROnPlateau: eps must be >= 0, got -1e-08");
}

TEST_CASE("schedule misuse and bad states are reported", "[schedule][errors]") {
  auto optimizer = holder({0.1});
  StepLR schedule(*optimizer, 2);
  optimizer->add_param_group({leaf({0})}, {});
  REQUIRE_THROWS_MESSAGE(schedule.step(), std::invalid_argument,
                         "StepLR: the optimizer now has 2 groups; the schedule was made for 1");
  CHECK(schedule.last_epoch() == 0);

  ExponentialLR exponential(*optimizer, 0.9);  // made for 2 groups
  const NamedTensors good = exponential.state_dict();
  using E = std::invalid_argument;
  REQUIRE_THROWS_MESSAGE(exponential.load_state_dict({good[1]}), E,
                         "ExponentialLR.load_state_dict: missing 'last_epoch'");
  REQUIRE_THROWS_MESSAGE(
      exponential.load_state_dict({good[0], {"base_lrs", Tensor({0.1, 0.2, 0.3}, DType::Float64)}}), E,
      "ExponentialLR.load_state_dict: 'base_lrs' must be float64 [2], got float64 [3]");
  REQUIRE_THROWS_MESSAGE(exponential.load_state_dict({good[0], good[1], {"best", scalar(1, DType::Float64)}}), E,
                         "ExponentialLR.load_state_dict: unexpected 'best'");
  REQUIRE_THROWS_MESSAGE(exponential.load_state_dict({{"last_epoch", from_indices({-3}, Shape{})}, good[1]}), E,
                         "ExponentialLR.load_state_dict: 'last_epoch' must be >= 0, got -3");

  ReduceLROnPlateau plateau(*optimizer);
  NamedTensors state = plateau.state_dict();
  state[1].second = from_indices({1}, Shape{});
  REQUIRE_THROWS_MESSAGE(plateau.load_state_dict(state), E,
                         "ReduceLROnPlateau.load_state_dict: 'best' must be a float64 scalar, got int64 []");
  state = plateau.state_dict();
  state[2].second = scalar(1, DType::Float64);
  REQUIRE_THROWS_MESSAGE(plateau.load_state_dict(state), E,
                         "ReduceLROnPlateau.load_state_dict: 'num_bad_epochs' must be an int64 scalar, got float64 []");
  CHECK(plateau.best() == INFINITY);  // unchanged
}

namespace {

// One row of SCHEDULES in scripts/make_optimizer_fixtures.py. ReduceLROnPlateau
// steps on metric_sign · metrics.
struct ScheduleCase {
  std::string name;
  std::function<std::unique_ptr<LRScheduler>(Optimizer&)> schedule = {};
  std::function<std::unique_ptr<ReduceLROnPlateau>(Optimizer&)> plateau = {};
  double metric_sign = 0;
};

}  // namespace

TEST_CASE("schedules match torch.optim.lr_scheduler over 30 epochs", "[schedule][reference]") {
  const Fixture fx("optim_schedules.txt");
  const std::vector<ScheduleCase> cases = {
      {.name = "step", .schedule = [](Optimizer& o) { return std::make_unique<StepLR>(o, 3, 0.5); }},
      {.name = "exponential", .schedule = [](Optimizer& o) { return std::make_unique<ExponentialLR>(o, 0.9); }},
      {.name = "cosine", .schedule = [](Optimizer& o) { return std::make_unique<CosineAnnealingLR>(o, 7, 0.01); }},
      {.name = "plateau_min_rel",
       .plateau =
           [](Optimizer& o) {
             return std::make_unique<ReduceLROnPlateau>(
                 o, PlateauOptions{.factor = 0.5, .patience = 2, .threshold = 0.1, .cooldown = 1, .min_lr = 0.01});
           },
       .metric_sign = 1},
      {.name = "plateau_max_abs",
       .plateau =
           [](Optimizer& o) {
             return std::make_unique<ReduceLROnPlateau>(
                 o, PlateauOptions{.mode = PlateauMode::Max, .factor = 0.3, .patience = 0, .threshold = 0.5,
                                   .threshold_mode = ThresholdMode::Abs});
           },
       .metric_sign = -1},
  };
  const std::vector<double> metrics = fx.get("metrics").values;
  double worst = 0;
  for (const ScheduleCase& c : cases) {
    INFO("schedule " << c.name);
    auto optimizer = holder({0.1, 0.02});
    auto schedule = c.schedule ? c.schedule(*optimizer) : nullptr;
    auto plateau = c.plateau ? c.plateau(*optimizer) : nullptr;
    std::vector<double> lr0, lr1;
    for (double metric : metrics) {
      if (schedule) schedule->step();
      if (plateau) plateau->step(c.metric_sign * metric);
      lr0.push_back(optimizer->learning_rate(0));
      lr1.push_back(optimizer->learning_rate(1));
    }
    worst = std::max(worst, check_values(fx, c.name + ".lr0", lr0));
    worst = std::max(worst, check_values(fx, c.name + ".lr1", lr1));
  }
  INFO("largest deviation from PyTorch: " << worst);
  CHECK(worst <= kFixtureTolerance);
}
