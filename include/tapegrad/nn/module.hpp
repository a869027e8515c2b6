#pragma once
// Module: the base of every layer and model. It owns named parameters,
// named buffers (state that is saved but not trained, like BatchNorm's
// running statistics) and named child modules, recursively.
//
// Parameters are ordinary Tensor handles: the module and its optimizer
// share them, and to(dtype) converts them in place so that handles held
// elsewhere (an optimizer's) stay valid.
//
// Layers read their own parameters through parameter(name) at every
// forward, never through a cached copy of the handle, so that
// replace_parameters / functional_call can run a model on other tensors
// (gradient-checking a whole model, or meta-learning).
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/named_tensors.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::nn {

using tapegrad::NamedTensors;

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

  // Temporarily runs the module on other tensors: rebinds the named
  // parameters (a subset is fine) to the given handles without copying, and
  // returns the handles they replace so the caller can put them back. Names,
  // shapes and dtypes are all checked before anything changes. Handles held
  // elsewhere (an optimizer's) keep pointing at the replaced tensors.
  NamedTensors replace_parameters(const NamedTensors& replacements);

  // This module's own parameter or buffer by local name (not recursive).
  const Tensor& parameter(const std::string& name) const;
  const Tensor& buffer(const std::string& name) const;

  // Training mode (dropout active, batch statistics) vs evaluation mode.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Converts every parameter and buffer in place (handles stay valid).
  void to(DType dtype);
  void zero_grad();

  const std::string& type_name() const { return type_name_; }
  // One line for messages and printing, e.g. "Linear(784 -> 256)"; layers
  // with options override it. Errors of a layer start with it.
  virtual std::string str() const { return type_name_; }
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

 protected:
  // Registers a parameter (marked requires_grad) and names it for graphs.
  // Registering a module as a child prefixes the names of its tensors with
  // the child's name, so a parameter is named by its full dotted path
  // ("0.weight") in graph pictures, unless the user named it otherwise.
  Tensor register_parameter(const std::string& name, Tensor value);
  Tensor register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  // Parameters, buffers and children of one module share one namespace.
  void check_unused(const std::string& name) const;
  void collect(const std::string& prefix, bool parameters, bool buffers, NamedTensors& out) const;
  void collect_parameter_slots(const std::string& prefix, std::vector<std::pair<std::string, Tensor*>>& out);

  std::string type_name_;
  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// module.forward(input) with the named parameters replaced by `parameters`
// for the duration of the call (restored even if forward throws).
Tensor functional_call(Module& module, const NamedTensors& parameters, const Tensor& input);
// The same with every parameter given, in named_parameters() order. With
// gradcheck's leaf copies as the parameters, a whole model is checked:
//   std::vector<Tensor> inputs{x};  // then every parameter
//   for (const Tensor& p : model->parameters()) inputs.push_back(p);
//   gradcheck([&](const std::vector<Tensor>& in) {
//     return functional_call(*model, std::vector<Tensor>(in.begin() + 1, in.end()), in[0]);
//   }, inputs);
Tensor functional_call(Module& module, const std::vector<Tensor>& parameters, const Tensor& input);

// The module tree, one module per line, children indented under their name:
//   Sequential
//     (0): Linear(4 -> 8)
//     (1): ReLU
std::ostream& operator<<(std::ostream& out, const Module& module);

}  // namespace tapegrad::nn
