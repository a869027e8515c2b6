#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <ctime>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <vector>

#include "io/errno_text.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::io {

namespace {

class FileSink final : public Sink {
 public:
  FileSink(int fd, const char* op, const std::string& path) : fd_(fd), op_(op), path_(path) {}
  void write(const void* data, std::size_t size) override {
    const char* bytes = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t written = ::write(fd_, bytes, size);
      if (written < 0) {
        if (errno == EINTR) continue;
        throw_runtime(op_, "'", path_, "': write failed: ", errno_text(errno));
      }
      bytes += written;
      size -= static_cast<std::size_t>(written);
    }
  }

 private:
  int fd_;
  const char* op_;
  const std::string& path_;
};

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

}  // namespace

void write_atomically(const std::string& path, const char* op, const std::function<void(Sink&)>& write) {
  // Before writing: stale temporaries may be what fills the disk.
  remove_stale_temporaries(path);
  // The counter keeps threads of one process from sharing a temporary file.
  static std::atomic<std::uint64_t> counter{0};
  const std::string temporary = temporary_name(path, counter++);
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw_runtime(op, "'", path, "': cannot create a temporary file in its directory: ", errno_text(errno));
  }
  try {
    FileSink sink(fd, op, path);
    write(sink);
    // The data must be on disk before the rename makes it the checkpoint;
    // otherwise a crash could leave a renamed but empty file.
    if (::fsync(fd) != 0) throw_runtime(op, "'", path, "': fsync failed: ", errno_text(errno));
    const int closed = ::close(fd);
    fd = -1;
    if (closed != 0) throw_runtime(op, "'", path, "': close failed: ", errno_text(errno));
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
      throw_runtime(op, "'", path, "': cannot replace it with the new file: ", errno_text(errno));
    }
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(temporary.c_str());
    throw;
  }
  sync_parent_directory(path);
}

}  // namespace tapegrad::io
