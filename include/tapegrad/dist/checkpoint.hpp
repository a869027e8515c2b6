#pragma once
// Checkpoints in a data-parallel job: rank 0 writes the file (atomically, as
// io::save_checkpoint), rank 0 reads it and every rank gets its contents
// over MPI, so only rank 0 needs to see the file. Collective: every rank
// calls them at the same point. A failure on rank 0 (disk full, a file that
// is not a checkpoint, a model that does not match) is thrown on every rank,
// rank 0 with its original exception and the others with its message.
#include <string>

#include "tapegrad/io/checkpoint.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/optim/optimizer.hpp"

namespace tapegrad::dist {

void save_checkpoint(const std::string& path, const nn::Module& model, const NamedTensors& optimizer_state = {});
void save_checkpoint(const std::string& path, const nn::Module& model, const optim::Optimizer& optimizer);

// Model and optimizer state together, all or nothing (io::load_checkpoint's
// rules on rank 0).
void load_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer& optimizer);
// The model only; returns the optimizer entries (the same on every rank).
NamedTensors load_checkpoint(const std::string& path, nn::Module& model);

}  // namespace tapegrad::dist
