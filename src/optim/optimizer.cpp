#include "tapegrad/optim/optimizer.hpp"

#include <numeric>

#include "tapegrad/autograd.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/optim/basic_optimizer.hpp"
#include "tapegrad/storage.hpp"

namespace tapegrad::optim {

namespace {

std::string describe(const Tensor& t) { return std::string(dtype_name(t.dtype())) + " " + t.shape().str(); }

std::string format_indices(const std::vector<std::int64_t>& indices) {
  std::string out = "[";
  for (std::size_t k = 0; k < indices.size(); ++k) out += (k ? ", " : "") + std::to_string(indices[k]);
  return out + "]";
}

}  // namespace

void Optimizer::step() {
  std::size_t index = 0;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    for (Tensor& parameter : groups_[g]) {
      const Tensor grad = parameter.grad();
      if (grad.defined()) {
        // backward and set_grad guarantee this; the check keeps a bad
        // gradient from ever reaching the raw loops.
        if (grad.shape() != parameter.shape() || grad.dtype() != parameter.dtype()) {
          throw_invalid(name_.c_str(), "the gradient of parameter ", index, " is ", describe(grad),
                        ", the parameter is ", describe(parameter));
        }
        if (capturing()) {
          add_capture_guard();
          const long written_before = tapegrad::detail::capture_last_write(parameter);
          step_parameter(g, parameter, grad);
          if (tapegrad::detail::capture_last_write(parameter) == written_before) {
            throw_runtime("capture", name_, " updates its parameters outside any replayable kernel: ", name_,
                          " cannot be captured yet (write its update with tapegrad::launch)");
          }
        } else {
          step_parameter(g, parameter, grad);
        }
        // Saved tensors compare versions: a replayed step moves them on too.
        launch("optimizer step", [storage = parameter.impl()->storage.get()] { storage->bump_version(); });
      }
      ++index;
    }
  }
}

void Optimizer::add_capture_guard() {
  tapegrad::detail::capture_add_guard(this, [alive = std::weak_ptr<const int>(alive_), self = this,
                                             layout = layout_version_, name = name_] {
    if (alive.expired()) {
      throw_runtime("replay", "the optimizer ", name, " that the step uses was destroyed after capture");
    }
    if (self->layout_version_ != layout) {
      throw_runtime("replay", name,
                    "'s groups or state were replaced after capture (load_state_dict, add_param_group); capture the "
                    "step again");
    }
  });
}

void Optimizer::zero_grad() {
  for (auto& group : groups_) {
    for (Tensor& parameter : group) parameter.zero_grad();
  }
}

std::size_t Optimizer::check_group(std::size_t group) const {
  if (group >= groups_.size()) {
    throw_out_of_range(name_.c_str(), "group ", group, " is out of range: the optimizer has ", groups_.size(),
                       groups_.size() == 1 ? " group" : " groups");
  }
  return group;
}

const std::vector<Tensor>& Optimizer::parameters(std::size_t group) const { return groups_[check_group(group)]; }

double Optimizer::learning_rate(std::size_t group) const { return group_learning_rate(check_group(group)); }

void Optimizer::set_learning_rate(double lr) {
  for (std::size_t g = 0; g < groups_.size(); ++g) set_group_learning_rate(g, lr);
}

void Optimizer::set_learning_rate(std::size_t group, double lr) { set_group_learning_rate(check_group(group), lr); }

void Optimizer::add_group_parameters(std::vector<Tensor> parameters) {
  const char* who = name_.c_str();
  if (parameters.empty()) throw_invalid(who, "got an empty parameter list");
  // Everything is checked before the group is added.
  std::unordered_map<const TensorImpl*, std::size_t> added;
  for (std::size_t k = 0; k < parameters.size(); ++k) {
    const Tensor& p = parameters[k];
    const std::size_t index = members_.size() + k;
    if (!p.defined()) throw_invalid(who, "parameter ", index, " is undefined");
    if (!is_floating(p.dtype())) {
      throw_invalid(who, "parameter ", index, " is ", describe(p), "; only floating-point tensors can be optimized");
    }
    if (!p.is_leaf()) {
      throw_invalid(who, "parameter ", index, " is not a leaf (it was computed by '", p.grad_fn()->name(),
                    "'); optimize the tensors it was computed from");
    }
    for (const auto* known : {&members_, &added}) {
      if (const auto earlier = known->find(p.impl()); earlier != known->end()) {
        throw_invalid(who, "parameter ", index, " is the same tensor as parameter ", earlier->second,
                      "; a tensor may appear only once, in one group");
      }
    }
    added.emplace(p.impl(), index);
  }
  members_.insert(added.begin(), added.end());
  groups_.push_back(std::move(parameters));
  ++layout_version_;
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out;
  std::int64_t first = 0;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const std::string prefix = "param_groups." + std::to_string(g) + ".";
    std::vector<std::int64_t> indices(groups_[g].size());
    std::iota(indices.begin(), indices.end(), first);
    first += static_cast<std::int64_t>(indices.size());
    out.emplace_back(prefix + "params", from_indices(indices, Shape{static_cast<std::int64_t>(indices.size())}));
    save_options(g, prefix, out);
  }
  std::size_t index = 0;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    for (const Tensor& parameter : groups_[g]) save_state(g, parameter, "state." + std::to_string(index++) + ".", out);
  }
  return out;
}

