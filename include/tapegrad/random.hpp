#pragma once
// The global random generator behind rand/randn, dropout masks and the
// initialisers. manual_seed() makes every run reproducible.
#include <cstdint>
#include <random>

namespace tapegrad {

void manual_seed(std::uint64_t seed);
std::mt19937_64& global_generator();

}  // namespace tapegrad
