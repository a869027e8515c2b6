#include "io/zip_writer.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdint>

#include "io/zip_format.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::io::zip {

namespace {

constexpr std::uint16_t kVersionMadeBy = (3 << 8) | 20;        // Unix host, so unzip applies the mode below
constexpr std::uint32_t kExternalAttributes = 0100644u << 16;  // regular file, rw-r--r--
constexpr std::uint16_t kDosDate = (1 << 5) | 1;  // 1980-01-01, the DOS epoch: bytes depend on content only

[[noreturn]] void fail_too_large(const char* op, const std::string& label, const char* what) {
  throw_invalid(op, "'", label, "': ", what, " needs ZIP64, which tapegrad does not write");
}

// Raw deflate (no zlib header), as ZIP method 8 stores it, at zlib's default
// level, as Python's zipfile (and so numpy.savez_compressed) writes it.
std::string deflate_chunks(const std::vector<Chunk>& chunks, const char* op, const std::string& label) {
  z_stream stream{};
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw_runtime(op, "'", label, "': zlib's deflateInit2 failed (out of memory?)");
  }
  std::string out;
  char buffer[1 << 16];
  auto pump = [&](int flush) {
    int status = Z_OK;
    do {
      stream.next_out = reinterpret_cast<Bytef*>(buffer);
      stream.avail_out = sizeof buffer;
      status = deflate(&stream, flush);
      out.append(buffer, sizeof buffer - stream.avail_out);
    } while (stream.avail_out == 0 && status != Z_STREAM_END);
    return status;
  };
  for (const Chunk& chunk : chunks) {
    // Sizes were checked below 4 GiB, so each chunk fits zlib's uInt.
    stream.next_in = const_cast<Bytef*>(static_cast<const Bytef*>(chunk.data));
    stream.avail_in = static_cast<uInt>(chunk.size);
    pump(Z_NO_FLUSH);
  }
  const int status = pump(Z_FINISH);
  deflateEnd(&stream);
  if (status != Z_STREAM_END) throw_runtime(op, "'", label, "': zlib's deflate failed");
  return out;
}

}  // namespace

Plan plan(const std::vector<OutMember>& members, Compression compression, const char* op, const std::string& label) {
  if (members.size() >= kMax16) fail_too_large(op, label, "an archive of 65535 or more members");
  Plan plan;
  std::string central;
  std::uint64_t offset = 0;
  for (const OutMember& member : members) {
    std::uint64_t size = 0;
    std::uint32_t crc = 0;
    for (const Chunk& chunk : member.chunks) {
      size += chunk.size;
      crc = crc32(chunk.data, chunk.size, crc);
    }
    if (size >= kMax32 || offset >= kMax32) fail_too_large(op, label, "an archive of 4 GiB or more");
    std::uint64_t stored_size = size;
    if (compression == Compression::Deflate) {
      plan.deflated.push_back(deflate_chunks(member.chunks, op, label));
      stored_size = plan.deflated.back().size();
    }
    const bool ascii = std::all_of(member.name.begin(), member.name.end(),
                                   [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    // The fields local header and central directory entry share, in order.
    std::string fields;
    put16(fields, kVersionStored);
    put16(fields, ascii ? 0 : kFlagUtf8);
    put16(fields, compression == Compression::Deflate ? kMethodDeflate : kMethodStored);
    put16(fields, 0);  // time 00:00:00
    put16(fields, kDosDate);
    put32(fields, crc);
    put32(fields, stored_size);
    put32(fields, size);
    put16(fields, member.name.size());
    put16(fields, 0);  // no extra field

    std::string local;
    put32(local, kLocalSignature);
    local += fields;
    local += member.name;

    put32(central, kCentralSignature);
    put16(central, kVersionMadeBy);
    central += fields;
    put16(central, 0);  // comment length
    put16(central, 0);  // disk number
    put16(central, 0);  // internal attributes
    put32(central, kExternalAttributes);
    put32(central, offset);
    central += member.name;

    offset += local.size() + stored_size;
    plan.local_headers.push_back(std::move(local));
  }
  if (offset >= kMax32 || central.size() >= kMax32) fail_too_large(op, label, "an archive of 4 GiB or more");
  const std::uint64_t directory_size = central.size();
  plan.trailer = std::move(central);
  put32(plan.trailer, kEndSignature);
  put16(plan.trailer, 0);  // this disk
  put16(plan.trailer, 0);  // disk holding the central directory
  put16(plan.trailer, members.size());
  put16(plan.trailer, members.size());
  put32(plan.trailer, directory_size);
  put32(plan.trailer, offset);
  put16(plan.trailer, 0);  // comment length
  return plan;
}

void write(Sink& sink, const std::vector<OutMember>& members, const Plan& plan) {
  for (std::size_t i = 0; i < members.size(); ++i) {
    sink.write(plan.local_headers[i].data(), plan.local_headers[i].size());
    if (plan.deflated.empty()) {
      for (const Chunk& chunk : members[i].chunks) sink.write(chunk.data, chunk.size);
    } else {
      sink.write(plan.deflated[i].data(), plan.deflated[i].size());
    }
  }
  sink.write(plan.trailer.data(), plan.trailer.size());
}

}  // namespace tapegrad::io::zip
