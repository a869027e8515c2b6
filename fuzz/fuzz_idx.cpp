// libFuzzer target: the IDX readers (MNIST's format) on arbitrary files.
// Every input must either be read, with every size consistent, or throw
// std::runtime_error / std::invalid_argument; anything else (a crash, a
// sanitizer report, another exception, an allocation beyond -malloc_limit_mb)
// is a bug.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <tapegrad/data/idx.hpp>

#include "scratch_file.hpp"

using namespace tapegrad;

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

std::uint64_t product(const std::vector<std::int64_t>& dims) {
  std::uint64_t n = 1;
  for (std::int64_t d : dims) n *= static_cast<std::uint64_t>(d);
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fuzz::ScratchFile file("-idx");
  const std::string& path = file.write(data, size);
  // Any rank the magic number may claim (the fourth byte), as read_idx reads it.
  for (std::size_t rank : {std::size_t{1}, std::size_t{3}, std::size_t{size >= 4 ? data[3] % 9u : 2u}}) {
    try {
      const data::IdxArray idx = data::read_idx(path, rank);
      check(idx.dims.size() == rank);
      check(product(idx.dims) == idx.values.size());
      check(4 + 4 * rank + idx.values.size() == size);
    } catch (const std::runtime_error&) {
    }
  }
  try {
    const Tensor images = data::read_idx_images(path, /*scale=*/true);
    check(images.dim() == 3);
    const float* p = images.data<float>();
    for (std::int64_t i = 0; i < images.numel(); ++i) check(p[i] >= 0.0f && p[i] <= 1.0f);
  } catch (const std::runtime_error&) {
  }
  try {
    const Tensor labels = data::read_idx_labels(path, 256);
    check(labels.dim() == 1);
    const std::int64_t* p = labels.data<std::int64_t>();
    for (std::int64_t i = 0; i < labels.numel(); ++i) check(p[i] >= 0 && p[i] < 256);
  } catch (const std::runtime_error&) {
  }
  // The same file as both halves of a dataset: only a rank-1 or rank-3 file
  // can be either, so this always throws, cleanly.
  try {
    data::read_idx_dataset(path, path, {.num_classes = 256, .flatten = true});
    std::abort();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
