#include "io/npy.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include "io/zip_format.hpp"

namespace tapegrad::io::npy {

namespace {

constexpr std::size_t kAlignment = 64;

using zip::get16;
using zip::get32;
using zip::printable;

// A syntax error in the header dict; read_array says where it was found.
struct HeaderSyntaxError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& message) { throw FormatError(message); }

const char* descr(DType dtype) {
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

}  // namespace

std::string header(DType dtype, const Shape& shape) {
  std::string dict =
      std::string("{'descr': '") + descr(dtype) + "', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  // Spaces, then '\n', up to a multiple of 64 bytes counting the 10-byte
  // preamble, as numpy pads: the data then starts aligned for memory mapping.
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((kAlignment - unpadded % kAlignment) % kAlignment, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicSize);
  out += '\x01';  // version 1.0: a 2-byte header length, enough for any tapegrad shape
  out += '\x00';
  zip::put16(out, dict.size());
  return out + dict;
}

Tensor read_array(const std::function<void(std::size_t, void*)>& read, std::uint64_t size) {
  if (size < 10) fail("is too short for a .npy array (" + std::to_string(size) + " bytes)");
  unsigned char preamble[12] = {};
  read(10, preamble);
  if (std::memcmp(preamble, kMagic, kMagicSize) != 0) fail("is not a .npy array (bad magic)");
  const int major = preamble[6];
  const int minor = preamble[7];
  std::size_t prefix = 10;
  std::uint64_t header_size = 0;
  if (major == 1 && minor == 0) {
    header_size = get16(preamble + 8);
  } else if ((major == 2 || major == 3) && minor == 0) {  // 4-byte header length; 3.0 allows UTF-8 in it
    if (size < 12) fail("is too short for a .npy array (" + std::to_string(size) + " bytes)");
    read(2, preamble + 10);
    prefix = 12;
    header_size = get32(preamble + 8);
  } else {
    fail("has .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
         ", which tapegrad does not read (it reads 1.0, 2.0 and 3.0)");
  }
  if (header_size > size - prefix) {
    fail("has a .npy header of " + std::to_string(header_size) + " bytes but only " + std::to_string(size - prefix) +
         " bytes follow");
  }
  std::string text(header_size, '\0');
  read(text.size(), text.data());

  NpyFields fields;
  try {
    fields = HeaderParser(text).parse();
  } catch (const HeaderSyntaxError& error) {
    fail(std::string("has a malformed .npy header: ") + error.what());
  }
  const std::optional<DType> dtype = dtype_from_descr(fields.descr);
  if (!dtype) {
    fail("has dtype " + printable(fields.descr) +
         ", which tapegrad does not read (it reads '<f4' float32, '<f8' float64 and '<i8' int64)");
  }
  if (fields.shape.size() > Shape::kMaxRank) {
    fail("has " + std::to_string(fields.shape.size()) + " dimensions, more than tapegrad's maximum of " +
         std::to_string(Shape::kMaxRank));
  }
  const Shape shape(fields.shape);
  if (fields.fortran_order) {
    fail(
        "is stored in Fortran (column-major) order, which tapegrad does not read: save "
        "numpy.ascontiguousarray(a) instead");
  }
  // Bound the product of the extents (zeros counted as ones) so that no
  // later stride or size computation on this shape can overflow.
  const std::int64_t limit = std::numeric_limits<std::int64_t>::max() / 8;
  std::int64_t product = 1;
  for (std::int64_t extent : fields.shape) {
    const std::int64_t factor = std::max<std::int64_t>(extent, 1);
    if (product > limit / factor) fail("has shape " + shape.str() + ", too large to hold");
    product *= factor;
  }
  const std::uint64_t data_size = size - prefix - header_size;
  const std::uint64_t expected = static_cast<std::uint64_t>(shape.numel()) * dtype_size(*dtype);
  if (data_size != expected) {
    fail("holds " + std::to_string(data_size) + " bytes of data, but " + dtype_name(*dtype) + " " + shape.str() +
         " needs " + std::to_string(expected));
  }
  Tensor tensor = empty(shape, *dtype);
  read(static_cast<std::size_t>(expected), tensor.raw_data());
  return tensor;
}

}  // namespace tapegrad::io::npy
