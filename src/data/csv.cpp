#include "tapegrad/data/csv.hpp"

#include <locale.h>
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <string_view>

#include "data/read_file.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::data {

namespace {

constexpr const char* kOp = "read_csv";
// Labels are integers held exactly in a double, and bounded well below that.
constexpr double kMaxLabel = 1e15;
// An inferred one-hot width may make targets of at most this many bytes, or
// this many times the file's size if larger (see csv.hpp).
constexpr std::uint64_t kOneHotFloorBytes = std::uint64_t{64} << 20;
constexpr std::uint64_t kOneHotPerFileByte = 64;

std::string read_text(const std::string& path) { return detail::read_whole_file<std::string>(path, kOp); }

// Text from a file, fit for a message: quoted, control bytes escaped, capped
// in length (a broken file may hold a megabyte-long "cell").
std::string quoted(std::string_view text) { return tapegrad::detail::quoted_for_message(text, 60); }

// The shortest text that reads back as `value` ("1e+39", "0.1").
template <class Real>
std::string number_text(Real value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t");
  return s.substr(first, last - first + 1);
}

// Header cells may be quoted ("a,b" is one name; "" inside quotes is a quote).
std::vector<std::string> split_header(std::string_view line, char delimiter, const std::string& path,
                                      std::int64_t line_number) {
  std::vector<std::string> names(1);
  bool in_quotes = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_quotes) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        names.back() += '"';
        ++i;
      } else if (c == '"') {
        in_quotes = false;
      } else {
        names.back() += c;
      }
    } else if (c == '"' && trim(names.back()).empty()) {
      names.back().clear();
      in_quotes = true;
    } else if (c == delimiter) {
      names.emplace_back();
    } else {
      names.back() += c;
    }
  }
  if (in_quotes) {
    throw_runtime(kOp, path, ":", line_number, ":", names.size(), ": unterminated quote in the header");
  }
  for (std::string& name : names) name = std::string(trim(name));
  // A repeated name would make target_name pick one of them silently.
  std::map<std::string_view, std::size_t> first;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto [it, inserted] = first.emplace(names[i], i);
    if (!inserted) {
      throw_runtime(kOp, path, ":", line_number, ": columns ", it->second + 1, " and ", i + 1, " are both named ",
                    quoted(names[i]), ": header names must be unique");
    }
  }
  return names;
}

enum class Parsed { Number, NotANumber, OutOfRange };

