#pragma once
// Module: the base of every layer and model. It owns named parameters,
// named buffers (state that is saved but not trained, like BatchNorm's
// running statistics) and named child modules, recursively.
//
// Parameters are ordinary Tensor handles: the module and its optimizer
// share them, and to(dtype) converts them in place so that handles held
// elsewhere (an optimizer's) stay valid.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& input) = 0;
  Tensor operator()(const Tensor& input) { return forward(input); }

  // Recursive, in registration order; names are dotted paths ("0.weight").
  std::vector<Tensor> parameters() const;
  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  // Parameters and buffers together: what a checkpoint saves.
  NamedTensors state_dict() const;
  // Copies values into the module's tensors. Every name, shape and dtype is
  // checked before anything is written, so a bad state leaves the module
  // unchanged. Missing or unexpected names are errors.
  void load_state_dict(const NamedTensors& state);

  // Training mode (dropout active, batch statistics) vs evaluation mode.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Converts every parameter and buffer in place (handles stay valid).
  void to(DType dtype);
  void zero_grad();

  const std::string& type_name() const { return type_name_; }
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

 protected:
  // Registers a parameter (marked requires_grad) and names it for graphs.
  Tensor register_parameter(const std::string& name, Tensor value);
  Tensor register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void collect(const std::string& prefix, bool parameters, bool buffers, NamedTensors& out) const;

  std::string type_name_;
  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace tapegrad::nn
