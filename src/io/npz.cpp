#include "tapegrad/io/npz.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include "io/crc32.hpp"
#include "io/npz_detail.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::io {

// Tensor buffers are written and read as they sit in memory, labelled '<'.
static_assert(std::endian::native == std::endian::little, "tapegrad's .npz I/O assumes a little-endian machine");

namespace {

// --- ZIP layout (PKWARE APPNOTE 4.3): per member a local header and the data,
// then the central directory (one entry per member), then the end record. The
// central directory is the truth a reader goes by: local headers may carry
// zero sizes (writers that stream) or extra fields (numpy's ZIP64 sizes).
constexpr std::uint32_t kLocalSignature = 0x04034b50;
constexpr std::uint32_t kCentralSignature = 0x02014b50;
constexpr std::uint32_t kEndSignature = 0x06054b50;
constexpr std::uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr std::uint64_t kLocalHeaderSize = 30;
constexpr std::uint64_t kCentralHeaderSize = 46;
constexpr std::uint64_t kEndSize = 22;
constexpr std::uint64_t kZip64LocatorSize = 20;
constexpr std::uint64_t kMaxComment = 0xFFFF;
constexpr std::uint16_t kVersionNeeded = 20;                   // 2.0: stored members
constexpr std::uint16_t kVersionMadeBy = (3 << 8) | 20;        // Unix host, so unzip applies the mode below
constexpr std::uint32_t kExternalAttributes = 0100644u << 16;  // regular file, rw-r--r--
constexpr std::uint16_t kDosDate = (1 << 5) | 1;  // 1980-01-01, the DOS epoch: bytes depend on content only
constexpr std::uint16_t kFlagEncrypted = 1;
constexpr std::uint16_t kFlagUtf8 = 1 << 11;  // Python decodes names as UTF-8 only with this flag
constexpr std::uint16_t kMethodStored = 0;
constexpr std::uint16_t kMethodDeflate = 8;
// A field holding all ones means "see the ZIP64 record", which we neither
// write nor read.
constexpr std::uint64_t kMax16 = 0xFFFF;
constexpr std::uint64_t kMax32 = 0xFFFFFFFF;

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr std::size_t kNpyMagicSize = 6;
constexpr std::size_t kNpyAlignment = 64;
constexpr const char* kMemoryLabel = "<memory>";

void put16(std::string& out, std::uint64_t value) {
  out.push_back(static_cast<char>(value & 0xFF));
  out.push_back(static_cast<char>((value >> 8) & 0xFF));
}

void put32(std::string& out, std::uint64_t value) {
  put16(out, value & 0xFFFF);
  put16(out, (value >> 16) & 0xFFFF);
}

std::uint16_t get16(const unsigned char* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }

std::uint32_t get32(const unsigned char* p) {
  return static_cast<std::uint32_t>(get16(p)) | (static_cast<std::uint32_t>(get16(p + 2)) << 16);
}

// A name from a file, fit for a message: quoted, control bytes escaped,
// capped in length (a hostile archive may hold anything there).
std::string printable(std::string_view text) { return tapegrad::detail::quoted_for_message(text, 200); }

std::string errno_text(int error) { return std::generic_category().message(error); }

const char* npy_descr(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "<f4";
    case DType::Float64:
      return "<f8";
    case DType::Int64:
      return "<i8";
  }
  return "?";
}

std::optional<DType> dtype_from_descr(std::string_view descr) {
  if (descr == "<f4") return DType::Float32;
  if (descr == "<f8") return DType::Float64;
  if (descr == "<i8") return DType::Int64;
  return std::nullopt;
}

