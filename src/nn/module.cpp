#include "tapegrad/nn/module.hpp"

#include <cstring>
#include <map>

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

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  check_new_name(name, "parameter");
  if (!value.defined()) throw_invalid("register_parameter", "parameter '", name, "' is undefined");
  value.requires_grad_();
  if (value.name().empty()) value.set_name(name);
  parameters_.emplace_back(name, value);
  return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  check_new_name(name, "buffer");
  if (!value.defined()) throw_invalid("register_buffer", "buffer '", name, "' is undefined");
  buffers_.emplace_back(name, value);
  return value;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name, "module");
  if (!module) throw_invalid("register_module", "module '", name, "' is null");
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
    std::memcpy(tensor.raw_data(), value.raw_data(), static_cast<std::size_t>(tensor.numel()) * dtype_size(tensor.dtype()));
  }
}

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

}  // namespace tapegrad::nn
