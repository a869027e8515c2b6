#include "data/read_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tapegrad/error.hpp"

namespace tapegrad::data::detail {

template <class Buffer>
Buffer read_whole_file(const std::string& path, const char* op) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    throw_runtime(op, "cannot open '", path, "': ", std::strerror(error));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    throw_runtime(op, "cannot stat '", path, "': ", std::strerror(error));
  }
  if (S_ISDIR(info.st_mode)) throw_runtime(op, "cannot open '", path, "': it is a directory");
  Buffer buffer;
  if (S_ISREG(info.st_mode)) buffer.reserve(static_cast<std::size_t>(info.st_size));
  typename Buffer::value_type chunk[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, chunk, sizeof chunk);
    if (got < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      throw_runtime(op, "cannot read '", path, "': ", std::strerror(error));
    }
    if (got == 0) break;
    buffer.insert(buffer.end(), chunk, chunk + got);
  }
  return buffer;
}

template std::string read_whole_file<std::string>(const std::string&, const char*);
template std::vector<std::uint8_t> read_whole_file<std::vector<std::uint8_t>>(const std::string&, const char*);

}  // namespace tapegrad::data::detail
