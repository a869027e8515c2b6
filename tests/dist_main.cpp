// Catch2's main for test_dist. Launched by mpirun (scripts/mpirun), it runs
// the tests inside a dist::Environment; started alone, it runs the tests of
// what happens before init ([no-init]).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdlib>
#include <tapegrad/dist.hpp>

int main(int argc, char** argv) {
  if (std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr) return Catch::Session().run(argc, argv);
  tapegrad::dist::Environment mpi(argc, argv);
  return Catch::Session().run(argc, argv);
}
