#pragma once
// Internal: CRC-32 as ZIP (and zlib, PNG) define it: reflected polynomial
// 0xEDB88320, initial value and final xor 0xFFFFFFFF. Byte-at-a-time with a
// table built at compile time; fast enough that checkpoint I/O stays bound by
// the disk, and short enough to check by eye.
#include <array>
#include <cstddef>
#include <cstdint>

namespace tapegrad::io::detail {

inline constexpr std::array<std::uint32_t, 256> kCrc32Table = [] {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}();

// Chains like zlib's crc32(): crc32(b, nb, crc32(a, na)) is the CRC of a then b.
inline std::uint32_t crc32(const void* data, std::size_t size, std::uint32_t previous = 0) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::uint32_t c = ~previous;
  for (std::size_t i = 0; i < size; ++i) c = kCrc32Table[(c ^ bytes[i]) & 0xFFu] ^ (c >> 8);
  return ~c;
}

}  // namespace tapegrad::io::detail
