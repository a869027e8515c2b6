#include "tapegrad/dist/checkpoint.hpp"

#include <exception>
#include <functional>
#include <stdexcept>
#include <string>

#include "communicator.hpp"
#include "tapegrad/dist/collectives.hpp"
#include "tapegrad/dist/environment.hpp"

namespace tapegrad::dist {

namespace {

// Runs `work` on rank 0 and tells every rank how it went: rank 0 rethrows
// its exception, the others throw std::runtime_error with its message.
void on_rank_zero(const char* op, const std::function<void()>& work) {
  const MPI_Comm comm = detail::communicator(op);
  std::exception_ptr failure;
  std::string message;
  if (rank() == 0) {
    try {
      work();
    } catch (const std::exception& error) {
      failure = std::current_exception();
      message = error.what();
    }
  }
  long long length = rank() == 0 ? (failure ? static_cast<long long>(message.size()) + 1 : 0) : 0;
  detail::check(MPI_Bcast(&length, 1, MPI_LONG_LONG, 0, comm), op, "MPI_Bcast");
  if (length == 0) return;
  message.resize(static_cast<std::size_t>(length - 1));
  detail::check(MPI_Bcast(message.data(), static_cast<int>(length - 1), MPI_CHAR, 0, comm), op, "MPI_Bcast");
  if (failure) std::rethrow_exception(failure);
  throw std::runtime_error(std::string(op) + ": rank 0 failed: " + message);
}

}  // namespace

void save_checkpoint(const std::string& path, const nn::Module& model, const NamedTensors& optimizer_state) {
  on_rank_zero("dist::save_checkpoint", [&] { io::save_checkpoint(path, model, optimizer_state); });
}

void save_checkpoint(const std::string& path, const nn::Module& model, const optim::Optimizer& optimizer) {
  save_checkpoint(path, model, optimizer.state_dict());
}

NamedTensors load_checkpoint(const std::string& path, nn::Module& model) {
  NamedTensors optimizer_state;
  on_rank_zero("dist::load_checkpoint", [&] { optimizer_state = io::load_checkpoint(path, model); });
  broadcast_parameters(model);
  broadcast_named_tensors(optimizer_state);
  return optimizer_state;
}

void load_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer& optimizer) {
  NamedTensors optimizer_state;
  on_rank_zero("dist::load_checkpoint", [&] {
    io::load_checkpoint(path, model, [&](const NamedTensors& state) {
      optimizer.load_state_dict(state);
      optimizer_state = state;
    });
  });
  broadcast_parameters(model);
  broadcast_named_tensors(optimizer_state);
  if (rank() != 0) optimizer.load_state_dict(optimizer_state);
}

}  // namespace tapegrad::dist
