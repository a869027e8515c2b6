#pragma once
// Checkpoints: a model's state and, optionally, an optimizer's, in one .npz
// file (io/npz.hpp) that numpy.load opens. Its entries:
//
//   tapegrad/checkpoint_version   int64 scalar, kCheckpointVersion
//   model/<name>                  each entry of Module::state_dict()
//                                 (parameters and buffers, "fc.weight", ...)
//   optimizer/<name>              each entry of the optimizer's state_dict()
//                                 ("state.0.exp_avg", ...); none without one
//
// In Python: np.load("ckpt.npz")["model/fc.weight"].
//
// Saving is atomic and removes the temporary files that earlier saves killed
// mid-write left behind (see save_npz). Loading checks everything before changing
// anything: a file that is corrupt, is not a checkpoint, or whose names,
// shapes or dtypes do not match the model (or the optimizer) throws and
// leaves both as they were.
#include <concepts>
#include <cstdint>
#include <functional>
#include <string>

#include "tapegrad/nn/module.hpp"

namespace tapegrad::io {

inline constexpr std::int64_t kCheckpointVersion = 1;

// What a checkpoint needs of an optimizer: optim::Optimizer satisfies it, and
// so does anything else with a state as named tensors.
template <class T>
concept HasStateDict = requires(const T& constant, T& mutable_object, const NamedTensors& state) {
  { constant.state_dict() } -> std::convertible_to<NamedTensors>;
  mutable_object.load_state_dict(state);
};

// Saves the model's state_dict() and, when given, an optimizer's state.
void save_checkpoint(const std::string& path, const nn::Module& model, const NamedTensors& optimizer_state = {});

template <HasStateDict Optimizer>
void save_checkpoint(const std::string& path, const nn::Module& model, const Optimizer& optimizer) {
  save_checkpoint(path, model, optimizer.state_dict());
}

// Loads the model's state through Module::load_state_dict (every name, shape
// and dtype must match) and returns the checkpoint's optimizer entries with
// the "optimizer/" prefix removed (empty when it has none), for a caller that
// restores its optimizer itself. Errors name the file.
NamedTensors load_checkpoint(const std::string& path, nn::Module& model);

// Loads the model's state and hands the optimizer entries to
// `load_optimizer_state`, all or nothing: if that throws, the model is
// restored to its state before the call and the error propagates.
void load_checkpoint(const std::string& path, nn::Module& model,
                     const std::function<void(const NamedTensors&)>& load_optimizer_state);

template <HasStateDict Optimizer>
void load_checkpoint(const std::string& path, nn::Module& model, Optimizer& optimizer) {
  load_checkpoint(path, model, [&optimizer](const NamedTensors& state) { optimizer.load_state_dict(state); });
}

}  // namespace tapegrad::io
