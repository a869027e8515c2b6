// A rank that dies mid-job: rank 1 throws after the first all-reduce while
// rank 0 waits in the second. ctest checks that the job ends (mpirun exits
// non-zero, printing rank 1's error) instead of hanging.
#include <cstdio>
#include <stdexcept>
#include <tapegrad/dist.hpp>
#include <tapegrad/tapegrad.hpp>

int main(int argc, char** argv) {
  using namespace tapegrad;
  try {
    dist::Environment mpi(argc, argv);
    Tensor t = ones({1000});
    dist::all_reduce(t);
    if (dist::rank() == 1) throw std::runtime_error("rank 1 gives up");
    dist::all_reduce(t);  // never completes: rank 1 is gone
    std::puts("rank 0 was not stopped");
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
}