// Numbers as strtod reads them (a leading '+' too). Infinity and NaN parse
// here and are refused by the caller: a training set with those is broken.
Parsed parse_number(std::string_view cell, double& value) {
  if (!cell.empty() && cell.front() == '+') {
    cell.remove_prefix(1);
    if (cell.empty() || cell.front() == '-') return Parsed::NotANumber;  // "+-1"
  }
  const char* end = cell.data() + cell.size();
  auto [ptr, ec] = std::from_chars(cell.data(), end, value);
  if (ptr != end) return Parsed::NotANumber;
  if (ec == std::errc::result_out_of_range) {
    // Well-formed but beyond float64: from_chars does not say which way.
    // strtod in the C locale does: +-HUGE_VAL for "1e400", which is an error,
    // and a signed zero for "1e-400", which rounds to it like any reader.
    static const locale_t c_locale = ::newlocale(LC_ALL_MASK, "C", locale_t{});
    const std::string copy(cell);
    const double rounded = ::strtod_l(copy.c_str(), nullptr, c_locale);
    if (std::isinf(rounded)) return Parsed::OutOfRange;
    value = rounded;
    return Parsed::Number;
  }
  return ec == std::errc() ? Parsed::Number : Parsed::NotANumber;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

CsvTable read_csv_table(const std::string& path, bool has_header, char delimiter) {
  if (delimiter == '"' || delimiter == '\n' || delimiter == '\r') {
    throw_invalid(kOp, "the delimiter cannot be a quote or a line break");
  }
  const std::string text = read_text(path);
  CsvTable table;
  table.file_bytes = text.size();
  std::string_view rest(text);
  if (rest.substr(0, 3) == "\xEF\xBB\xBF") rest.remove_prefix(3);  // UTF-8 byte-order mark

  std::int64_t line_number = 0;
  std::int64_t columns_line = 0;  // the line that fixed the column count
  while (!rest.empty()) {
    const std::size_t newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view{} : rest.substr(newline + 1);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty()) continue;

    if (has_header && columns_line == 0) {
      table.header = split_header(line, delimiter, path, line_number);
      table.cols = static_cast<std::int64_t>(table.header.size());
      columns_line = line_number;
      continue;
    }
    std::int64_t column = 0;
    const std::size_t row_start = table.values.size();
    std::size_t start = 0;
    for (;;) {
      const std::size_t stop = line.find(delimiter, start);
      const std::string_view cell = trim(line.substr(start, stop == std::string_view::npos ? stop : stop - start));
      ++column;
      double value = 0;
      if (cell.empty()) throw_runtime(kOp, path, ":", line_number, ":", column, ": empty cell");
      const Parsed parsed = parse_number(cell, value);
      if (parsed == Parsed::OutOfRange) {
        throw_runtime(kOp, path, ":", line_number, ":", column, ": ", quoted(cell), " is out of range for float64");
      }
      if (parsed == Parsed::NotANumber) {
        throw_runtime(kOp, path, ":", line_number, ":", column, ": ", quoted(cell), " is not a number");
      }
      if (!std::isfinite(value)) {
        throw_runtime(kOp, path, ":", line_number, ":", column, ": ", quoted(cell), " is not a finite number");
      }
      table.values.push_back(value);
      if (stop == std::string_view::npos) break;
      start = stop + 1;
    }
    if (columns_line == 0) {
      table.cols = column;
      columns_line = line_number;
    } else if (column != table.cols) {
      table.values.resize(row_start);
      throw_runtime(kOp, path, ":", line_number, ": ", column, column == 1 ? " column" : " columns", ", expected ",
                    table.cols, " (as on line ", columns_line, ")");
    }
    table.lines.push_back(line_number);
    ++table.rows;
  }
  return table;
}

