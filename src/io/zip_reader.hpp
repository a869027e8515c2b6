#pragma once
// Internal: reads ZIP archives of stored or deflated members, from memory or
// from a file, trusting nothing in them. Every offset and size is
// bounds-checked against the file before it is used, members may not overlap
// (so a small hostile file cannot make the reader allocate its size many
// times over), and a deflated member may not claim more bytes than deflate
// can produce from its compressed size. Errors are std::runtime_error
// "<op>: '<label>': ...", naming the member where there is one.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tapegrad/error.hpp"

namespace tapegrad::io::zip {

// Random access to the archive's bytes. Callers check every range against
// size() first; read() checks again and throws rather than read outside.
class Source {
 public:
  virtual ~Source() = default;
  virtual std::uint64_t size() const = 0;
  virtual void read(std::uint64_t offset, std::size_t count, void* out) const = 0;
};

class MemorySource final : public Source {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
  std::uint64_t size() const override { return bytes_.size(); }
  void read(std::uint64_t offset, std::size_t count, void* out) const override;

 private:
  std::string_view bytes_;
};

// Reads with pread, straight into the caller's buffers: a file is never held
// in memory twice.
class FileSource final : public Source {
 public:
  FileSource(const std::string& path, const char* op);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  std::uint64_t size() const override { return size_; }
  void read(std::uint64_t offset, std::size_t count, void* out) const override;

 private:
  std::string path_;
  const char* op_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

struct Member {
  std::string name;
  std::uint16_t method = 0;  // kMethodStored or kMethodDeflate
  std::uint32_t crc = 0;
  std::uint64_t size = 0;         // uncompressed
  std::uint64_t stored_size = 0;  // in the file
  std::uint64_t local_offset = 0;
  std::uint64_t data_offset = 0;
};

class Archive {
 public:
  // Reads and checks the end record, the central directory and every local
  // header.
  Archive(const Source& source, const char* op, std::string label);

  const std::vector<Member>& members() const { return members_; }
  const Source& source() const { return source_; }

  template <class... Parts>
  [[noreturn]] void fail(const Parts&... parts) const {
    throw_runtime(op_, "'", label_, "': ", parts...);
  }
  template <class... Parts>
  [[noreturn]] void fail_member(const Member& member, const Parts&... parts) const {
    fail("member ", quoted_name(member), " ", parts...);
  }
  [[noreturn]] void fail_crc(const Member& member) const;

 private:
  struct End {
    std::uint64_t position = 0;
    std::uint64_t entries = 0;
    std::uint64_t directory_offset = 0;
    std::uint64_t directory_size = 0;
  };
  static std::string quoted_name(const Member& member);
  [[noreturn]] void fail_zip64() const;
  void check_signature() const;
  bool has_zip64_locator(std::uint64_t end_position) const;
  End find_end() const;
  void read_central_directory(const End& end);
  void locate_data(Member& member, std::uint64_t directory_offset) const;
  void check_disjoint() const;

  const Source& source_;
  const char* op_;
  std::string label_;
  std::vector<Member> members_;
};

// One member's bytes, in order: stored ones straight from the source,
// deflated ones inflated on the way. It keeps the CRC-32 of what it gave;
// finish() checks the member ended where the directory says and its CRC.
class MemberReader {
 public:
  MemberReader(const Archive& archive, const Member& member);
  ~MemberReader();
  MemberReader(const MemberReader&) = delete;
  MemberReader& operator=(const MemberReader&) = delete;

  // Exactly `count` bytes; throws when fewer remain.
  void read(std::size_t count, void* out);
  std::uint64_t remaining() const { return member_.size - given_; }
  // Reads what is left, then checks the end of the data and the CRC-32.
  void finish();
  // Whether the bytes read so far, and the rest, match the CRC-32: reads what
  // is left; false also when the data is too damaged to read.
  bool crc_matches();

 private:
  void inflate_into(unsigned char* out, std::size_t count);
  // Hands zlib the next piece of compressed data; false when none is left.
  bool refill();
  // Inflates at most `count` bytes into `out`; returns how many came out.
  std::size_t inflate_some(unsigned char* out, std::size_t count);
  void skip_rest();

  const Archive& archive_;
  const Member& member_;
  std::uint64_t given_ = 0;
  std::uint32_t crc_ = 0;
  struct Inflater;
  std::unique_ptr<Inflater> inflater_;  // deflated members only
};

}  // namespace tapegrad::io::zip
