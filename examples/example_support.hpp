#pragma once
// Small helpers shared by the examples: command-line flags and choosing an
// optimizer by name.
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace examples {

// "--name value" and "--flag" parsing with clear errors.
class Flags {
 public:
  Flags(int argc, char** argv) : args_(argv + 1, argv + argc), program_(argv[0]) {}

  // The value after --name, or `fallback` when absent.
  std::string get(const std::string& name, const std::string& fallback) {
    for (std::size_t i = 0; i < args_.size(); ++i) {
      if (args_[i] == "--" + name) {
        if (i + 1 >= args_.size()) throw std::invalid_argument("--" + name + " needs a value");
        std::string value = args_[i + 1];
        args_.erase(args_.begin() + static_cast<long>(i), args_.begin() + static_cast<long>(i) + 2);
        return value;
      }
    }
    return fallback;
  }
  double number(const std::string& name, double fallback) {
    const std::string text = get(name, "");
    if (text.empty()) return fallback;
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || *end != '\0') throw std::invalid_argument("--" + name + ": not a number: " + text);
    return value;
  }
  bool flag(const std::string& name) {
    for (std::size_t i = 0; i < args_.size(); ++i) {
      if (args_[i] == "--" + name) {
        args_.erase(args_.begin() + static_cast<long>(i));
        return true;
      }
    }
    return false;
  }
  // Call after reading every flag: anything left over is a mistake.
  void finish() const {
    if (!args_.empty()) throw std::invalid_argument("unknown argument '" + args_.front() + "' (see --help)");
  }

 private:
  std::vector<std::string> args_;
  std::string program_;
};

// sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw with learning rate
// `lr` and the optimizers' other defaults (momentum 0.9 where it applies).
inline std::unique_ptr<tapegrad::optim::Optimizer> make_optimizer(const std::string& name,
                                                                   std::vector<tapegrad::Tensor> parameters,
                                                                   double lr, double weight_decay = 0) {
  using namespace tapegrad::optim;
  if (name == "sgd") return std::make_unique<SGD>(parameters, SGDOptions{.lr = lr, .weight_decay = weight_decay});
  if (name == "momentum") {
    return std::make_unique<SGD>(parameters, SGDOptions{.lr = lr, .momentum = 0.9, .weight_decay = weight_decay});
  }
  if (name == "nesterov") {
    return std::make_unique<SGD>(
        parameters, SGDOptions{.lr = lr, .momentum = 0.9, .weight_decay = weight_decay, .nesterov = true});
  }
  if (name == "adagrad") {
    return std::make_unique<Adagrad>(parameters, AdagradOptions{.lr = lr, .weight_decay = weight_decay});
  }
  if (name == "rmsprop") {
    return std::make_unique<RMSprop>(parameters, RMSpropOptions{.lr = lr, .weight_decay = weight_decay});
  }
  if (name == "adam") return std::make_unique<Adam>(parameters, AdamOptions{.lr = lr, .weight_decay = weight_decay});
  if (name == "adamw") {
    return std::make_unique<AdamW>(parameters, AdamWOptions{.lr = lr, .weight_decay = weight_decay});
  }
  throw std::invalid_argument("unknown optimizer '" + name +
                              "' (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw)");
}

}  // namespace examples
