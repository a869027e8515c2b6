#include "io/zip_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <stdexcept>

#include "io/errno_text.hpp"
#include "io/zip_format.hpp"

namespace tapegrad::io::zip {

namespace {

// Deflate's best case turns 1 byte into at most 1032 (258-byte matches of
// 2-bit codes); a member claiming more than that, plus a little for the
// stream's framing, is lying about its size.
constexpr std::uint64_t kMaxDeflateRatio = 1032;
constexpr std::uint64_t kDeflateSlack = 64;
constexpr std::size_t kInputChunk = 1 << 16;

}  // namespace

// ------------------------------------------------------------------ sources

void MemorySource::read(std::uint64_t offset, std::size_t count, void* out) const {
  if (offset > bytes_.size() || count > bytes_.size() - offset) throw std::logic_error("zip: read out of bounds");
  if (count > 0) std::memcpy(out, bytes_.data() + offset, count);
}

FileSource::FileSource(const std::string& path, const char* op) : path_(path), op_(op) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw_runtime(op_, "'", path, "': cannot open it: ", errno_text(errno));
  struct stat info {};
  if (::fstat(fd_, &info) != 0) {
    const int error = errno;
    ::close(fd_);
    throw_runtime(op_, "'", path, "': cannot stat it: ", errno_text(error));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd_);
    throw_runtime(op_, "'", path, "': not a regular file");
  }
  size_ = static_cast<std::uint64_t>(info.st_size);
}

FileSource::~FileSource() { ::close(fd_); }

void FileSource::read(std::uint64_t offset, std::size_t count, void* out) const {
  if (offset > size_ || count > size_ - offset) throw std::logic_error("zip: read out of bounds");
  char* bytes = static_cast<char*>(out);
  while (count > 0) {
    const ssize_t got = ::pread(fd_, bytes, count, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_runtime(op_, "'", path_, "': read failed: ", errno_text(errno));
    }
    if (got == 0) throw_runtime(op_, "'", path_, "': the file shrank while being read");
    bytes += got;
    offset += static_cast<std::uint64_t>(got);
    count -= static_cast<std::size_t>(got);
  }
}

// ------------------------------------------------------------------ archive

Archive::Archive(const Source& source, const char* op, std::string label)
    : source_(source), op_(op), label_(std::move(label)) {
  check_signature();
  const End end = find_end();
  read_central_directory(end);
  for (Member& member : members_) locate_data(member, end.directory_offset);
  check_disjoint();
}

std::string Archive::quoted_name(const Member& member) { return printable(member.name); }

void Archive::fail_crc(const Member& member) const {
  fail_member(member, "fails its CRC-32 check: the file is corrupt");
}

void Archive::fail_zip64() const { fail("ZIP64 archives (4 GiB or more, or 65535 or more members) are not supported"); }

void Archive::check_signature() const {
  const std::uint64_t size = source_.size();
  if (size == 0) fail("the file is empty");
  unsigned char head[4] = {};
  const auto count = static_cast<std::size_t>(std::min<std::uint64_t>(size, sizeof head));
  source_.read(0, count, head);
  // An archive starts with its first member, or is empty (an end record only).
  if (count < 4 || (get32(head) != kLocalSignature && get32(head) != kEndSignature)) {
    fail("not a .npz file: it does not start with a ZIP signature");
  }
}

bool Archive::has_zip64_locator(std::uint64_t end_position) const {
  if (end_position < kZip64LocatorSize) return false;
  unsigned char signature[4];
  source_.read(end_position - kZip64LocatorSize, 4, signature);
  return get32(signature) == kZip64LocatorSignature;
}

Archive::End Archive::find_end() const {
  const std::uint64_t size = source_.size();
  const std::uint64_t tail_size = std::min(size, kEndSize + kMaxComment);
  std::vector<unsigned char> tail(tail_size);
  source_.read(size - tail_size, tail.size(), tail.data());
  // The end record is followed only by its comment, up to 64 KiB: search
  // backwards for a signature whose comment ends exactly at end of file.
  std::optional<std::uint64_t> found;
  for (std::uint64_t i = tail_size >= kEndSize ? tail_size - kEndSize + 1 : 0; i-- > 0;) {
    const unsigned char* p = tail.data() + i;
    if (get32(p) == kEndSignature && i + kEndSize + get16(p + 20) == tail_size) {
      found = i;
      break;
    }
  }
  if (!found) fail("no ZIP end-of-central-directory record: the file is truncated or not a .npz archive");
  const unsigned char* p = tail.data() + *found;
  End end;
  end.position = size - tail_size + *found;
  const std::uint16_t disk = get16(p + 4);
  const std::uint16_t directory_disk = get16(p + 6);
  const std::uint16_t disk_entries = get16(p + 8);
  end.entries = get16(p + 10);
  end.directory_size = get32(p + 12);
  end.directory_offset = get32(p + 16);
  if (end.entries == kMax16 || end.directory_size == kMax32 || end.directory_offset == kMax32) fail_zip64();
  if (disk != 0 || directory_disk != 0 || disk_entries != end.entries) {
    fail("multi-part (split) ZIP archives are not supported");
  }
  if (end.directory_offset > end.position || end.directory_size != end.position - end.directory_offset) {
    if (has_zip64_locator(end.position)) fail_zip64();
    fail("the central directory (", end.directory_size, " bytes at offset ", end.directory_offset,
         ") does not end where the end record starts (offset ", end.position, "): the file is truncated or corrupt");
  }
  return end;
}