// Python's repr of the shape tuple: "()", "(3,)", "(2, 3)".
std::string shape_tuple(const Shape& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.rank(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  if (shape.rank() == 1) out += ",";
  return out + ")";
}

// ---------------------------------------------------------------- writing

struct Chunk {
  const void* data;
  std::size_t size;
};

struct OutMember {
  std::string name;           // with ".npy"
  std::vector<Chunk> chunks;  // the member's bytes, in order
};

// Every header and offset, computed before the first byte is written so that
// an archive that cannot be written fails before touching the disk.
struct ZipPlan {
  std::vector<std::string> local_headers;
  std::string trailer;  // central directory and end record
};

[[noreturn]] void fail_too_large(const std::string& label, const char* what) {
  throw_invalid("save_npz", "'", label, "': ", what, " needs ZIP64, which tapegrad does not write");
}

ZipPlan plan_zip(const std::vector<OutMember>& members, const std::string& label) {
  if (members.size() >= kMax16) fail_too_large(label, "an archive of 65535 or more members");
  ZipPlan plan;
  std::string central;
  std::uint64_t offset = 0;
  for (const OutMember& member : members) {
    std::uint64_t size = 0;
    std::uint32_t crc = 0;
    for (const Chunk& chunk : member.chunks) {
      size += chunk.size;
      crc = detail::crc32(chunk.data, chunk.size, crc);
    }
    if (size >= kMax32 || offset >= kMax32) fail_too_large(label, "an archive of 4 GiB or more");
    const bool ascii = std::all_of(member.name.begin(), member.name.end(),
                                   [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    // The fields local header and central directory entry share, in order.
    std::string fields;
    put16(fields, kVersionNeeded);
    put16(fields, ascii ? 0 : kFlagUtf8);
    put16(fields, kMethodStored);
    put16(fields, 0);  // time 00:00:00
    put16(fields, kDosDate);
    put32(fields, crc);
    put32(fields, size);  // compressed size: stored, so the same
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

    offset += local.size() + size;
    plan.local_headers.push_back(std::move(local));
  }
  if (offset >= kMax32 || central.size() >= kMax32) fail_too_large(label, "an archive of 4 GiB or more");
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

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(const void* data, std::size_t size) = 0;
};

class StringSink final : public Sink {
 public:
  explicit StringSink(std::string& out) : out_(out) {}
  void write(const void* data, std::size_t size) override { out_.append(static_cast<const char*>(data), size); }

 private:
  std::string& out_;
};

class FileSink final : public Sink {
 public:
  FileSink(int fd, const std::string& path) : fd_(fd), path_(path) {}
  void write(const void* data, std::size_t size) override {
    const char* bytes = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t written = ::write(fd_, bytes, size);
      if (written < 0) {
        if (errno == EINTR) continue;
        throw_runtime("save_npz", "'", path_, "': write failed: ", errno_text(errno));
      }
      bytes += written;
      size -= static_cast<std::size_t>(written);
    }
  }

 private:
  int fd_;
  const std::string& path_;
};

void write_zip(Sink& sink, const std::vector<OutMember>& members, const ZipPlan& plan) {
  for (std::size_t i = 0; i < members.size(); ++i) {
    sink.write(plan.local_headers[i].data(), plan.local_headers[i].size());
    for (const Chunk& chunk : members[i].chunks) sink.write(chunk.data, chunk.size);
  }
  sink.write(plan.trailer.data(), plan.trailer.size());
}

// Headers live in `headers`; members point into them and into the tensors.
struct PreparedTensors {
  std::vector<std::string> headers;
  std::vector<OutMember> members;
};

// Checks names and tensors, and lays out one member per tensor.
void prepare(const nn::NamedTensors& tensors, const std::string& label, PreparedTensors& out) {
  std::set<std::string_view> seen;
  out.headers.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, tensor] = tensors[i];
    if (name.empty()) throw_invalid("save_npz", "'", label, "': tensor ", i, " has an empty name");
    if (name.find('\0') != std::string::npos) {
      throw_invalid("save_npz", "'", label, "': name ", printable(name), " contains a NUL byte");
    }
    if (name.size() > kMax16 - 4) {
      throw_invalid("save_npz", "'", label, "': a name of ", name.size(), " bytes is longer than ZIP allows (",
                    kMax16 - 4, ")");
    }
    if (!seen.insert(name).second) throw_invalid("save_npz", "'", label, "': name '", name, "' appears twice");
    if (!tensor.defined()) throw_invalid("save_npz", "'", label, "': tensor '", name, "' is undefined");
    out.headers.push_back(detail::npy_header(tensor.dtype(), tensor.shape()));
  }
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, tensor] = tensors[i];
    const std::size_t bytes = static_cast<std::size_t>(tensor.numel()) * dtype_size(tensor.dtype());
    out.members.push_back(
        {name + ".npy", {{out.headers[i].data(), out.headers[i].size()}, {tensor.raw_data(), bytes}}});
  }
}

