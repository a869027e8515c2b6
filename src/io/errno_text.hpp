#pragma once
// Internal: an errno value as words, for the I/O messages of io/ (the same
// text strerror gives, without its shared buffer).
#include <string>
#include <system_error>

namespace tapegrad::io {

inline std::string errno_text(int error) { return std::generic_category().message(error); }

}  // namespace tapegrad::io
