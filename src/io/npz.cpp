#include "tapegrad/io/npz.hpp"

#include <bit>
#include <cstring>
#include <set>
#include <string_view>

#include "io/atomic_file.hpp"
#include "io/npy.hpp"
#include "io/npz_detail.hpp"
#include "io/zip_format.hpp"
#include "io/zip_reader.hpp"
#include "io/zip_writer.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::io {

// Tensor buffers are written and read as they sit in memory, labelled '<'.
static_assert(std::endian::native == std::endian::little, "tapegrad's .npz I/O assumes a little-endian machine");

namespace {

using zip::printable;

constexpr const char* kMemoryLabel = "<memory>";

zip::Compression compression_of(const NpzOptions& options) {
  return options.compressed ? zip::Compression::Deflate : zip::Compression::Stored;
}

// Headers live in `headers`; members point into them and into the tensors.
struct PreparedTensors {
  std::vector<std::string> headers;
  std::vector<zip::OutMember> members;
};

// Checks names and tensors, and lays out one member per tensor.
void prepare(const NamedTensors& tensors, const std::string& label, PreparedTensors& out) {
  std::set<std::string_view> seen;
  out.headers.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, tensor] = tensors[i];
    if (name.empty()) throw_invalid("save_npz", "'", label, "': tensor ", i, " has an empty name");
    if (name.find('\0') != std::string::npos) {
      throw_invalid("save_npz", "'", label, "': name ", printable(name), " contains a NUL byte");
    }
    if (name.size() > zip::kMax16 - 4) {
      throw_invalid("save_npz", "'", label, "': a name of ", name.size(), " bytes is longer than ZIP allows (",
                    zip::kMax16 - 4, ")");
    }
    if (!seen.insert(name).second) throw_invalid("save_npz", "'", label, "': name '", name, "' appears twice");
    if (!tensor.defined()) throw_invalid("save_npz", "'", label, "': tensor '", name, "' is undefined");
    out.headers.push_back(npy::header(tensor.dtype(), tensor.shape()));
  }
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, tensor] = tensors[i];
    const std::size_t bytes = static_cast<std::size_t>(tensor.numel()) * dtype_size(tensor.dtype());
    out.members.push_back(
        {name + ".npy", {{out.headers[i].data(), out.headers[i].size()}, {tensor.raw_data(), bytes}}});
  }
}

// One member: a .npy array, whose CRC-32 (of the inflated bytes, for a
// deflated member) must match the directory's.
Tensor read_member(const zip::Archive& archive, const zip::Member& member) {
  if (member.name.size() < 4 || member.name.compare(member.name.size() - 4, 4, ".npy") != 0) {
    archive.fail_member(member, "is not a .npy array (its name does not end in .npy)");
  }
  zip::MemberReader reader(archive, member);
  Tensor tensor;
  try {
    tensor = npy::read_array([&](std::size_t count, void* out) { reader.read(count, out); }, member.size);
  } catch (const npy::FormatError& error) {
    // A malformed array is most often a damaged one: when the checksum
    // disagrees, say that instead.
    if (!reader.crc_matches()) archive.fail_crc(member);
    archive.fail_member(member, error.what());
  }
  reader.finish();
  return tensor;
}

NamedTensors read_all(const zip::Source& source, const std::string& label) {
  if (source.size() >= npy::kMagicSize) {
    char head[npy::kMagicSize];
    source.read(0, sizeof head, head);
    if (std::memcmp(head, npy::kMagic, npy::kMagicSize) == 0) {
      throw_runtime("load_npz", "'", label, "': this is a .npy file (one array), not a .npz archive");
    }
  }
  const zip::Archive archive(source, "load_npz", label);
  NamedTensors out;
  out.reserve(archive.members().size());
  for (const zip::Member& member : archive.members()) {
    out.emplace_back(member.name.substr(0, member.name.size() - 4), read_member(archive, member));
  }
  return out;
}

}  // namespace

namespace detail {

std::string npy_header(DType dtype, const Shape& shape) { return npy::header(dtype, shape); }

std::string zip_archive(const std::vector<std::pair<std::string, std::string>>& members, bool compressed) {
  std::vector<zip::OutMember> out_members;
  for (const auto& [name, bytes] : members) out_members.push_back({name, {{bytes.data(), bytes.size()}}});
  const zip::Plan plan = zip::plan(out_members, compressed ? zip::Compression::Deflate : zip::Compression::Stored,
                                   "save_npz", kMemoryLabel);
  std::string out;
  StringSink sink(out);
  zip::write(sink, out_members, plan);
  return out;
}

std::string encode_npz(const NamedTensors& tensors, const NpzOptions& options) {
  PreparedTensors prepared;
  prepare(tensors, kMemoryLabel, prepared);
  const zip::Plan plan = zip::plan(prepared.members, compression_of(options), "save_npz", kMemoryLabel);
  std::string out;
  StringSink sink(out);
  zip::write(sink, prepared.members, plan);
  return out;
}

NamedTensors decode_npz(std::string_view bytes, const std::string& label) {
  const zip::MemorySource source(bytes);
  return read_all(source, label);
}

}  // namespace detail

void save_npz(const std::string& path, const NamedTensors& tensors, const NpzOptions& options) {
  // Everything that can be checked (and the compression) is done before the
  // disk is touched.
  PreparedTensors prepared;
  prepare(tensors, path, prepared);
  const zip::Plan plan = zip::plan(prepared.members, compression_of(options), "save_npz", path);
  write_atomically(path, "save_npz", [&](Sink& sink) { zip::write(sink, prepared.members, plan); });
}

NamedTensors load_npz(const std::string& path) {
  const zip::FileSource source(path, "load_npz");
  return read_all(source, path);
}

}  // namespace tapegrad::io
