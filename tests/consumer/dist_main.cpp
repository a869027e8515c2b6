// Links tapegrad::dist from the consumer project; run without mpirun it is
// a world of one rank.
#include <cstdio>
#include <tapegrad/dist.hpp>
#include <tapegrad/tapegrad.hpp>

int main(int argc, char** argv) {
  tapegrad::dist::Environment mpi(argc, argv);
  tapegrad::Tensor t = tapegrad::ones({3});
  tapegrad::dist::all_reduce(t);
  std::printf("consumer_dist: rank %d of %d, sum %g\n", tapegrad::dist::rank(), tapegrad::dist::world_size(),
              t.to_vector()[0]);
  return t.to_vector()[0] == tapegrad::dist::world_size() ? 0 : 1;
}