// Makes the rename durable. Best effort: the new file is already in place,
// and failing the save now would misreport what is on disk.
void sync_parent_directory(const std::string& path) {
  std::string directory = std::filesystem::path(path).parent_path().string();
  if (directory.empty()) directory = ".";
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// --- Stale temporary files. A save killed mid-write (kill -9, power loss)
// leaves its "<name>.tmp-<pid>-<n>" behind; nothing else would ever remove
// it. Each save removes those of its own target whose writer is gone.

constexpr std::string_view kTemporaryInfix = ".tmp-";
// A temporary whose pid names no live process is left alone this long after
// its last write: a writer in another pid namespace (a container sharing the
// directory) looks dead from here, but a live one keeps writing.
constexpr std::int64_t kDeadWriterGraceSeconds = 5 * 60;
// Past this age a temporary is removed whatever its pid says: the pid may
// have been reused, and no save writes for a day.
constexpr std::int64_t kAbandonedSeconds = 24 * 60 * 60;

std::string temporary_name(const std::string& path, std::uint64_t n) {
  return path + std::string(kTemporaryInfix) + std::to_string(::getpid()) + "-" + std::to_string(n);
}

// The pid in "<filename>.tmp-<pid>-<n>", or 0 when `name` is not exactly such
// a name (digits only, no sign, no suffix).
pid_t temporary_pid(std::string_view name, std::string_view filename) {
  if (name.size() <= filename.size() + kTemporaryInfix.size() || !name.starts_with(filename)) return 0;
  name.remove_prefix(filename.size());
  if (!name.starts_with(kTemporaryInfix)) return 0;
  name.remove_prefix(kTemporaryInfix.size());
  const std::size_t dash = name.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == name.size()) return 0;
  const auto digits = [](std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(name.substr(0, dash)) || !digits(name.substr(dash + 1))) return 0;
  pid_t pid = 0;
  const auto [end, error] = std::from_chars(name.data(), name.data() + dash, pid);
  if (error != std::errc() || end != name.data() + dash) return 0;
  return pid;
}

void remove_stale_temporaries(const std::string& path) {
  const std::filesystem::path target(path);
  const std::string filename = target.filename().string();
  if (filename.empty()) return;
  std::filesystem::path directory = target.parent_path();
  if (directory.empty()) directory = ".";
  // Names first, then removals: the directory is not changed while listed.
  std::vector<std::pair<std::filesystem::path, pid_t>> candidates;
  std::error_code error;
  std::filesystem::directory_iterator it(directory, error);
  for (; !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    const pid_t pid = temporary_pid(it->path().filename().string(), filename);
    if (pid > 0) candidates.emplace_back(it->path(), pid);
  }
  const std::int64_t now = ::time(nullptr);
  for (const auto& [candidate, pid] : candidates) {
    struct stat info {};
    // lstat: a symbolic link or a directory of that name is not ours.
    if (::lstat(candidate.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) continue;
    const std::int64_t age = now - static_cast<std::int64_t>(info.st_mtime);
    bool stale = age > kAbandonedSeconds;
    if (!stale && pid != ::getpid() && age > kDeadWriterGraceSeconds) {
      // Signal 0 only asks whether the process exists; EPERM means it does.
      stale = ::kill(pid, 0) != 0 && errno == ESRCH;
    }
    if (stale) ::unlink(candidate.c_str());  // best effort: another save may have removed it first
  }
}

// ---------------------------------------------------------------- reading

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
  void read(std::uint64_t offset, std::size_t count, void* out) const override {
    if (offset > bytes_.size() || count > bytes_.size() - offset) throw std::logic_error("npz: read out of bounds");
    if (count > 0) std::memcpy(out, bytes_.data() + offset, count);
  }

 private:
  std::string_view bytes_;
};

