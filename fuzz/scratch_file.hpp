#pragma once
// The readers take a path: each fuzz input is written to one scratch file
// per process, on tmpfs when there is one, and read back through the public
// API. The file is removed when the process exits.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace tapegrad::fuzz {

class ScratchFile {
 public:
  explicit ScratchFile(const char* suffix) {
    const char* directory = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    path_ = std::string(directory) + "/tapegrad-fuzz-XXXXXX" + suffix;
    fd_ = ::mkstemps(path_.data(), static_cast<int>(std::string(suffix).size()));
    if (fd_ < 0) {
      std::perror("mkstemps");
      ::abort();
    }
  }
  ~ScratchFile() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  // Replaces the file's contents; returns its path.
  const std::string& write(const std::uint8_t* data, std::size_t size) {
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, data, size, 0) != static_cast<ssize_t>(size)) {
      std::perror("scratch file");
      ::abort();
    }
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace tapegrad::fuzz
