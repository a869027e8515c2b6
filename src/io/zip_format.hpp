#pragma once
// Internal: the ZIP layout (PKWARE APPNOTE 4.3) that zip_writer writes and
// zip_reader reads. Per member a local header and the data, then the central
// directory (one entry per member), then the end record. The central
// directory is the truth a reader goes by: local headers may carry zero sizes
// (writers that stream) or extra fields (numpy's ZIP64 sizes).
#include <cstdint>
#include <string>
#include <string_view>

#include "tapegrad/error.hpp"

namespace tapegrad::io::zip {

constexpr std::uint32_t kLocalSignature = 0x04034b50;
constexpr std::uint32_t kCentralSignature = 0x02014b50;
constexpr std::uint32_t kEndSignature = 0x06054b50;
constexpr std::uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr std::uint64_t kLocalHeaderSize = 30;
constexpr std::uint64_t kCentralHeaderSize = 46;
constexpr std::uint64_t kEndSize = 22;
constexpr std::uint64_t kZip64LocatorSize = 20;
constexpr std::uint64_t kMaxComment = 0xFFFF;
constexpr std::uint16_t kVersionStored = 20;  // 2.0: stored and deflated members
constexpr std::uint16_t kFlagEncrypted = 1;
constexpr std::uint16_t kFlagUtf8 = 1 << 11;  // Python decodes names as UTF-8 only with this flag
constexpr std::uint16_t kMethodStored = 0;
constexpr std::uint16_t kMethodDeflate = 8;
// A field holding all ones means "see the ZIP64 record", which we neither
// write nor read.
constexpr std::uint64_t kMax16 = 0xFFFF;
constexpr std::uint64_t kMax32 = 0xFFFFFFFF;

inline void put16(std::string& out, std::uint64_t value) {
  out.push_back(static_cast<char>(value & 0xFF));
  out.push_back(static_cast<char>((value >> 8) & 0xFF));
}

inline void put32(std::string& out, std::uint64_t value) {
  put16(out, value & 0xFFFF);
  put16(out, (value >> 16) & 0xFFFF);
}

inline std::uint16_t get16(const unsigned char* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }

inline std::uint32_t get32(const unsigned char* p) {
  return static_cast<std::uint32_t>(get16(p)) | (static_cast<std::uint32_t>(get16(p + 2)) << 16);
}

// A name from a file, fit for a message: quoted, control bytes escaped,
// capped in length (a hostile archive may hold anything there).
inline std::string printable(std::string_view text) { return tapegrad::detail::quoted_for_message(text, 200); }

// CRC-32 as ZIP defines it (zlib's), chained: crc32(b, crc32(a)) is the CRC
// of a then b.
std::uint32_t crc32(const void* data, std::size_t size, std::uint32_t previous = 0);

}  // namespace tapegrad::io::zip
