#pragma once
// The MLP builder: a Sequential of Linear layers with activations and
// optional batch normalisation and dropout between them.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "tapegrad/nn/activations.hpp"
#include "tapegrad/nn/batchnorm.hpp"
#include "tapegrad/nn/linear.hpp"
#include "tapegrad/nn/sequential.hpp"

namespace tapegrad::nn {

// Makes a fresh module each call (one per hidden layer).
using ModuleFactory = std::function<std::shared_ptr<Module>()>;

struct MLPOptions {
  // After every hidden layer.
  ModuleFactory activation = [] { return std::make_shared<ReLU>(); };
  // After the last layer; empty (the default): none, the model returns logits.
  ModuleFactory output_activation{};
  // p of a Dropout after each hidden activation; 0: none.
  double dropout = 0;
  // A BatchNorm1d between each hidden Linear and its activation: φ(BN(Wx + b)).
  // b is then redundant with β (BN subtracts it again; its gradient is 0 in
  // training); it is kept to match the lectures, linear.bias = false drops it.
  bool batch_norm = false;
  BatchNormOptions batch_norm_options{};
  // Bias and initialisers of every Linear (default: Linear's).
  LinearOptions linear{};
};

/// sizes = {n_in, h_1, ..., h_k, n_out}: for each hidden size
///   Linear(n -> h), [BatchNorm1d(h)], activation, [Dropout(p)]
/// then Linear(h_k -> n_out) and the optional output activation, in one
/// Sequential (so parameters are "0.weight", "0.bias", "1.weight", ...).
/// E.g. mlp({784, 256, 10}) is Linear(784 -> 256), ReLU, Linear(256 -> 10).
std::shared_ptr<Sequential> mlp(const std::vector<std::int64_t>& sizes, const MLPOptions& options = {});

}  // namespace tapegrad::nn