void Archive::read_central_directory(const End& end) {
  std::vector<unsigned char> directory(end.directory_size);
  source_.read(end.directory_offset, directory.size(), directory.data());
  members_.reserve(end.entries);
  std::set<std::string> seen;
  std::uint64_t pos = 0;
  for (std::uint64_t k = 0; k < end.entries; ++k) {
    if (directory.size() - pos < kCentralHeaderSize || get32(directory.data() + pos) != kCentralSignature) {
      fail("central directory entry ", k, " is damaged: the file is corrupt");
    }
    const unsigned char* p = directory.data() + pos;
    const std::uint16_t flags = get16(p + 8);
    const std::uint64_t entry_size = kCentralHeaderSize + get16(p + 28) + get16(p + 30) + get16(p + 32);
    if (directory.size() - pos < entry_size) fail("central directory entry ", k, " is damaged: the file is corrupt");
    Member member;
    member.name.assign(reinterpret_cast<const char*>(p + kCentralHeaderSize), get16(p + 28));
    member.method = get16(p + 10);
    member.crc = get32(p + 16);
    member.stored_size = get32(p + 20);
    member.size = get32(p + 24);
    member.local_offset = get32(p + 42);
    if (member.name.empty()) fail("central directory entry ", k, " has an empty name: the file is corrupt");
    if (flags & kFlagEncrypted) fail_member(member, "is encrypted, which tapegrad does not read");
    if (member.stored_size == kMax32 || member.size == kMax32 || member.local_offset == kMax32) fail_zip64();
    if (member.method == kMethodDeflate) {
      if (member.size > member.stored_size * kMaxDeflateRatio + kDeflateSlack) {
        fail_member(member, "claims ", member.size, " bytes inflated from ", member.stored_size,
                    ", more than deflate can give: the file is corrupt");
      }
    } else if (member.method != kMethodStored) {
      fail_member(member, "uses ZIP compression method ", member.method,
                  "; tapegrad reads only stored and deflated members");
    } else if (member.stored_size != member.size) {
      fail_member(member, "records a stored size of ", member.stored_size, " bytes but an uncompressed size of ",
                  member.size, ": the file is corrupt");
    }
    if (!seen.insert(member.name).second) fail_member(member, "appears twice");
    members_.push_back(std::move(member));
    pos += entry_size;
  }
  if (pos != directory.size()) {
    fail("the central directory holds ", directory.size() - pos, " bytes beyond its ", end.entries,
         " entries: the file is corrupt");
  }
}

// Checks the member's local header and records where its data starts.
void Archive::locate_data(Member& member, std::uint64_t directory_offset) const {
  if (member.local_offset > directory_offset || directory_offset - member.local_offset < kLocalHeaderSize) {
    fail_member(member, "has its local header outside the archive's data (offset ", member.local_offset,
                "): the file is corrupt");
  }
  unsigned char header[kLocalHeaderSize];
  source_.read(member.local_offset, sizeof header, header);
  if (get32(header) != kLocalSignature) {
    fail_member(member, "has no local header at offset ", member.local_offset, ": the file is corrupt");
  }
  const std::uint16_t name_size = get16(header + 26);
  const std::uint64_t data = member.local_offset + kLocalHeaderSize + name_size + get16(header + 28);
  if (data > directory_offset || directory_offset - data < member.stored_size) {
    fail_member(member, "runs past the end of the archive's data: the file is truncated or corrupt");
  }
  std::string local_name(name_size, '\0');
  source_.read(member.local_offset + kLocalHeaderSize, name_size, local_name.data());
  if (local_name != member.name) {
    fail_member(member, "is named ", printable(local_name), " in its local header: the file is corrupt");
  }
  member.data_offset = data;
}

