#pragma once
// tapegrad::dist, the optional data-parallel component (CMake target
// tapegrad::dist, built when MPI is found): link it and include this.
#include "tapegrad/dist/checkpoint.hpp"
#include "tapegrad/dist/collectives.hpp"
#include "tapegrad/dist/data_parallel.hpp"
#include "tapegrad/dist/environment.hpp"
