#include "tapegrad/data/idx.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "data/read_file.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad::data {

namespace {

constexpr std::uint8_t kUnsignedByte = 0x08;

// The whole file; a missing file whose gzipped twin is there says so.
std::vector<std::uint8_t> read_file(const std::string& path, const char* op) {
  std::error_code ignored;
  if (!std::filesystem::exists(path, ignored) && std::filesystem::exists(path + ".gz", ignored)) {
    throw_runtime(op, "cannot open '", path, "': ", std::strerror(ENOENT), " (found '", path,
                  ".gz': decompress it with gunzip)");
  }
  return detail::read_whole_file<std::vector<std::uint8_t>>(path, op);
}

// "[4160749567x4294901760x0]", as Shape::str() writes it, without building a
// Shape from extents that may not make a valid one.
std::string extents_text(const std::vector<std::int64_t>& dims) {
  std::string out = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) out += (i > 0 ? "x" : "") + std::to_string(dims[i]);
  return out + "]";
}

std::uint32_t big_endian_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

std::string hex32(std::uint32_t value) {
  static const char* digits = "0123456789abcdef";
  std::string out = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) out += digits[(value >> shift) & 0xf];
  return out;
}

}  // namespace

IdxArray read_idx(const std::string& path, std::size_t expected_rank, const char* op) {
  std::vector<std::uint8_t> bytes = read_file(path, op);
  const std::size_t size = bytes.size();
  if (size < 4) throw_runtime(op, path, ": truncated at byte offset ", size, ": the magic number needs 4 bytes");

  const std::uint32_t magic = big_endian_u32(bytes.data());
  const std::uint32_t expected_magic = (std::uint32_t{kUnsignedByte} << 8) | static_cast<std::uint32_t>(expected_rank);
  if (magic != expected_magic) {
    const bool gzip = bytes[0] == 0x1f && bytes[1] == 0x8b;
    throw_runtime(op, path, ": wrong magic number ", hex32(magic), " at byte offset 0, expected ",
                  hex32(expected_magic), " (unsigned-byte IDX of rank ", expected_rank, ")",
                  gzip ? "; this is a gzip file: decompress it with gunzip" : "");
  }

  const std::size_t header = 4 + 4 * expected_rank;
  if (size < header) {
    throw_runtime(op, path, ": truncated at byte offset ", size, ": the header of rank ", expected_rank,
                  " needs ", header, " bytes");
  }
  IdxArray out;
  for (std::size_t axis = 0; axis < expected_rank; ++axis) out.dims.push_back(big_endian_u32(bytes.data() + 4 + 4 * axis));
  const std::string extents = extents_text(out.dims);
  // Every size computation is checked. First the product of the extents with
  // zeros counted as ones: a tensor's strides are products of its extents, so
  // [4160749567x4294901760x0], though it holds 0 bytes, has no valid strides.
  std::int64_t strides = 1;
  for (std::int64_t extent : out.dims) {
    if (__builtin_mul_overflow(strides, std::max<std::int64_t>(extent, 1), &strides)) {
      throw_runtime(op, path, ": extents ", extents, " are too large: their product exceeds 2^63 - 1");
    }
  }
  // Then the byte count they declare, against the bytes the file really has.
  std::uint64_t count = 1;
  for (std::int64_t extent : out.dims) {
    // Cannot overflow once the product above fits; checked all the same.
    if (__builtin_mul_overflow(count, static_cast<std::uint64_t>(extent), &count)) {
      throw_runtime(op, path, ": extents ", extents, " are too large: their product exceeds 2^64 - 1");
    }
  }
  const std::uint64_t available = size - header;
  if (count > available) {
    throw_runtime(op, path, ": truncated at byte offset ", size, ": extents ", extents, " need ", count,
                  " bytes of data after the ", header, "-byte header");
  }
  if (count < available) {
    throw_runtime(op, path, ": ", available - count, " unexpected bytes at byte offset ", header + count,
                  ", after the data of extents ", extents);
  }
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  out.values = std::move(bytes);
  return out;
}

Tensor read_idx_images(const std::string& path, bool scale) {
  const IdxArray idx = read_idx(path, 3, "read_idx_images");
  if (idx.dims[0] > 0 && (idx.dims[1] == 0 || idx.dims[2] == 0)) {
    throw_runtime("read_idx_images", path, ": extents ", extents_text(idx.dims), " declare ", idx.dims[0],
                  " images of ", idx.dims[1], "x", idx.dims[2], " pixels: images without pixels hold no data");
  }
  Tensor out = empty(Shape(idx.dims), DType::Float32);
  float table[256];
  for (int v = 0; v < 256; ++v) table[v] = scale ? static_cast<float>(v) / 255.0f : static_cast<float>(v);
  float* to = out.data<float>();
  for (std::size_t i = 0; i < idx.values.size(); ++i) to[i] = table[idx.values[i]];
  return out;
}

Tensor read_idx_labels(const std::string& path, std::int64_t num_classes) {
  if (num_classes <= 0 || num_classes > 256) {
    throw_invalid("read_idx_labels", "num_classes must be in [1, 256], got ", num_classes);
  }
  const IdxArray idx = read_idx(path, 1, "read_idx_labels");
  Tensor out = empty(Shape(idx.dims), DType::Int64);
  std::int64_t* to = out.data<std::int64_t>();
  for (std::size_t i = 0; i < idx.values.size(); ++i) {
    const std::int64_t label = idx.values[i];
    if (label >= num_classes) {
      throw_runtime("read_idx_labels", path, ": label ", label, " at byte offset ", 8 + i, " (sample ", i,
                    ") is out of range [0, ", num_classes, ")");
    }
    to[i] = label;
  }
  return out;
}

Dataset read_idx_dataset(const std::string& images_path, const std::string& labels_path, IdxOptions options) {
  Tensor images = read_idx_images(images_path, options.scale);
  Tensor labels = read_idx_labels(labels_path, options.num_classes);
  if (images.shape(0) != labels.shape(0)) {
    throw_runtime("read_idx_dataset", images_path, " holds ", images.shape(0), " images but ", labels_path,
                  " holds ", labels.shape(0), " labels");
  }
  if (options.flatten) {
    images = reshape(images, {images.shape(0), images.shape(1) * images.shape(2)});  // shares the buffer
  }
  return Dataset(images, labels);
}

MnistData load_mnist(const std::string& directory, IdxOptions options) {
  const std::filesystem::path dir(directory);
  return {read_idx_dataset((dir / "train-images-idx3-ubyte").string(), (dir / "train-labels-idx1-ubyte").string(), options),
          read_idx_dataset((dir / "t10k-images-idx3-ubyte").string(), (dir / "t10k-labels-idx1-ubyte").string(), options)};
}

}  // namespace tapegrad::data
