#include "tapegrad/nn/module.hpp"

#include <cstring>
#include <map>
#include <ostream>

#include "tapegrad/error.hpp"
#include "tapegrad/storage.hpp"

namespace tapegrad::nn {

namespace {

void check_new_name(const std::string& name, const char* what) {
  if (name.empty() || name.find('.') != std::string::npos) {
    throw_invalid("register", what, " name '", name, "' must be non-empty and contain no '.'");
  }
}

// Swaps the tensor's buffer for a converted copy, keeping the TensorImpl
// (and so every handle to it) alive.
void convert_in_place(const Tensor& tensor, DType dtype) {
  if (tensor.dtype() == dtype) return;
  Tensor converted = tensor.detach().to(dtype);
  TensorImpl& impl = *tensor.impl();
  impl.storage = converted.impl()->storage;
  impl.dtype = dtype;
  impl.grad.reset();
}

}  // namespace

void Module::check_unused(const std::string& name) const {
  auto taken = [&](const auto& named) {
    for (const auto& entry : named) {
      if (entry.first == name) return true;
    }
    return false;
  };
  if (taken(parameters_) || taken(buffers_) || taken(children_)) {
    throw_invalid("register", "name '", name, "' is already taken in ", type_name_);
  }
}

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  check_new_name(name, "parameter");
  check_unused(name);
  if (!value.defined()) throw_invalid("register_parameter", "parameter '", name, "' is undefined");
  value.requires_grad_();
  if (value.name().empty()) value.set_name(name);
  parameters_.emplace_back(name, value);
  return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  check_new_name(name, "buffer");
  check_unused(name);
  if (!value.defined()) throw_invalid("register_buffer", "buffer '", name, "' is undefined");
  if (value.name().empty()) value.set_name(name);
  buffers_.emplace_back(name, value);
  return value;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name, "module");
  check_unused(name);
  if (!module) throw_invalid("register_module", "module '", name, "' is null");
  // Qualify the tensor names the child gave itself ("weight" -> "0.weight");
  // a name the user chose (it differs from the path) is kept.
  for (auto& [path, tensor] : module->state_dict()) {
    if (tensor.name() == path) tensor.set_name(name + "." + path);
  }
  children_.emplace_back(name, std::move(module));
}

void Module::collect(const std::string& prefix, bool parameters, bool buffers, NamedTensors& out) const {
  if (parameters) {
    for (const auto& [name, tensor] : parameters_) out.emplace_back(prefix + name, tensor);
  }
  if (buffers) {
    for (const auto& [name, tensor] : buffers_) out.emplace_back(prefix + name, tensor);
  }
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", parameters, buffers, out);
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, tensor] : named_parameters()) out.push_back(tensor);
  return out;
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, false, out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, true, out);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect("", true, true, out);
  return out;
}

void Module::load_state_dict(const NamedTensors& state) {
  const NamedTensors own = state_dict();
  std::map<std::string, const Tensor*> incoming;
  for (const auto& [name, tensor] : state) {
    if (!incoming.emplace(name, &tensor).second) throw_invalid("load_state_dict", "name '", name, "' appears twice");
  }
  // Validate everything first: a failed load must leave the module as it was.
  for (const auto& [name, tensor] : own) {
    auto it = incoming.find(name);
    if (it == incoming.end()) throw_invalid("load_state_dict", "missing '", name, "' ", tensor.shape().str());
    const Tensor& value = *it->second;
    if (!value.defined() || value.shape() != tensor.shape() || value.dtype() != tensor.dtype()) {
      throw_invalid("load_state_dict", "'", name, "' is ", value.defined() ? dtype_name(value.dtype()) : "undefined",
                    " ", value.shape().str(), ", the module expects ", dtype_name(tensor.dtype()), " ",
                    tensor.shape().str());
    }
    incoming.erase(it);
  }
  if (!incoming.empty()) throw_invalid("load_state_dict", "unexpected '", incoming.begin()->first, "'");
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, tensor] : state) by_name[name] = &tensor;
  for (const auto& [name, tensor] : own) {
    const Tensor& value = *by_name[name];
    tensor.impl()->storage->bump_version();
    std::memcpy(tensor.raw_data(), value.raw_data(),
                static_cast<std::size_t>(tensor.numel()) * dtype_size(tensor.dtype()));
  }
}