Dataset read_csv(const std::string& path, const CsvOptions& options) {
  if (!is_floating(options.dtype)) throw_invalid(kOp, "dtype must be float32 or float64, got ", dtype_name(options.dtype));
  if (!options.target_name.empty() && !options.has_header) {
    throw_invalid(kOp, "target_name '", options.target_name, "' needs has_header = true");
  }
  if (options.num_classes < 0) throw_invalid(kOp, "num_classes must be non-negative, got ", options.num_classes);
  const CsvTable table = read_csv_table(path, options.has_header, options.delimiter);
  if (table.rows == 0) throw_runtime(kOp, path, ": no data rows");
  if (table.cols < 2) throw_runtime(kOp, path, ": needs at least 2 columns (features and a target), found ", table.cols);

  std::int64_t target = options.target_column;
  if (!options.target_name.empty()) {
    const auto it = std::find(table.header.begin(), table.header.end(), options.target_name);
    if (it == table.header.end()) {
      throw_runtime(kOp, path, ": no column named '", options.target_name, "' (the header has: ", join(table.header), ")");
    }
    target = it - table.header.begin();
  } else if (target < 0) {
    target += table.cols;
  }
  if (target < 0 || target >= table.cols) {
    throw_invalid(kOp, path, ": target column ", options.target_column, " is out of range for ", table.cols, " columns");
  }

  const std::int64_t n = table.rows;
  const std::int64_t f = table.cols - 1;
  auto cell = [&](std::int64_t row, std::int64_t col) { return table.values[static_cast<std::size_t>(row * table.cols + col)]; };
  auto line_of = [&](std::int64_t row) { return table.lines[static_cast<std::size_t>(row)]; };

  // A float64 cell stored as float32 must stay finite: 1e39 would become inf.
  if (options.dtype == DType::Float32) {
    for (std::int64_t r = 0; r < n; ++r) {
      for (std::int64_t c = 0; c < table.cols; ++c) {
        if (c == target && options.target != CsvTarget::Value) continue;  // labels stay integers
        if (std::isinf(static_cast<float>(cell(r, c)))) {
          throw_runtime(kOp, path, ":", line_of(r), ":", c + 1, ": ", number_text(cell(r, c)),
                        " is out of range for float32 (largest finite value ",
                        number_text(std::numeric_limits<float>::max()), "); read it as float64");
        }
      }
    }
  }

  Tensor features = empty(Shape{n, f}, options.dtype);
  auto fill_features = [&](auto* out) {
    for (std::int64_t r = 0; r < n; ++r) {
      for (std::int64_t c = 0, k = 0; c < table.cols; ++c) {
        if (c != target) out[r * f + k++] = static_cast<std::remove_pointer_t<decltype(out)>>(cell(r, c));
      }
    }
  };
  if (options.dtype == DType::Float32) fill_features(features.data<float>());
  else fill_features(features.data<double>());

  if (options.target == CsvTarget::Value) {
    Tensor values = empty(Shape{n, 1}, options.dtype);
    for (std::int64_t r = 0; r < n; ++r) {
      if (options.dtype == DType::Float32) values.data<float>()[r] = static_cast<float>(cell(r, target));
      else values.data<double>()[r] = cell(r, target);
    }
    return Dataset(features, values);
  }

  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  std::int64_t largest = 0;
  std::int64_t largest_row = 0;
  for (std::int64_t r = 0; r < n; ++r) {
    const double value = cell(r, target);
    if (value < 0 || value != std::floor(value)) {
      throw_runtime(kOp, path, ":", line_of(r), ":", target + 1, ": label ", number_text(value),
                    " is not a non-negative integer");
    }
    if (value > kMaxLabel) {
      throw_runtime(kOp, path, ":", line_of(r), ":", target + 1, ": label ", number_text(value),
                    " is too large for a class label (at most ", kMaxLabel, ")");
    }
    const auto label = static_cast<std::int64_t>(value);
    if (options.num_classes > 0 && label >= options.num_classes) {
      throw_runtime(kOp, path, ":", line_of(r), ":", target + 1, ": label ", label, " is out of range [0, ",
                    options.num_classes, ")");
    }
    labels[static_cast<std::size_t>(r)] = label;
    if (label > largest) largest = label, largest_row = r;
  }
  if (options.target == CsvTarget::ClassIndex) return Dataset(features, from_indices(labels, Shape{n}));

  const std::int64_t classes = options.num_classes > 0 ? options.num_classes : largest + 1;
  const std::int64_t element = static_cast<std::int64_t>(dtype_size(options.dtype));
  std::int64_t cells = 0, bytes = 0;
  if (__builtin_mul_overflow(n, classes, &cells) || __builtin_mul_overflow(cells, element, &bytes)) {
    throw_runtime(kOp, path, ": one-hot targets of ", n, " rows x ", classes, " classes overflow a 64-bit size");
  }
  if (options.num_classes == 0) {
    // The width comes from the file: bound it by the file, so that a few
    // kilobytes cannot ask for gigabytes. A given num_classes is the caller's
    // decision and is honoured.
    const std::string where = path + ":" + std::to_string(line_of(largest_row)) + ":" + std::to_string(target + 1);
    if (classes > n) {
      throw_runtime(kOp, where, ": label ", largest, " makes ", classes, " one-hot classes, more than the ", n,
                    " data rows; is this the label column? Set num_classes to allow it");
    }
    const std::uint64_t limit = std::max<std::uint64_t>(kOneHotFloorBytes, kOneHotPerFileByte * table.file_bytes);
    if (static_cast<std::uint64_t>(bytes) > limit) {
      throw_runtime(kOp, where, ": label ", largest, " makes one-hot targets of ", n, " rows x ", classes,
                    " classes (", bytes, " bytes), more than ", kOneHotPerFileByte,
                    " times the file's size; set num_classes to allow it");
    }
  }
  Tensor one_hot = zeros(Shape{n, classes}, options.dtype);
  for (std::int64_t r = 0; r < n; ++r) {
    const std::int64_t at = r * classes + labels[static_cast<std::size_t>(r)];
    if (options.dtype == DType::Float32) one_hot.data<float>()[at] = 1.0f;
    else one_hot.data<double>()[at] = 1.0;
  }
  return Dataset(features, one_hot);
}

}  // namespace tapegrad::data
