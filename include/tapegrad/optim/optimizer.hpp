#pragma once
// Optimizer: the interface every optimizer shares, and all that learning-rate
// schedules and checkpoints need: parameter groups, each with a learning
// rate; step() and zero_grad(); the state as named tensors.
//
// Parameters are plain Tensor handles shared with the model. step() updates
// their buffers in place with raw loops and records nothing on the tape.
// Concrete optimizers derive from BasicOptimizer (basic_optimizer.hpp),
// which adds typed options per group and typed state per parameter.
//
// state_dict() names (flat parameter indices i count through the groups in
// order, as PyTorch numbers them):
//   param_groups.<g>.params   int64 [n]: the indices i of group g's parameters
//   param_groups.<g>.<option> float64 scalar per option (lr, momentum, ...;
//                             flags as 0 or 1)
//   state.<i>.step            int64 scalar: steps taken by parameter i
//   state.<i>.<buffer>        the optimizer's buffers (exp_avg, ...), with
//                             PyTorch's names; absent before i's first step
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tapegrad/named_tensors.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::optim {

namespace detail {
class StateReader;
}

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient (the others are
  // skipped), in place. Allocates only on a parameter's first step.
  void step();
  // Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad();

  // "SGD", "Adam", ...: the first word of every error message.
  const std::string& name() const { return name_; }
  std::size_t num_groups() const { return groups_.size(); }
  const std::vector<Tensor>& parameters(std::size_t group = 0) const;

  // For schedules. set_learning_rate(lr) sets every group's.
  double learning_rate(std::size_t group = 0) const;
  void set_learning_rate(double lr);
  void set_learning_rate(std::size_t group, double lr);

  // A snapshot (copies of the buffers), named as in the header comment.
  NamedTensors state_dict() const;
  // Replaces options and state. Everything is checked first (names, shapes,
  // dtypes, option values, the group layout), so a bad state leaves the
  // optimizer unchanged. Missing or unexpected names are errors.
  void load_state_dict(const NamedTensors& state);

 protected:
  explicit Optimizer(std::string name) : name_(std::move(name)) {}
  // Checks a new group's parameters (defined, floating-point, leaves, not
  // already optimized) and appends them as group num_groups().
  void add_group_parameters(std::vector<Tensor> parameters);
  // `group`, or an out_of_range error naming the optimizer.
  std::size_t check_group(std::size_t group) const;

 private:
  // What the typed layer (BasicOptimizer) provides.
  virtual double group_learning_rate(std::size_t group) const = 0;
  virtual void set_group_learning_rate(std::size_t group, double lr) = 0;
  virtual void step_parameter(std::size_t group, Tensor& parameter, const Tensor& grad) = 0;
  virtual void save_options(std::size_t group, const std::string& prefix, NamedTensors& out) const = 0;
  virtual void save_state(std::size_t group, const Tensor& parameter, const std::string& prefix,
                          NamedTensors& out) const = 0;
  // Reads and checks options and state without changing anything; returns
  // the action that installs them.
  virtual std::function<void()> read_state(detail::StateReader& reader) = 0;

  // A captured step (capture.hpp) replays kernels that point into this
  // optimizer: it checks first that the optimizer lives and that its groups
  // and state were not replaced since.
  void add_capture_guard();

  std::string name_;
  std::shared_ptr<const int> alive_ = std::make_shared<const int>(0);
  std::uint64_t layout_version_ = 0;
  std::vector<std::vector<Tensor>> groups_;
  std::unordered_map<const TensorImpl*, std::size_t> members_;  // parameter -> flat index
};

}  // namespace tapegrad::optim
