#pragma once
// BasicOptimizer<Options, State>: the typed layer under every optimizer, and
// the base to derive from to write a new one.
//
// Options: an aggregate of hyperparameters with a field `lr` and a member
//   for_each_field(f) calling f(name, field) on every field (double or bool),
//   plus a free function validate(const Options&) that throws on bad values.
// State: `std::int64_t step` and the buffers, with a member
//   for_each_buffer(options, f) calling f(name, Tensor&) on the buffers that
//   those options use.
//
// Each group has its own Options; each parameter's State is created on its
// first step and keyed by the parameter's identity (its TensorImpl), so the
// model and the optimizer share the very same tensors.
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tapegrad/kernel.hpp"
#include "tapegrad/optim/optimizer.hpp"

namespace tapegrad::optim {

namespace detail {

// Reads a state_dict for a load: each name is taken at most once, with its
// kind checked; finish() reports the names never taken. Messages start with
// `op` ("Adam.load_state_dict").
class StateReader {
 public:
  StateReader(std::string op, const NamedTensors& state);  // rejects a name given twice
  const std::string& op() const { return op_; }
  // Whether a name not yet taken starts with `prefix`.
  bool has_prefix(const std::string& prefix) const;
  const Tensor& take(const std::string& name);
  double take_number(const std::string& name);                                  // float64 scalar
  bool take_flag(const std::string& name);                                      // float64 scalar, 0 or 1
  std::int64_t take_count(const std::string& name);                             // int64 scalar >= 0
  const Tensor& take_like(const std::string& name, const Tensor& like);         // like's shape and dtype
  std::vector<double> take_numbers(const std::string& name, std::size_t size);  // float64 [size]
  void finish() const;

 private:
  std::string op_;
  std::map<std::string, const Tensor*> remaining_;
};

// Makes `buffer` ready to update `parameter` with: created and filled with
// `fill` on first use, converted if the parameter changed dtype since
// (Module::to converts parameters in place). Returns true when it was just
// created, i.e. holds no history yet.
bool prepare_buffer(Tensor& buffer, const Tensor& parameter, double fill = 0.0);

}  // namespace detail

template <class Options, class State>
class BasicOptimizer : public Optimizer {
 public:
  // Adds a group with its own options. A tensor may be in only one group.
  void add_param_group(std::vector<Tensor> parameters, const Options& options) {
    validate(options);
    add_group_parameters(std::move(parameters));
    options_.push_back(options);
  }

  const Options& options(std::size_t group = 0) const { return options_[check_group(group)]; }
  void set_options(std::size_t group, const Options& options) {
    check_group(group);
    validate(options);
    options_[group] = options;
  }

  // A parameter's state; nullptr before its first step.
  const State* state(const Tensor& parameter) const {
    const auto found = state_.find(parameter.impl());
    return found == state_.end() ? nullptr : &found->second;
  }

 protected:
  BasicOptimizer(std::string name, std::vector<Tensor> parameters, const Options& options)
      : Optimizer(std::move(name)) {
    add_param_group(std::move(parameters), options);
  }

  // One parameter's update, in place; state.step already counts this step.
  virtual void update(const Options& options, Tensor& parameter, const Tensor& grad, State& state) = 0;

 private:
  double group_learning_rate(std::size_t group) const override { return options_[group].lr; }

  void set_group_learning_rate(std::size_t group, double lr) override {
    Options changed = options_[group];
    changed.lr = lr;
    validate(changed);
    options_[group] = changed;
  }

  void step_parameter(std::size_t group, Tensor& parameter, const Tensor& grad) override {
    State& state = state_[parameter.impl()];  // allocates on the first step only
    // A kernel of its own, so that a captured step counts its replays.
    launch(name().c_str(), [counted = &state] { ++counted->step; });
    update(options_[group], parameter, grad, state);
  }

  void save_options(std::size_t group, const std::string& prefix, NamedTensors& out) const override {
    Options options = options_[group];  // for_each_field hands out mutable fields
    options.for_each_field([&](const char* field, auto& value) {
      out.emplace_back(prefix + field, scalar(static_cast<double>(value), DType::Float64));
    });
  }

  void save_state(std::size_t group, const Tensor& parameter, const std::string& prefix,
                  NamedTensors& out) const override {
    const auto found = state_.find(parameter.impl());
    if (found == state_.end()) return;
    State state = found->second;  // handles only; the clones below are the snapshot
    out.emplace_back(prefix + "step", from_indices({state.step}, Shape{}));
    state.for_each_buffer(options_[group], [&](const char* buffer, Tensor& value) {
      if (value.defined()) out.emplace_back(prefix + buffer, value.clone());
    });
  }

  std::function<void()> read_state(detail::StateReader& reader) override {
    std::vector<Options> options = options_;
    for (std::size_t g = 0; g < options.size(); ++g) {
      const std::string prefix = "param_groups." + std::to_string(g) + ".";
      options[g].for_each_field([&](const char* field, auto& value) {
        if constexpr (std::is_same_v<std::decay_t<decltype(value)>, bool>) {
          value = reader.take_flag(prefix + field);
        } else {
          value = reader.take_number(prefix + field);
        }
      });
      validate(options[g]);
    }
    std::unordered_map<const TensorImpl*, State> state;
    std::size_t index = 0;
    for (std::size_t g = 0; g < options.size(); ++g) {
      for (const Tensor& parameter : parameters(g)) {
        const std::string prefix = "state." + std::to_string(index++) + ".";
        if (!reader.has_prefix(prefix)) continue;  // not stepped yet
        State loaded;
        loaded.step = reader.take_count(prefix + "step");
        loaded.for_each_buffer(options[g], [&](const char* buffer, Tensor& value) {
          value = reader.take_like(prefix + buffer, parameter).clone();
        });
        state.emplace(parameter.impl(), std::move(loaded));
      }
    }
    return [this, options = std::move(options), state = std::move(state)]() mutable {
      options_ = std::move(options);
      state_ = std::move(state);
    };
  }

  std::vector<Options> options_;
  std::unordered_map<const TensorImpl*, State> state_;
};

}  // namespace tapegrad::optim
