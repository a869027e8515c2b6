#include "tapegrad/io/checkpoint.hpp"

#include <stdexcept>
#include <string_view>
#include <utility>

#include "tapegrad/error.hpp"
#include "tapegrad/io/npz.hpp"

namespace tapegrad::io {

namespace {

constexpr std::string_view kVersionKey = "tapegrad/checkpoint_version";
constexpr std::string_view kModelPrefix = "model/";
constexpr std::string_view kOptimizerPrefix = "optimizer/";

struct CheckpointParts {
  NamedTensors model;
  NamedTensors optimizer;
};

template <class... Parts>
[[noreturn]] void fail(const std::string& path, const Parts&... parts) {
  throw_runtime("load_checkpoint", "'", path, "': ", parts...);
}

// Rethrows the exception being handled with `prefix` before its message,
// keeping its standard type; anything else propagates unchanged.
[[noreturn]] void rethrow_with_prefix(const std::string& prefix) {
  try {
    throw;
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(prefix + error.what());
  } catch (const std::out_of_range& error) {
    throw std::out_of_range(prefix + error.what());
  } catch (const std::runtime_error& error) {
    throw std::runtime_error(prefix + error.what());
  }
}

std::string context(const std::string& path) { return "load_checkpoint: '" + path + "': "; }

// Reads and checks the file; splits its entries into model and optimizer
// state, prefixes removed.
CheckpointParts read_checkpoint(const std::string& path) {
  const NamedTensors entries = load_npz(path);
  const Tensor* version = nullptr;
  for (const auto& [name, tensor] : entries) {
    if (name == kVersionKey) version = &tensor;
  }
  if (version == nullptr) {
    fail(path, "not a tapegrad checkpoint (it has no '", kVersionKey,
         "' entry); a plain .npz of tensors loads with load_npz");
  }
  if (version->dtype() != DType::Int64 || version->dim() != 0) {
    fail(path, "'", kVersionKey, "' is ", dtype_name(version->dtype()), " ", version->shape().str(),
         ", expected an int64 scalar");
  }
  const std::int64_t number = *version->data<std::int64_t>();
  if (number != kCheckpointVersion) {
    fail(path, "checkpoint version ", number, " is not supported (this tapegrad reads version ", kCheckpointVersion,
         ")");
  }
  CheckpointParts parts;
  for (const auto& [name, tensor] : entries) {
    if (name == kVersionKey) continue;
    if (name.starts_with(kModelPrefix)) {
      parts.model.emplace_back(name.substr(kModelPrefix.size()), tensor);
    } else if (name.starts_with(kOptimizerPrefix)) {
      parts.optimizer.emplace_back(name.substr(kOptimizerPrefix.size()), tensor);
    } else {
      fail(path, "unexpected entry '", name, "' (a checkpoint holds '", kVersionKey,
           "', 'model/<name>' and 'optimizer/<name>')");
    }
  }
  return parts;
}

}  // namespace

void save_checkpoint(const std::string& path, const nn::Module& model, const NamedTensors& optimizer_state) {
  NamedTensors entries;
  entries.emplace_back(std::string(kVersionKey), from_indices({kCheckpointVersion}, Shape{}));
  for (const auto& [name, tensor] : model.state_dict()) entries.emplace_back(std::string(kModelPrefix) + name, tensor);
  for (const auto& [name, tensor] : optimizer_state) {
    entries.emplace_back(std::string(kOptimizerPrefix) + name, tensor);
  }
  save_npz(path, entries);
}

NamedTensors load_checkpoint(const std::string& path, nn::Module& model) {
  CheckpointParts parts = read_checkpoint(path);
  try {
    // Checks every name, shape and dtype before writing anything.
    model.load_state_dict(parts.model);
  } catch (...) {
    rethrow_with_prefix(context(path));
  }
  return std::move(parts.optimizer);
}

void load_checkpoint(const std::string& path, nn::Module& model,
                     const std::function<void(const NamedTensors&)>& load_optimizer_state) {
  CheckpointParts parts = read_checkpoint(path);
  // The model's current values, to undo its load if the optimizer refuses
  // its part: the two load together or not at all.
  NamedTensors before;
  for (const auto& [name, tensor] : model.state_dict()) before.emplace_back(name, tensor.detach().clone());
  try {
    model.load_state_dict(parts.model);
  } catch (...) {
    rethrow_with_prefix(context(path));
  }
  try {
    load_optimizer_state(parts.optimizer);
  } catch (...) {
    model.load_state_dict(before);
    rethrow_with_prefix(context(path) + "optimizer state: ");
  }
}

}  // namespace tapegrad::io
