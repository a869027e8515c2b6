#include "tapegrad/nn/sequential.hpp"

#include "tapegrad/error.hpp"

namespace tapegrad::nn {

Sequential& Sequential::add(std::shared_ptr<Module> module) { return add(std::to_string(size()), std::move(module)); }

Sequential& Sequential::add(const std::string& name, std::shared_ptr<Module> module) {
  register_module(name, std::move(module));
  return *this;
}

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  for (const auto& [name, child] : children()) x = child->forward(x);
  return x;
}

std::shared_ptr<Module> Sequential::operator[](std::size_t index) const {
  if (index >= size()) throw_out_of_range("Sequential", "index ", index, " is out of range for ", size(), " modules");
  return children()[index].second;
}

void Sequential::throw_wrong_type(std::size_t index) const {
  throw_invalid("Sequential::at", "module ", index, " is ", children()[index].second->str(),
                ", not the type asked for");
}

}  // namespace tapegrad::nn
