// libFuzzer target: load_checkpoint on arbitrary files, into a small model
// and an Adam optimizer. Oracles: a refused checkpoint throws a standard
// exception (never crashes) and leaves the model's values exactly as they
// were; a loaded one gives the model the checkpoint's values.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <tapegrad/tapegrad.hpp>

#include "scratch_file.hpp"

using namespace tapegrad;

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

std::vector<std::vector<unsigned char>> snapshot(const nn::Module& model) {
  std::vector<std::vector<unsigned char>> out;
  for (const auto& [name, tensor] : model.state_dict()) {
    const auto* p = static_cast<const unsigned char*>(tensor.raw_data());
    out.emplace_back(p, p + static_cast<std::size_t>(tensor.numel()) * dtype_size(tensor.dtype()));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fuzz::ScratchFile file(".npz");
  const std::string& path = file.write(data, size);
  // The model the committed seeds were saved from (fuzz/make_corpus.cpp).
  nn::Linear model(3, 2);
  optim::Adam optimizer(model.parameters(), {.lr = 1e-2});
  const auto before = snapshot(model);
  try {
    io::load_checkpoint(path, model, optimizer);
    // Loaded: the model holds the checkpoint's "model/" entries, bit for bit.
    std::vector<std::vector<unsigned char>> saved;
    for (const auto& [name, tensor] : io::load_npz(path)) {
      if (name.rfind("model/", 0) != 0) continue;
      const auto* p = static_cast<const unsigned char*>(tensor.raw_data());
      saved.emplace_back(p, p + static_cast<std::size_t>(tensor.numel()) * dtype_size(tensor.dtype()));
    }
    check(saved == snapshot(model));
  } catch (const std::runtime_error&) {
    check(snapshot(model) == before);
  } catch (const std::invalid_argument&) {
    check(snapshot(model) == before);
  } catch (const std::out_of_range&) {
    check(snapshot(model) == before);
  }
  // The optimizer-free overload, on a fresh model.
  nn::Linear other(3, 2);
  const auto other_before = snapshot(other);
  try {
    io::load_checkpoint(path, other);
  } catch (const std::runtime_error&) {
    check(snapshot(other) == other_before);
  } catch (const std::invalid_argument&) {
    check(snapshot(other) == other_before);
  } catch (const std::out_of_range&) {
    check(snapshot(other) == other_before);
  }
  return 0;
}