void Module::collect_parameter_slots(const std::string& prefix, std::vector<std::pair<std::string, Tensor*>>& out) {
  for (auto& [name, tensor] : parameters_) out.emplace_back(prefix + name, &tensor);
  for (auto& [name, child] : children_) child->collect_parameter_slots(prefix + name + ".", out);
}

NamedTensors Module::replace_parameters(const NamedTensors& replacements) {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_parameter_slots("", slots);
  std::map<std::string, Tensor*> by_name(slots.begin(), slots.end());
  // Validate everything first: a failed call must leave the module as it was.
  std::vector<Tensor*> targets;
  std::map<std::string, bool> seen;
  for (const auto& [name, value] : replacements) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw_invalid("replace_parameters", str(), " has no parameter '", name, "'");
    if (!seen.emplace(name, true).second) throw_invalid("replace_parameters", "name '", name, "' appears twice");
    const Tensor& own = *it->second;
    if (!value.defined() || value.shape() != own.shape() || value.dtype() != own.dtype()) {
      throw_invalid("replace_parameters", "'", name, "' is ", value.defined() ? dtype_name(value.dtype()) : "undefined",
                    " ", value.shape().str(), ", the module expects ", dtype_name(own.dtype()), " ", own.shape().str());
    }
    targets.push_back(it->second);
  }
  NamedTensors previous;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    previous.emplace_back(replacements[i].first, *targets[i]);
    *targets[i] = replacements[i].second;
  }
  return previous;
}

namespace {

const Tensor& find_local(const NamedTensors& tensors, const std::string& name, const Module& module, const char* what) {
  for (const auto& [own, tensor] : tensors) {
    if (own == name) return tensor;
  }
  throw_invalid(module.str().c_str(), "has no ", what, " '", name, "'");
}

}  // namespace

const Tensor& Module::parameter(const std::string& name) const {
  return find_local(parameters_, name, *this, "parameter");
}

const Tensor& Module::buffer(const std::string& name) const { return find_local(buffers_, name, *this, "buffer"); }

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(DType dtype) {
  if (!is_floating(dtype)) throw_invalid("Module::to", "modules hold floating-point tensors, not ", dtype_name(dtype));
  for (auto& [name, tensor] : state_dict()) {
    if (is_floating(tensor.dtype())) convert_in_place(tensor, dtype);
  }
}

void Module::zero_grad() {
  for (Tensor& parameter : parameters()) parameter.zero_grad();
}

Tensor functional_call(Module& module, const NamedTensors& parameters, const Tensor& input) {
  // Restores the original handles on every exit, including a throwing forward.
  struct Restore {
    Module& module;
    NamedTensors previous;
    ~Restore() { module.replace_parameters(previous); }
  } restore{module, module.replace_parameters(parameters)};
  return module.forward(input);
}

Tensor functional_call(Module& module, const std::vector<Tensor>& parameters, const Tensor& input) {
  NamedTensors named = module.named_parameters();
  if (parameters.size() != named.size()) {
    throw_invalid("functional_call", module.str(), " has ", named.size(), " parameters, got ", parameters.size());
  }
  for (std::size_t i = 0; i < named.size(); ++i) named[i].second = parameters[i];
  return functional_call(module, named, input);
}

namespace {

void print_tree(std::ostream& out, const Module& module, int depth) {
  out << module.str();
  for (const auto& [name, child] : module.children()) {
    out << "\n" << std::string(static_cast<std::size_t>(2 * (depth + 1)), ' ') << "(" << name << "): ";
    print_tree(out, *child, depth + 1);
  }
}

}  // namespace

std::ostream& operator<<(std::ostream& out, const Module& module) {
  print_tree(out, module, 0);
  return out;
}

}  // namespace tapegrad::nn
