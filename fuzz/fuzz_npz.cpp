// libFuzzer target: the .npz reader on arbitrary bytes, in memory and from a
// file. Oracles: both paths agree (the same tensors, or the same error); a
// read archive re-encodes to one that reads back bit-exactly; and any
// failure is a std::runtime_error, never a crash or another exception.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <tapegrad/io/npz.hpp>

#include "io/npz_detail.hpp"
#include "scratch_file.hpp"

using namespace tapegrad;

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

bool bit_equal(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Tensor& x = a[i].second;
    const Tensor& y = b[i].second;
    if (a[i].first != b[i].first || x.dtype() != y.dtype() || x.shape() != y.shape()) return false;
    const std::size_t bytes = static_cast<std::size_t>(x.numel()) * dtype_size(x.dtype());
    if (bytes > 0 && std::memcmp(x.raw_data(), y.raw_data(), bytes) != 0) return false;
  }
  return true;
}

// The message without the "load_npz: '<label>': " that names the source.
std::string without_label(const std::string& message, const std::string& label) {
  const std::string prefix = "load_npz: '" + label + "': ";
  check(message.compare(0, prefix.size(), prefix) == 0);
  return message.substr(prefix.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fuzz::ScratchFile file(".npz");
  const std::string& path = file.write(data, size);
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  NamedTensors from_memory, from_file;
  std::string memory_error, file_error;
  bool memory_ok = false, file_ok = false;
  try {
    from_memory = io::detail::decode_npz(bytes, "fuzz");
    memory_ok = true;
  } catch (const std::runtime_error& error) {
    memory_error = without_label(error.what(), "fuzz");
  }
  try {
    from_file = io::load_npz(path);
    file_ok = true;
  } catch (const std::runtime_error& error) {
    file_error = without_label(error.what(), path);
  }
  check(memory_ok == file_ok);
  if (!memory_ok) {
    check(memory_error == file_error);
    return 0;
  }
  check(bit_equal(from_memory, from_file));
  // Names read are names save_npz accepts; the re-encoded archive reads back.
  const std::string again = io::detail::encode_npz(from_memory);
  check(bit_equal(io::detail::decode_npz(again, "again"), from_memory));
  return 0;
}
