#pragma once
// Error helpers: every message starts with the op's name, then says what was
// wrong with the shapes or values involved.
#include <cstdio>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tapegrad {

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

namespace detail {
// Text read from a file, fit for a message: quoted, control bytes escaped
// as \xNN, at most `max_shown` bytes (a broken file may hold a megabyte-long
// "name" or "cell").
inline std::string quoted_for_message(std::string_view text, std::size_t max_shown) {
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < max_shown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7F) {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max_shown) out += "...";
  return out + "'";
}
}  // namespace detail

namespace detail {
// Thrown when backward reads a saved tensor that was written in place after
// it was saved; the engine prefixes the name of the op whose backward read it.
class SavedTensorModified : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
}  // namespace detail

// Allocation failure, naming the op and the bytes asked for. A bad_alloc,
// so that code catching std::bad_alloc still catches it.
class OutOfMemoryError : public std::bad_alloc {
 public:
  explicit OutOfMemoryError(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// Shape, dtype or argument errors.
template <class... Parts>
[[noreturn]] void throw_invalid(const char* op, const Parts&... parts) {
  throw std::invalid_argument(detail::concat(op, ": ", parts...));
}

// Index errors.
template <class... Parts>
[[noreturn]] void throw_out_of_range(const char* op, const Parts&... parts) {
  throw std::out_of_range(detail::concat(op, ": ", parts...));
}

// Misuse of the graph (second backward through a freed graph, ...).
template <class... Parts>
[[noreturn]] void throw_runtime(const char* op, const Parts&... parts) {
  throw std::runtime_error(detail::concat(op, ": ", parts...));
}

}  // namespace tapegrad
