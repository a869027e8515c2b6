// The header every collective exchanges first (communicator.hpp's agree).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "communicator.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::dist::detail {

namespace {

constexpr std::size_t kShownDims = 6;

// Fixed size: collective, argument, dtype (-1: none), rank of the shape,
// the first dims, and a hash of all of them (for longer shapes).
struct Header {
  std::array<std::int64_t, 5 + kShownDims> fields{};
  std::int64_t& operator[](std::size_t i) { return fields[i]; }
  std::int64_t operator[](std::size_t i) const { return fields[i]; }
};

Header make_header(Collective collective, std::int64_t argument, const Tensor* tensor) {
  Header h;
  h[0] = static_cast<std::int64_t>(collective);
  h[1] = argument;
  h[2] = -1;
  if (tensor != nullptr) {
    const Shape& shape = tensor->shape();
    h[2] = static_cast<std::int64_t>(tensor->dtype());
    h[3] = static_cast<std::int64_t>(shape.rank());
    std::uint64_t hash = 1469598103934665603ULL;  // FNV-1a over the dims
    for (std::size_t axis = 0; axis < shape.rank(); ++axis) {
      if (axis < kShownDims) h[5 + axis] = shape[axis];
      hash = (hash ^ static_cast<std::uint64_t>(shape[axis])) * 1099511628211ULL;
    }
    h[4] = static_cast<std::int64_t>(hash);
  }
  return h;
}

const char* collective_name(std::int64_t collective) {
  switch (static_cast<Collective>(collective)) {
    case Collective::AllReduce:
      return "all_reduce";
    case Collective::Broadcast:
      return "broadcast";
    case Collective::Barrier:
      return "barrier";
    case Collective::Wrap:
      return "DistributedDataParallel";
  }
  return "an unknown collective";
}

const char* reduction_name(std::int64_t op) {
  static const char* const names[] = {"sum", "mean", "max", "min"};
  return op >= 0 && op < 4 ? names[op] : "?";
}

// "float32 [3x4] (sum)", as the rank's header describes it.
std::string describe(const Header& h) {
  std::string text;
  const auto collective = static_cast<Collective>(h[0]);
  if (h[2] >= 0) {
    text = dtype_name(static_cast<DType>(h[2]));
    const std::int64_t rank = h[3];
    if (rank > static_cast<std::int64_t>(kShownDims)) {
      text += " of " + std::to_string(rank) + " dimensions";
    } else {
      text += " [";
      for (std::int64_t axis = 0; axis < rank; ++axis) {
        if (axis > 0) text += "x";
        text += std::to_string(h[5 + static_cast<std::size_t>(axis)]);
      }
      text += "]";
    }
  }
  if (collective == Collective::AllReduce) text += " (" + std::string(reduction_name(h[1])) + ")";
  if (collective == Collective::Broadcast) text += " (root " + std::to_string(h[1]) + ")";
  if (collective == Collective::Wrap && h[2] < 0) text = std::to_string(h[1]) + " tensors";
  return text;
}

}  // namespace

void agree(const char* op, Collective collective, std::int64_t argument, const Tensor* tensor,
           const std::string& what) {
  const MPI_Comm comm = communicator(op);
  int size = 1;
  MPI_Comm_size(comm, &size);
  const Header mine = make_header(collective, argument, tensor);
  std::vector<Header> all(static_cast<std::size_t>(size));
  check(MPI_Allgather(mine.fields.data(), static_cast<int>(mine.fields.size()), MPI_INT64_T, all.data(),
                      static_cast<int>(mine.fields.size()), MPI_INT64_T, comm),
        op, "MPI_Allgather");
  // Every rank compares against rank 0 and so reports the same pair.
  for (int other = 1; other < size; ++other) {
    const Header& first = all[0];
    const Header& theirs = all[static_cast<std::size_t>(other)];
    if (first.fields == theirs.fields) continue;
    const std::string subject = what.empty() ? "" : what + ": ";
    if (first[0] != theirs[0]) {
      throw_invalid(op, subject, "ranks disagree: rank 0 calls ", collective_name(first[0]), ", rank ", other,
                    " calls ", collective_name(theirs[0]),
                    " (every rank must call the same collectives in the same order)");
    }
    throw_invalid(op, subject, "ranks disagree: rank 0 passes ", describe(first), ", rank ", other, " passes ",
                  describe(theirs));
  }
}

}  // namespace tapegrad::dist::detail
