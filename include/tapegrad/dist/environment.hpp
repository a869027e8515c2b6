#pragma once
// tapegrad::dist: data-parallel training over MPI, one process per rank.
// This header: starting and stopping MPI, and who this process is.
//
//   int main(int argc, char** argv) {
//     tapegrad::dist::Environment mpi(argc, argv);  // MPI_Init ... MPI_Finalize
//     tapegrad::dist::manual_seed(1);               // per-rank random streams
//     if (tapegrad::dist::rank() == 0) std::puts("rank 0 of ", world_size());
//   }
//
// Launched with `mpirun -n 2 ./program` (scripts/mpirun keeps the job on this
// host's shared memory and loopback); started without mpirun, the program is
// a world of one rank. Everything in dist/ throws std::logic_error when used
// before init or after finalize.
//
// Failure: an exception leaving the Environment's scope skips MPI_Finalize,
// so the process exits without it and mpirun terminates the other ranks
// (which may be waiting in a collective for this one) instead of letting
// them hang; a rank killed by a signal ends the job the same way.
#include <cstdint>

namespace tapegrad::dist {

// Initialises MPI (thread level MPI_THREAD_SERIALIZED) unless the program
// already did, and makes tapegrad's own communicator (a duplicate of
// MPI_COMM_WORLD, so tapegrad's traffic never mixes with the program's).
// Errors of MPI calls are returned and thrown as std::runtime_error naming
// the call, not MPI's default abort.
void init();
void init(int& argc, char**& argv);
// Frees the communicator; finalizes MPI if init() initialised it. MPI
// cannot be initialised again afterwards (an MPI rule).
void finalize();
bool initialized();

// This process's rank in [0, world_size()), and the number of ranks.
int rank();
int world_size();
inline bool is_main_process() { return rank() == 0; }

// Ends every rank of the job now with `code` (MPI_Abort).
[[noreturn]] void abort(int code = 1);

// Seeds the default generator (random.hpp) with `seed` on the rank's own
// stream (stream = rank): dropout and the other random ops draw differently
// on each rank, and the same seed gives the same draws run after run. Rank 0
// draws what manual_seed(seed) draws in a single process.
void manual_seed(std::uint64_t seed);

// init() for the scope: finalize() on a normal exit; on an exception, no
// MPI_Finalize (see above).
class Environment {
 public:
  Environment();
  Environment(int& argc, char**& argv);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

 private:
  int uncaught_at_start_;
};

}  // namespace tapegrad::dist
