#include "tapegrad/dist/environment.hpp"

#include <exception>
#include <stdexcept>
#include <string>

#include "communicator.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/random.hpp"

namespace tapegrad::dist {

namespace {

struct State {
  MPI_Comm comm = MPI_COMM_NULL;
  bool owns_mpi = false;  // init() called MPI_Init, so finalize() ends it
  int rank = 0;
  int size = 1;
};

State& state() {
  static State instance;
  return instance;
}

void start(int* argc, char*** argv) {
  State& s = state();
  if (s.comm != MPI_COMM_NULL) throw std::logic_error("dist::init: already initialised (call finalize first)");
  int mpi_initialised = 0;
  int mpi_finalised = 0;
  MPI_Initialized(&mpi_initialised);
  MPI_Finalized(&mpi_finalised);
  if (mpi_finalised) {
    throw std::logic_error("dist::init: MPI was already finalized in this process, and MPI cannot start twice");
  }
  if (!mpi_initialised) {
    int provided = 0;
    const int code = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    if (code != MPI_SUCCESS) throw std::runtime_error("dist::init: MPI_Init_thread failed");
    s.owns_mpi = true;
  }
  MPI_Comm comm = MPI_COMM_NULL;
  detail::check(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "dist::init", "MPI_Comm_dup");
  detail::check(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "dist::init", "MPI_Comm_set_errhandler");
  MPI_Comm_rank(comm, &s.rank);
  MPI_Comm_size(comm, &s.size);
  s.comm = comm;
}

}  // namespace

namespace detail {

MPI_Comm communicator(const char* op) {
  const MPI_Comm comm = state().comm;
  if (comm == MPI_COMM_NULL) {
    throw std::logic_error(std::string(op) +
                           ": MPI is not initialised: create a tapegrad::dist::Environment (or call dist::init) "
                           "first");
  }
  return comm;
}

void check(int code, const char* op, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  throw_runtime(op, call, " failed: ",
                length > 0 ? std::string(text, static_cast<std::size_t>(length)) : "error " + std::to_string(code));
}

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return MPI_FLOAT;
    case DType::Float64:
      return MPI_DOUBLE;
    case DType::Int64:
      return MPI_INT64_T;
  }
  throw std::logic_error("dist: unknown dtype");
}

}  // namespace detail

void init() { start(nullptr, nullptr); }
void init(int& argc, char**& argv) { start(&argc, &argv); }

void finalize() {
  State& s = state();
  if (s.comm == MPI_COMM_NULL) throw std::logic_error("dist::finalize: MPI is not initialised");
  MPI_Comm_free(&s.comm);
  s.comm = MPI_COMM_NULL;
  s.rank = 0;
  s.size = 1;
  if (s.owns_mpi) {
    s.owns_mpi = false;
    MPI_Finalize();
  }
}

bool initialized() { return state().comm != MPI_COMM_NULL; }

int rank() {
  detail::communicator("dist::rank");
  return state().rank;
}

int world_size() {
  detail::communicator("dist::world_size");
  return state().size;
}

void abort(int code) {
  MPI_Abort(detail::communicator("dist::abort"), code);
  std::terminate();  // MPI_Abort does not return
}

void manual_seed(std::uint64_t seed) {
  const int stream = rank();
  default_generator() = Generator(seed, static_cast<std::uint64_t>(stream));
}

Environment::Environment() : uncaught_at_start_(std::uncaught_exceptions()) { init(); }
Environment::Environment(int& argc, char**& argv) : uncaught_at_start_(std::uncaught_exceptions()) { init(argc, argv); }

Environment::~Environment() {
  // Unwinding: MPI_Finalize would wait for ranks that may be blocked in a
  // collective this rank will never join. Leaving without it lets mpirun
  // end the job.
  if (std::uncaught_exceptions() > uncaught_at_start_) return;
  if (initialized()) finalize();
}

}  // namespace tapegrad::dist
