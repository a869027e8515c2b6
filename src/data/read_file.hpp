#pragma once
// Internal: a whole file read with POSIX calls rather than a stream, so that
// errno is read right after the call that failed and the message gives the
// real reason. Regular files are read at their known size, pipes to their
// end. Errors name `op` and the path.
#include <string>

namespace tapegrad::data::detail {

// Buffer: std::string or std::vector<std::uint8_t>.
template <class Buffer>
Buffer read_whole_file(const std::string& path, const char* op);

}  // namespace tapegrad::data::detail