// Reads with pread, straight into the tensors' buffers: a checkpoint is never
// held in memory twice.
class FileSource final : public Source {
 public:
  explicit FileSource(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw_runtime("load_npz", "'", path, "': cannot open it: ", errno_text(errno));
    struct stat info {};
    if (::fstat(fd_, &info) != 0) {
      const int error = errno;
      ::close(fd_);
      throw_runtime("load_npz", "'", path, "': cannot stat it: ", errno_text(error));
    }
    if (!S_ISREG(info.st_mode)) {
      ::close(fd_);
      throw_runtime("load_npz", "'", path, "': not a regular file");
    }
    size_ = static_cast<std::uint64_t>(info.st_size);
  }
  ~FileSource() override { ::close(fd_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  std::uint64_t size() const override { return size_; }
  void read(std::uint64_t offset, std::size_t count, void* out) const override {
    if (offset > size_ || count > size_ - offset) throw std::logic_error("npz: read out of bounds");
    char* bytes = static_cast<char*>(out);
    while (count > 0) {
      const ssize_t got = ::pread(fd_, bytes, count, static_cast<off_t>(offset));
      if (got < 0) {
        if (errno == EINTR) continue;
        throw_runtime("load_npz", "'", path_, "': read failed: ", errno_text(errno));
      }
      if (got == 0) throw_runtime("load_npz", "'", path_, "': the file shrank while being read");
      bytes += got;
      offset += static_cast<std::uint64_t>(got);
      count -= static_cast<std::size_t>(got);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// A syntax error in a .npy header; NpzReader adds the file and member.
struct HeaderSyntaxError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct NpyFields {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
};

// The .npy header is a Python dict literal; numpy writes
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// This accepts exactly that grammar with any spacing, either quote and the
// keys in any order; numpy's own reader demands the same three keys.
class HeaderParser {
 public:
  explicit HeaderParser(std::string_view text) : text_(text) {}

  NpyFields parse() {
    NpyFields fields;
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_space();
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      const std::string key(string_literal("a key"));
      skip_space();
      expect(':');
      skip_space();
      if (key == "descr") {
        once(have_descr, key);
        if (peek() != '\'' && peek() != '"') fail("'descr' is not a string (structured dtypes are not supported)");
        fields.descr = string_literal("the dtype");
      } else if (key == "fortran_order") {
        once(have_fortran, key);
        fields.fortran_order = boolean();
      } else if (key == "shape") {
        once(have_shape, key);
        fields.shape = tuple();
      } else {
        fail("unexpected key " + printable(key));
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() == '}') {
        ++pos_;
        break;
      } else {
        fail_expected("',' or '}'");
      }
    }
    skip_space();
    if (pos_ != text_.size()) fail("unexpected characters after the dictionary at character " + std::to_string(pos_));
    if (!have_descr) fail("missing key 'descr'");
    if (!have_fortran) fail("missing key 'fortran_order'");
    if (!have_shape) fail("missing key 'shape'");
    return fields;
  }

 private:
  [[noreturn]] void fail(const std::string& message) const { throw HeaderSyntaxError(message); }
  [[noreturn]] void fail_expected(const std::string& what) const {
    fail("expected " + what +
         (at_end() ? std::string(" at the end of the header") : " at character " + std::to_string(pos_)));
  }
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }
  void skip_space() {
    while (!at_end() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  void expect(char c) {
    if (at_end() || text_[pos_] != c) fail_expected(std::string("'") + c + "'");
    ++pos_;
  }
  void once(bool& seen, const std::string& key) const {
    if (seen) fail("key " + printable(key) + " appears twice");
    seen = true;
  }
  std::string_view string_literal(const char* what) {
    const char quote = peek();
    if (at_end() || (quote != '\'' && quote != '"')) fail_expected(std::string(what) + " (a quoted string)");
    const std::size_t close = text_.find(quote, pos_ + 1);
    if (close == std::string_view::npos) fail("unterminated string at character " + std::to_string(pos_));
    const std::string_view value = text_.substr(pos_ + 1, close - pos_ - 1);
    if (value.find('\\') != std::string_view::npos) fail("escape sequences in strings are not supported");
    pos_ = close + 1;
    return value;
  }
  bool boolean() {
    if (text_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (text_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    fail_expected("True or False");
  }
  std::int64_t integer() {
    if (at_end() || text_[pos_] < '0' || text_[pos_] > '9') fail_expected("a non-negative integer");
    std::int64_t value = 0;
    while (!at_end() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      const int digit = text_[pos_] - '0';
      if (value > (std::numeric_limits<std::int64_t>::max() - digit) / 10) fail("an extent in 'shape' is too large");
      value = value * 10 + digit;
      ++pos_;
    }
    return value;
  }
  std::vector<std::int64_t> tuple() {
    expect('(');
    std::vector<std::int64_t> dims;
    bool comma = false;
    while (true) {
      skip_space();
      if (peek() == ')') {
        ++pos_;
        break;
      }
      // NumPy allows 64 dimensions; stopping there bounds what a hostile header can make us allocate.
      if (dims.size() == 64) fail("'shape' has more than 64 dimensions");
      dims.push_back(integer());
      skip_space();
      if (peek() == ',') {
        ++pos_;
        comma = true;
      } else if (peek() == ')') {
        ++pos_;
        break;
      } else {
        fail_expected("',' or ')'");
      }
    }
    // "(3)" is the number 3 in Python, not a tuple.
    if (dims.size() == 1 && !comma) fail("'shape' is not a tuple");
    return dims;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

class NpzReader {
 public:
  NpzReader(const Source& source, const std::string& label) : source_(source), label_(label) {}

  nn::NamedTensors read_all() {
    check_signature();
    const End end = find_end();
    const std::vector<Entry> entries = read_central_directory(end);
    std::vector<std::uint64_t> data;
    data.reserve(entries.size());
    for (const Entry& entry : entries) data.push_back(locate_data(entry, end.directory_offset));
    check_disjoint(entries, data);
    nn::NamedTensors out;
    out.reserve(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
      out.emplace_back(entries[i].name.substr(0, entries[i].name.size() - 4), read_member(entries[i], data[i]));
    }
    return out;
  }

 private:
  struct End {
    std::uint64_t position = 0;
    std::uint64_t entries = 0;
    std::uint64_t directory_offset = 0;
    std::uint64_t directory_size = 0;
  };
  struct Entry {
    std::string name;
    std::uint32_t crc = 0;
    std::uint64_t size = 0;
    std::uint64_t local_offset = 0;
  };

  template <class... Parts>
  [[noreturn]] void fail(const Parts&... parts) const {
    throw_runtime("load_npz", "'", label_, "': ", parts...);
  }
  template <class... Parts>
  [[noreturn]] void fail_member(const Entry& entry, const Parts&... parts) const {
    fail("member ", printable(entry.name), " ", parts...);
  }
  [[noreturn]] void fail_zip64() const {
    fail("ZIP64 archives (4 GiB or more, or 65535 or more members) are not supported");
  }
  [[noreturn]] void fail_crc(const Entry& entry) const {
    fail_member(entry, "fails its CRC-32 check: the file is corrupt");
  }

  void check_signature() const {
    const std::uint64_t size = source_.size();
    if (size == 0) fail("the file is empty");
    unsigned char head[kNpyMagicSize] = {};
    const auto count = static_cast<std::size_t>(std::min<std::uint64_t>(size, kNpyMagicSize));
    source_.read(0, count, head);
    if (count == kNpyMagicSize && std::memcmp(head, kNpyMagic, kNpyMagicSize) == 0) {
      fail("this is a .npy file (one array), not a .npz archive");
    }
    // An archive starts with its first member, or is empty (an end record only).
    if (count < 4 || (get32(head) != kLocalSignature && get32(head) != kEndSignature)) {
      fail("not a .npz file: it does not start with a ZIP signature");
    }
  }

  bool has_zip64_locator(std::uint64_t end_position) const {
    if (end_position < kZip64LocatorSize) return false;
    unsigned char signature[4];
    source_.read(end_position - kZip64LocatorSize, 4, signature);
    return get32(signature) == kZip64LocatorSignature;
  }

  End find_end() const {
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

  std::vector<Entry> read_central_directory(const End& end) const {
    std::vector<unsigned char> directory(end.directory_size);
    source_.read(end.directory_offset, directory.size(), directory.data());
    std::vector<Entry> entries;
    entries.reserve(end.entries);
    std::set<std::string> seen;
    std::uint64_t pos = 0;
    for (std::uint64_t k = 0; k < end.entries; ++k) {
      if (directory.size() - pos < kCentralHeaderSize || get32(directory.data() + pos) != kCentralSignature) {
        fail("central directory entry ", k, " is damaged: the file is corrupt");
      }
      const unsigned char* p = directory.data() + pos;
      const std::uint16_t flags = get16(p + 8);
      const std::uint16_t method = get16(p + 10);
      const std::uint32_t compressed_size = get32(p + 20);
      const std::uint32_t size = get32(p + 24);
      const std::uint64_t entry_size = kCentralHeaderSize + get16(p + 28) + get16(p + 30) + get16(p + 32);
      if (directory.size() - pos < entry_size) fail("central directory entry ", k, " is damaged: the file is corrupt");
      Entry entry;
      entry.name.assign(reinterpret_cast<const char*>(p + kCentralHeaderSize), get16(p + 28));
      entry.crc = get32(p + 16);
      entry.size = size;
      entry.local_offset = get32(p + 42);
      if (entry.name.empty()) fail("central directory entry ", k, " has an empty name: the file is corrupt");
      if (flags & kFlagEncrypted) fail_member(entry, "is encrypted, which tapegrad does not read");
      if (compressed_size == kMax32 || size == kMax32 || entry.local_offset == kMax32) fail_zip64();
      if (method == kMethodDeflate) {
        fail_member(entry,
                    "is compressed (deflate); tapegrad reads uncompressed archives: save with numpy.savez, "
                    "not numpy.savez_compressed");
      }
      if (method != kMethodStored) {
        fail_member(entry, "uses ZIP compression method ", method,
                    "; tapegrad reads only stored (uncompressed) members");
      }
      if (compressed_size != size) {
        fail_member(entry, "records a stored size of ", compressed_size, " bytes but an uncompressed size of ", size,
                    ": the file is corrupt");
      }
      if (entry.name.size() < 4 || entry.name.compare(entry.name.size() - 4, 4, ".npy") != 0) {
        fail_member(entry, "is not a .npy array (its name does not end in .npy)");
      }
      if (!seen.insert(entry.name).second) fail_member(entry, "appears twice");
      entries.push_back(std::move(entry));
      pos += entry_size;
    }
    if (pos != directory.size()) {
      fail("the central directory holds ", directory.size() - pos, " bytes beyond its ", end.entries,
           " entries: the file is corrupt");
    }
    return entries;
  }

  // Checks the member's local header and returns where its data starts.
  std::uint64_t locate_data(const Entry& entry, std::uint64_t directory_offset) const {
    if (entry.local_offset > directory_offset || directory_offset - entry.local_offset < kLocalHeaderSize) {
      fail_member(entry, "has its local header outside the archive's data (offset ", entry.local_offset,
                  "): the file is corrupt");
    }
    unsigned char header[kLocalHeaderSize];
    source_.read(entry.local_offset, sizeof header, header);
    if (get32(header) != kLocalSignature) {
      fail_member(entry, "has no local header at offset ", entry.local_offset, ": the file is corrupt");
    }
    const std::uint16_t name_size = get16(header + 26);
    const std::uint64_t data = entry.local_offset + kLocalHeaderSize + name_size + get16(header + 28);
    if (data > directory_offset || directory_offset - data < entry.size) {
      fail_member(entry, "runs past the end of the archive's data: the file is truncated or corrupt");
    }
    std::string local_name(name_size, '\0');
    source_.read(entry.local_offset + kLocalHeaderSize, name_size, local_name.data());
    if (local_name != entry.name) {
      fail_member(entry, "is named ", printable(local_name), " in its local header: the file is corrupt");
    }
    return data;
  }

  // Members whose bytes overlap would let a small hostile file make us
  // allocate its size many times over; disjoint members bound the tensors
  // read by the file's size.
  void check_disjoint(const std::vector<Entry>& entries, const std::vector<std::uint64_t>& data) const {
    std::vector<std::size_t> order(entries.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return entries[a].local_offset < entries[b].local_offset; });
    for (std::size_t k = 1; k < order.size(); ++k) {
      const std::size_t before = order[k - 1];
      const std::size_t after = order[k];
      if (data[before] + entries[before].size > entries[after].local_offset) {
        fail("members ", printable(entries[before].name), " and ", printable(entries[after].name),
             " overlap: the file is corrupt");
      }
    }
  }

  std::uint32_t crc_of(std::uint64_t offset, std::uint64_t size) const {
    std::vector<unsigned char> buffer(std::min<std::uint64_t>(size, 1 << 16));
    std::uint32_t crc = 0;
    while (size > 0) {
      const auto count = static_cast<std::size_t>(std::min<std::uint64_t>(size, buffer.size()));
      source_.read(offset, count, buffer.data());
      crc = detail::crc32(buffer.data(), count, crc);
      offset += count;
      size -= count;
    }
    return crc;
  }

  Tensor read_member(const Entry& entry, std::uint64_t data) const {
    std::uint32_t crc = 0;
    Tensor tensor;
    try {
      tensor = read_npy(entry, data, crc);
    } catch (const std::runtime_error&) {
      // A malformed header is most often a damaged one: when the checksum
      // disagrees, say that instead.
      if (crc_of(data, entry.size) != entry.crc) fail_crc(entry);
      throw;
    }
    if (crc != entry.crc) fail_crc(entry);
    return tensor;
  }

  // Parses the .npy member at `data` and reads its array; `crc` receives the
  // CRC-32 of every byte read (the whole member).
  Tensor read_npy(const Entry& entry, std::uint64_t data, std::uint32_t& crc) const {
    const std::uint64_t size = entry.size;
    unsigned char preamble[12] = {};
    const auto preamble_read = static_cast<std::size_t>(std::min<std::uint64_t>(size, sizeof preamble));
    source_.read(data, preamble_read, preamble);
    if (size < 10) fail_member(entry, "is too short for a .npy array (", size, " bytes)");
    if (std::memcmp(preamble, kNpyMagic, kNpyMagicSize) != 0) fail_member(entry, "is not a .npy array (bad magic)");
    const int major = preamble[6];
    const int minor = preamble[7];
    std::size_t prefix = 10;
    std::uint64_t header_size = 0;
    if (major == 1 && minor == 0) {
      header_size = get16(preamble + 8);
    } else if ((major == 2 || major == 3) && minor == 0) {  // 4-byte header length; 3.0 allows UTF-8 in it
      if (size < 12) fail_member(entry, "is too short for a .npy array (", size, " bytes)");
      prefix = 12;
      header_size = get32(preamble + 8);
    } else {
      fail_member(entry, "has .npy format version ", major, ".", minor,
                  ", which tapegrad does not read (it reads 1.0, 2.0 and 3.0)");
    }
    if (header_size > size - prefix) {
      fail_member(entry, "has a .npy header of ", header_size, " bytes but only ", size - prefix, " bytes follow");
    }
    std::string header(header_size, '\0');
    source_.read(data + prefix, header.size(), header.data());

    NpyFields fields;
    try {
      fields = HeaderParser(header).parse();
    } catch (const HeaderSyntaxError& error) {
      fail_member(entry, "has a malformed .npy header: ", error.what());
    }
    const std::optional<DType> dtype = dtype_from_descr(fields.descr);
    if (!dtype) {
      fail_member(entry, "has dtype ", printable(fields.descr),
                  ", which tapegrad does not read (it reads '<f4' float32, '<f8' float64 and '<i8' int64)");
    }
    if (fields.shape.size() > Shape::kMaxRank) {
      fail_member(entry, "has ", fields.shape.size(), " dimensions, more than tapegrad's maximum of ", Shape::kMaxRank);
    }
    const Shape shape(fields.shape);
    if (fields.fortran_order) {
      fail_member(entry,
                  "is stored in Fortran (column-major) order, which tapegrad does not read: save "
                  "numpy.ascontiguousarray(a) instead");
    }
    // Bound the product of the extents (zeros counted as ones) so that no
    // later stride or size computation on this shape can overflow.
    const std::int64_t limit = std::numeric_limits<std::int64_t>::max() / 8;
    std::int64_t product = 1;
    for (std::int64_t extent : fields.shape) {
      const std::int64_t factor = std::max<std::int64_t>(extent, 1);
      if (product > limit / factor) fail_member(entry, "has shape ", shape.str(), ", too large to hold");
      product *= factor;
    }
    const std::uint64_t data_size = size - prefix - header_size;
    const std::uint64_t expected = static_cast<std::uint64_t>(shape.numel()) * dtype_size(*dtype);
    if (data_size != expected) {
      fail_member(entry, "holds ", data_size, " bytes of data, but ", dtype_name(*dtype), " ", shape.str(), " needs ",
                  expected);
    }
    Tensor tensor = empty(shape, *dtype);
    source_.read(data + prefix + header_size, static_cast<std::size_t>(expected), tensor.raw_data());
    crc = detail::crc32(preamble, prefix);
    crc = detail::crc32(header.data(), header.size(), crc);
    crc = detail::crc32(tensor.raw_data(), static_cast<std::size_t>(expected), crc);
    return tensor;
  }

  const Source& source_;
  const std::string& label_;
};

}  // namespace

namespace detail {

std::string npy_header(DType dtype, const Shape& shape) {
  std::string dict = std::string("{'descr': '") + npy_descr(dtype) +
                     "', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  // Spaces, then '\n', up to a multiple of 64 bytes counting the 10-byte
  // preamble, as numpy pads: the data then starts aligned for memory mapping.
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((kNpyAlignment - unpadded % kNpyAlignment) % kNpyAlignment, ' ');
  dict += '\n';
  std::string out(kNpyMagic, kNpyMagicSize);
  out += '\x01';  // version 1.0: a 2-byte header length, enough for any tapegrad shape
  out += '\x00';
  put16(out, dict.size());
  return out + dict;
}

std::string zip_archive(const std::vector<std::pair<std::string, std::string>>& members) {
  std::vector<OutMember> out_members;
  for (const auto& [name, bytes] : members) out_members.push_back({name, {{bytes.data(), bytes.size()}}});
  const ZipPlan plan = plan_zip(out_members, kMemoryLabel);
  std::string out;
  StringSink sink(out);
  write_zip(sink, out_members, plan);
  return out;
}

std::string encode_npz(const nn::NamedTensors& tensors) {
  PreparedTensors prepared;
  prepare(tensors, kMemoryLabel, prepared);
  const ZipPlan plan = plan_zip(prepared.members, kMemoryLabel);
  std::string out;
  StringSink sink(out);
  write_zip(sink, prepared.members, plan);
  return out;
}

nn::NamedTensors decode_npz(std::string_view bytes, const std::string& label) {
  const MemorySource source(bytes);
  return NpzReader(source, label).read_all();
}

}  // namespace detail

void save_npz(const std::string& path, const nn::NamedTensors& tensors) {
  // Everything that can be checked is checked before the disk is touched.
  PreparedTensors prepared;
  prepare(tensors, path, prepared);
  const ZipPlan plan = plan_zip(prepared.members, path);

  // Before writing: stale temporaries may be what fills the disk.
  remove_stale_temporaries(path);
  // The counter keeps threads of one process from sharing a temporary file.
  static std::atomic<std::uint64_t> counter{0};
  const std::string temporary = temporary_name(path, counter++);
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw_runtime("save_npz", "'", path, "': cannot create a temporary file in its directory: ", errno_text(errno));
  }
  try {
    FileSink sink(fd, path);
    write_zip(sink, prepared.members, plan);
    // The data must be on disk before the rename makes it the checkpoint;
    // otherwise a crash could leave a renamed but empty file.
    if (::fsync(fd) != 0) throw_runtime("save_npz", "'", path, "': fsync failed: ", errno_text(errno));
    const int closed = ::close(fd);
    fd = -1;
    if (closed != 0) throw_runtime("save_npz", "'", path, "': close failed: ", errno_text(errno));
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
      throw_runtime("save_npz", "'", path, "': cannot replace it with the new file: ", errno_text(errno));
    }
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(temporary.c_str());
    throw;
  }
  sync_parent_directory(path);
}

nn::NamedTensors load_npz(const std::string& path) {
  const FileSource source(path);
  return NpzReader(source, path).read_all();
}

}  // namespace tapegrad::io
