#pragma once
// Sequential: modules applied one after another.
#include <cstddef>
#include <memory>
#include <string>

#include "tapegrad/nn/module.hpp"

namespace tapegrad::nn {

/// y = m_k(... m_1(m_0(x))); an empty Sequential is the identity. Children
/// added without a name are named by their position ("0", "1", ...), so
/// parameters are "0.weight", "2.bias", ...
///
///   auto model = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(784, 256),
///                                                 std::make_shared<nn::ReLU>(),
///                                                 std::make_shared<nn::Linear>(256, 10));
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  template <class... Modules>
  explicit Sequential(std::shared_ptr<Modules>... modules) : Sequential() {
    (add(std::move(modules)), ...);
  }

  // Appends a module named by its position; returns *this for chaining.
  Sequential& add(std::shared_ptr<Module> module);
  // Appends a module under a name of your choice (unique, no '.').
  Sequential& add(const std::string& name, std::shared_ptr<Module> module);

  Tensor forward(const Tensor& input) override;

  std::size_t size() const { return children().size(); }
  bool empty() const { return children().empty(); }
  // The i-th module (bounds-checked).
  std::shared_ptr<Module> operator[](std::size_t index) const;
  // The i-th module as a T; throws std::invalid_argument if it is not one.
  template <class T>
  std::shared_ptr<T> at(std::size_t index) const {
    auto typed = std::dynamic_pointer_cast<T>((*this)[index]);
    if (!typed) throw_wrong_type(index);
    return typed;
  }

 private:
  [[noreturn]] void throw_wrong_type(std::size_t index) const;
};

}  // namespace tapegrad::nn