void Optimizer::load_state_dict(const NamedTensors& state) {
  detail::StateReader reader(name_ + ".load_state_dict", state);
  // The saved groups must hold the same numbers of parameters: state.<i> is
  // matched to this optimizer's parameter i.
  std::int64_t first = 0;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const std::string name = "param_groups." + std::to_string(g) + ".params";
    std::vector<std::int64_t> expected(groups_[g].size());
    std::iota(expected.begin(), expected.end(), first);
    first += static_cast<std::int64_t>(expected.size());
    const Tensor& saved = reader.take(name);
    const bool is_list = saved.dtype() == DType::Int64 && saved.dim() == 1;
    if (!is_list ||
        std::vector<std::int64_t>(saved.data<std::int64_t>(), saved.data<std::int64_t>() + saved.numel()) != expected) {
      const std::string got = is_list ? format_indices(std::vector<std::int64_t>(
                                            saved.data<std::int64_t>(), saved.data<std::int64_t>() + saved.numel()))
                                      : describe(saved);
      throw_invalid(reader.op().c_str(), "'", name, "' is ", got, ", but group ", g,
                    " of this optimizer holds parameters ", format_indices(expected));
    }
  }
  const std::function<void()> install = read_state(reader);
  reader.finish();
  install();
  ++layout_version_;
}

namespace detail {

StateReader::StateReader(std::string op, const NamedTensors& state) : op_(std::move(op)) {
  for (const auto& [name, tensor] : state) {
    if (!remaining_.emplace(name, &tensor).second) throw_invalid(op_.c_str(), "'", name, "' appears twice");
  }
}

bool StateReader::has_prefix(const std::string& prefix) const {
  const auto next = remaining_.lower_bound(prefix);
  return next != remaining_.end() && next->first.compare(0, prefix.size(), prefix) == 0;
}

const Tensor& StateReader::take(const std::string& name) {
  const auto found = remaining_.find(name);
  if (found == remaining_.end()) throw_invalid(op_.c_str(), "missing '", name, "'");
  const Tensor& tensor = *found->second;
  remaining_.erase(found);
  if (!tensor.defined()) throw_invalid(op_.c_str(), "'", name, "' is undefined");
  return tensor;
}

double StateReader::take_number(const std::string& name) {
  const Tensor& t = take(name);
  if (t.dtype() != DType::Float64 || t.dim() != 0) {
    throw_invalid(op_.c_str(), "'", name, "' must be a float64 scalar, got ", describe(t));
  }
  return t.item();
}

bool StateReader::take_flag(const std::string& name) {
  const double value = take_number(name);
  if (value != 0 && value != 1) throw_invalid(op_.c_str(), "'", name, "' must be 0 or 1, got ", value);
  return value == 1;
}

std::int64_t StateReader::take_count(const std::string& name) {
  const Tensor& t = take(name);
  if (t.dtype() != DType::Int64 || t.dim() != 0) {
    throw_invalid(op_.c_str(), "'", name, "' must be an int64 scalar, got ", describe(t));
  }
  const std::int64_t value = *t.data<std::int64_t>();
  if (value < 0) throw_invalid(op_.c_str(), "'", name, "' must be >= 0, got ", value);
  return value;
}

const Tensor& StateReader::take_like(const std::string& name, const Tensor& like) {
  const Tensor& t = take(name);
  if (t.dtype() != like.dtype() || t.shape() != like.shape()) {
    throw_invalid(op_.c_str(), "'", name, "' is ", describe(t), ", the parameter is ", describe(like));
  }
  return t;
}

std::vector<double> StateReader::take_numbers(const std::string& name, std::size_t size) {
  const Tensor& t = take(name);
  if (t.dtype() != DType::Float64 || t.dim() != 1 || t.numel() != static_cast<std::int64_t>(size)) {
    throw_invalid(op_.c_str(), "'", name, "' must be float64 [", size, "], got ", describe(t));
  }
  return t.to_vector();
}

void StateReader::finish() const {
  if (!remaining_.empty()) throw_invalid(op_.c_str(), "unexpected '", remaining_.begin()->first, "'");
}

bool prepare_buffer(Tensor& buffer, const Tensor& parameter, double fill) {
  // State made or converted once, not at every step: a captured program
  // keeps the buffer and does not replay its creation.
  const tapegrad::detail::CaptureSetupScope once;
  if (!buffer.defined()) {
    buffer = full(parameter.shape(), fill, parameter.dtype());
    return true;
  }
  if (buffer.dtype() != parameter.dtype()) buffer = buffer.to(parameter.dtype());
  return false;
}

}  // namespace detail

}  // namespace tapegrad::optim
