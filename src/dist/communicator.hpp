#pragma once
// What the dist/ sources share: tapegrad's communicator, MPI error
// checking, and the MPI type of each dtype.
#include <mpi.h>

#include "tapegrad/dtype.hpp"

namespace tapegrad::dist::detail {

// tapegrad's communicator; throws std::logic_error naming `op` before
// init() or after finalize().
MPI_Comm communicator(const char* op);

// Throws std::runtime_error "<op>: <call> failed: <MPI's message>" unless
// `code` is MPI_SUCCESS.
void check(int code, const char* op, const char* call);

MPI_Datatype mpi_type(DType dtype);

}  // namespace tapegrad::dist::detail

#include <string>

#include "tapegrad/tensor.hpp"

namespace tapegrad::dist::detail {

// What a rank is about to do, exchanged (MPI_Allgather) before the
// collective itself, so that a mismatch is an error on every rank.
enum class Collective : std::int64_t { AllReduce = 1, Broadcast, Barrier, Wrap };

// Throws std::invalid_argument on every rank unless every rank passes the
// same collective, `argument` (the reduction or the root) and, where
// `tensor` is given, dtype and shape. `what` names the tensor in the message
// (e.g. "parameter 'fc.weight'"); may be empty.
void agree(const char* op, Collective collective, std::int64_t argument, const Tensor* tensor,
           const std::string& what = {});

// The storage version of `tensor` moves on: its data is changed in place.
void mark_written(const Tensor& tensor);
// `root`'s data into `tensor` on every rank, with no header: for callers
// whose ranks already agreed on it (a wrapped model's buffers).
void broadcast_data(const Tensor& tensor, int root, const char* op);
// to[i] = from[i] * scale for n floating-point elements of `dtype` (from
// may be to).
void scaled_copy(DType dtype, const void* from, void* to, std::int64_t n, double scale);

}  // namespace tapegrad::dist::detail
