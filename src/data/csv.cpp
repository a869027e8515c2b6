#include "tapegrad/data/csv.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "tapegrad/error.hpp"

namespace tapegrad::data {

namespace {

constexpr const char* kOp = "read_csv";

std::string read_text(const std::string& path) {
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) throw_runtime(kOp, "cannot open '", path, "': it is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_runtime(kOp, "cannot open '", path, "': ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t");
  return s.substr(first, last - first + 1);
}

// Header cells may be quoted ("a,b" is one name; "" inside quotes is a quote).
std::vector<std::string> split_header(std::string_view line, char delimiter) {
  std::vector<std::string> names(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        names.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        names.back() += c;
      }
    } else if (c == '"' && trim(names.back()).empty()) {
      names.back().clear();
      quoted = true;
    } else if (c == delimiter) {
      names.emplace_back();
    } else {
      names.back() += c;
    }
  }
  for (std::string& name : names) name = std::string(trim(name));
  return names;
}

// Numbers as strtod reads them (a leading '+' too), but never NaN or infinity:
// a training set with those is broken.
bool parse_number(std::string_view cell, double& value) {
  if (!cell.empty() && cell.front() == '+') {
    cell.remove_prefix(1);
    if (cell.empty() || cell.front() == '-') return false;  // "+-1"
  }
  const char* end = cell.data() + cell.size();
  auto [ptr, ec] = std::from_chars(cell.data(), end, value);
  return ec == std::errc() && ptr == end;
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
  std::string_view rest(text);
  if (rest.substr(0, 3) == "\xEF\xBB\xBF") rest.remove_prefix(3);  // UTF-8 byte-order mark

  CsvTable table;
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
      table.header = split_header(line, delimiter);
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
      if (!parse_number(cell, value)) throw_runtime(kOp, path, ":", line_number, ":", column, ": '", cell, "' is not a number");
      if (!std::isfinite(value)) throw_runtime(kOp, path, ":", line_number, ":", column, ": '", cell, "' is not a finite number");
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
  for (std::int64_t r = 0; r < n; ++r) {
    const double value = cell(r, target);
    const std::int64_t line = table.lines[static_cast<std::size_t>(r)];
    if (value < 0 || value != std::floor(value) || value > 1e15) {
      throw_runtime(kOp, path, ":", line, ":", target + 1, ": label ", value, " is not a non-negative integer");
    }
    const auto label = static_cast<std::int64_t>(value);
    if (options.num_classes > 0 && label >= options.num_classes) {
      throw_runtime(kOp, path, ":", line, ":", target + 1, ": label ", label, " is out of range [0, ",
                    options.num_classes, ")");
    }
    labels[static_cast<std::size_t>(r)] = label;
    largest = std::max(largest, label);
  }
  if (options.target == CsvTarget::ClassIndex) return Dataset(features, from_indices(labels, Shape{n}));

  const std::int64_t classes = options.num_classes > 0 ? options.num_classes : largest + 1;
  if (classes > 100000) throw_runtime(kOp, path, ": one-hot targets for ", classes, " classes: is this really the label column?");
  Tensor one_hot = zeros(Shape{n, classes}, options.dtype);
  for (std::int64_t r = 0; r < n; ++r) {
    const std::int64_t at = r * classes + labels[static_cast<std::size_t>(r)];
    if (options.dtype == DType::Float32) one_hot.data<float>()[at] = 1.0f;
    else one_hot.data<double>()[at] = 1.0;
  }
  return Dataset(features, one_hot);
}

}  // namespace tapegrad::data