void Archive::check_disjoint() const {
  std::vector<const Member*> order;
  for (const Member& member : members_) order.push_back(&member);
  std::sort(order.begin(), order.end(),
            [](const Member* a, const Member* b) { return a->local_offset < b->local_offset; });
  for (std::size_t k = 1; k < order.size(); ++k) {
    if (order[k - 1]->data_offset + order[k - 1]->stored_size > order[k]->local_offset) {
      fail("members ", printable(order[k - 1]->name), " and ", printable(order[k]->name),
           " overlap: the file is corrupt");
    }
  }
}

// ------------------------------------------------------------------ members

struct MemberReader::Inflater {
  z_stream stream{};
  std::vector<unsigned char> input = std::vector<unsigned char>(kInputChunk);
  std::uint64_t consumed = 0;  // compressed bytes handed to zlib
  bool ended = false;          // zlib saw the end of the deflate stream
};

MemberReader::MemberReader(const Archive& archive, const Member& member) : archive_(archive), member_(member) {
  if (member.method != kMethodDeflate) return;
  inflater_ = std::make_unique<Inflater>();
  if (inflateInit2(&inflater_->stream, -MAX_WBITS) != Z_OK) {
    inflater_.reset();
    archive.fail_member(member, "cannot be inflated: zlib's inflateInit2 failed (out of memory?)");
  }
}

MemberReader::~MemberReader() {
  if (inflater_) inflateEnd(&inflater_->stream);
}

void MemberReader::read(std::size_t count, void* out) {
  if (count > remaining()) throw std::logic_error("zip: member read past its end");
  auto* bytes = static_cast<unsigned char*>(out);
  if (inflater_) {
    inflate_into(bytes, count);
  } else {
    archive_.source().read(member_.data_offset + given_, count, bytes);
  }
  crc_ = crc32(bytes, count, crc_);
  given_ += count;
}

void MemberReader::inflate_into(unsigned char* out, std::size_t count) {
  std::uint64_t done = given_;
  while (count > 0) {
    if (inflater_->ended) {
      archive_.fail_member(member_, "inflates to ", done, " bytes, but the directory says ", member_.size,
                           ": the file is corrupt");
    }
    const std::size_t produced = inflate_some(out, count);
    out += produced;
    count -= produced;
    done += produced;
  }
}

bool MemberReader::refill() {
  Inflater& in = *inflater_;
  if (in.stream.avail_in > 0) return true;
  const std::uint64_t left = member_.stored_size - in.consumed;
  if (left == 0) return false;
  const auto piece = static_cast<std::size_t>(std::min<std::uint64_t>(left, in.input.size()));
  archive_.source().read(member_.data_offset + in.consumed, piece, in.input.data());
  in.consumed += piece;
  in.stream.next_in = in.input.data();
  in.stream.avail_in = static_cast<uInt>(piece);
  return true;
}

std::size_t MemberReader::inflate_some(unsigned char* out, std::size_t count) {
  Inflater& in = *inflater_;
  const bool more_input = refill();
  const auto room = static_cast<uInt>(std::min<std::size_t>(count, 1u << 30));
  in.stream.next_out = out;
  in.stream.avail_out = room;
  const int status = inflate(&in.stream, Z_NO_FLUSH);
  if (status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR) {
    archive_.fail_member(
        member_, "is corrupt: its deflate data does not inflate (zlib: ", in.stream.msg ? in.stream.msg : "error", ")");
  }
  in.ended = status == Z_STREAM_END;
  const std::size_t produced = room - in.stream.avail_out;
  if (produced == 0 && !in.ended && !more_input) {
    archive_.fail_member(member_, "is truncated: its deflate data ends before its ", member_.size, " bytes do");
  }
  return produced;
}

void MemberReader::skip_rest() {
  std::vector<unsigned char> scratch(static_cast<std::size_t>(std::min<std::uint64_t>(remaining(), kInputChunk)));
  while (remaining() > 0) {
    const auto piece = static_cast<std::size_t>(std::min<std::uint64_t>(remaining(), scratch.size()));
    read(piece, scratch.data());
  }
}

void MemberReader::finish() {
  skip_rest();
  // Every byte the directory promised is out: the deflate stream must end
  // here, with nothing more in it.
  while (inflater_ && !inflater_->ended) {
    unsigned char extra = 0;
    if (inflate_some(&extra, 1) > 0) {
      archive_.fail_member(member_, "inflates to more than the ", member_.size,
                           " bytes the directory says: the file is corrupt");
    }
  }
  if (crc_ != member_.crc) archive_.fail_crc(member_);
}

bool MemberReader::crc_matches() {
  try {
    skip_rest();
  } catch (const std::runtime_error&) {
    return false;
  }
  return crc_ == member_.crc;
}

}  // namespace tapegrad::io::zip
