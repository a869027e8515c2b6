#include "io/zip_format.hpp"

#include <zlib.h>

#include <algorithm>

namespace tapegrad::io::zip {

std::uint32_t crc32(const void* data, std::size_t size, std::uint32_t previous) {
  auto crc = static_cast<uLong>(previous);
  const auto* bytes = static_cast<const Bytef*>(data);
  // zlib takes uInt lengths: feed huge buffers in pieces.
  while (size > 0) {
    const auto piece = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
    crc = ::crc32(crc, bytes, piece);
    bytes += piece;
    size -= piece;
  }
  return static_cast<std::uint32_t>(crc);
}

}  // namespace tapegrad::io::zip
