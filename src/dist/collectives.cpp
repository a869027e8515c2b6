#include "tapegrad/dist/collectives.hpp"

#include <cstring>
#include <string>

#include "communicator.hpp"
#include "tapegrad/dist/environment.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/storage.hpp"

namespace tapegrad::dist {

namespace {

void check_usable(const char* op, const Tensor& tensor) {
  if (!tensor.defined()) throw_invalid(op, "got an undefined tensor");
  if (capturing()) {
    throw_runtime(op,
                  "runs MPI on the host, which a replay of a captured step would not run again: call it "
                  "outside the captured step");
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean:
      return MPI_SUM;
    case ReduceOp::Max:
      return MPI_MAX;
    case ReduceOp::Min:
      return MPI_MIN;
  }
  return MPI_SUM;
}

int root_checked(const char* op, int root) {
  const int size = world_size();
  if (root < 0 || root >= size) throw_out_of_range(op, "root ", root, " is not a rank of this world of ", size);
  return root;
}

// MPI counts are int: a tensor beyond 2^31 - 1 elements goes in pieces.
template <class Call>
void in_pieces(const Tensor& tensor, Call call) {
  constexpr std::int64_t kPiece = std::int64_t{1} << 30;
  auto* bytes = static_cast<char*>(tensor.raw_data());
  const std::size_t element = dtype_size(tensor.dtype());
  for (std::int64_t start = 0; start < tensor.numel(); start += kPiece) {
    const std::int64_t count = std::min(kPiece, tensor.numel() - start);
    call(bytes + static_cast<std::size_t>(start) * element, static_cast<int>(count));
  }
}

void broadcast_bytes(void* data, int count, int root, const char* op) {
  detail::check(MPI_Bcast(data, count, MPI_BYTE, root, detail::communicator(op)), op, "MPI_Bcast");
}

}  // namespace

namespace detail {

void mark_written(const Tensor& tensor) {
  if (tensor.impl()->storage) tensor.impl()->storage->bump_version();
}

void broadcast_data(const Tensor& tensor, int root, const char* op) {
  const MPI_Comm comm = communicator(op);
  mark_written(tensor);
  in_pieces(tensor, [&](void* data, int count) {
    check(MPI_Bcast(data, count, mpi_type(tensor.dtype()), root, comm), op, "MPI_Bcast");
  });
}

void scaled_copy(DType dtype, const void* from, void* to, std::int64_t n, double scale) {
  if (dtype == DType::Float32) {
    const auto* x = static_cast<const float*>(from);
    auto* y = static_cast<float*>(to);
    const auto factor = static_cast<float>(scale);
    for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] * factor;
  } else {
    const auto* x = static_cast<const double*>(from);
    auto* y = static_cast<double*>(to);
    for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
  }
}

}  // namespace detail

using detail::broadcast_data;
using detail::mark_written;

void all_reduce(Tensor& tensor, ReduceOp op) {
  constexpr const char* kOp = "all_reduce";
  check_usable(kOp, tensor);
  if (op == ReduceOp::Mean && !is_floating(tensor.dtype())) {
    throw_invalid(kOp, "the mean needs a floating-point tensor, got ", dtype_name(tensor.dtype()), " ",
                  tensor.shape().str());
  }
  detail::agree(kOp, detail::Collective::AllReduce, static_cast<std::int64_t>(op), &tensor);
  const MPI_Comm comm = detail::communicator(kOp);
  mark_written(tensor);
  in_pieces(tensor, [&](void* data, int count) {
    detail::check(MPI_Allreduce(MPI_IN_PLACE, data, count, detail::mpi_type(tensor.dtype()), mpi_op(op), comm), kOp,
                  "MPI_Allreduce");
  });
  if (op == ReduceOp::Mean) {
    detail::scaled_copy(tensor.dtype(), tensor.raw_data(), tensor.raw_data(), tensor.numel(), 1.0 / world_size());
  }
}

void broadcast(Tensor& tensor, int root) {
  constexpr const char* kOp = "broadcast";
  check_usable(kOp, tensor);
  root_checked(kOp, root);
  detail::agree(kOp, detail::Collective::Broadcast, root, &tensor);
  broadcast_data(tensor, root, kOp);
}

void barrier() {
  constexpr const char* kOp = "barrier";
  detail::agree(kOp, detail::Collective::Barrier, 0, nullptr);
}

void broadcast_parameters(const nn::Module& module, int root) {
  constexpr const char* kOp = "broadcast_parameters";
  root_checked(kOp, root);
  NamedTensors state = module.state_dict();
  detail::agree(kOp, detail::Collective::Wrap, static_cast<std::int64_t>(state.size()), nullptr, "the models");
  for (auto& [name, tensor] : state) {
    check_usable(kOp, tensor);
    detail::agree(kOp, detail::Collective::Broadcast, root, &tensor, "'" + name + "'");
    broadcast_data(tensor, root, kOp);
  }
}

void broadcast_named_tensors(NamedTensors& entries, int root) {
  constexpr const char* kOp = "broadcast_named_tensors";
  root_checked(kOp, root);
  detail::agree(kOp, detail::Collective::Broadcast, root, nullptr);
  const bool sender = rank() == root;
  std::int64_t count = sender ? static_cast<std::int64_t>(entries.size()) : 0;
  broadcast_bytes(&count, sizeof count, root, kOp);
  NamedTensors received;
  for (std::int64_t i = 0; i < count; ++i) {
    // Name, dtype and shape first, so the others can allocate.
    std::int64_t meta[2] = {0, 0};  // name length, rank of the shape
    std::string name;
    Tensor tensor;
    if (sender) {
      const auto& [sent_name, sent] = entries[static_cast<std::size_t>(i)];
      check_usable(kOp, sent);
      name = sent_name;
      tensor = sent;
      meta[0] = static_cast<std::int64_t>(name.size());
      meta[1] = static_cast<std::int64_t>(sent.dim());
    }
    broadcast_bytes(meta, sizeof meta, root, kOp);
    name.resize(static_cast<std::size_t>(meta[0]));
    broadcast_bytes(name.data(), static_cast<int>(meta[0]), root, kOp);
    std::vector<std::int64_t> layout(static_cast<std::size_t>(meta[1]) + 1);
    if (sender) {
      layout[0] = static_cast<std::int64_t>(tensor.dtype());
      for (std::size_t axis = 0; axis < tensor.dim(); ++axis) layout[axis + 1] = tensor.shape()[axis];
    }
    broadcast_bytes(layout.data(), static_cast<int>(layout.size() * sizeof(std::int64_t)), root, kOp);
    if (!sender) {
      tensor =
          empty(Shape(std::vector<std::int64_t>(layout.begin() + 1, layout.end())), static_cast<DType>(layout[0]), kOp);
    }
    broadcast_data(tensor, root, kOp);
    if (!sender) received.emplace_back(std::move(name), std::move(tensor));
  }
  if (!sender) entries = std::move(received);
}

}  // namespace tapegrad::dist
