#include "data/csv_cells.hpp"

#include <locale.h>
#include <stdlib.h>

#include <charconv>
#include <cmath>
#include <map>

#include "data/read_file.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::data::detail {

namespace {

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
    throw_runtime(kCsvOp, path, ":", line_number, ":", names.size(), ": unterminated quote in the header");
  }
  for (std::string& name : names) name = std::string(trim(name));
  // A repeated name would make target_name pick one of them silently.
  std::map<std::string_view, std::size_t> first;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto [it, inserted] = first.emplace(names[i], i);
    if (!inserted) {
      throw_runtime(kCsvOp, path, ":", line_number, ": columns ", it->second + 1, " and ", i + 1, " are both named ",
                    quoted_cell(names[i]), ": header names must be unique");
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

}  // namespace

std::string quoted_cell(std::string_view text) { return tapegrad::detail::quoted_for_message(text, 60); }

double parse_csv_number(std::string_view cell, const std::string& path, std::int64_t line, std::int64_t column) {
  if (cell.empty()) throw_runtime(kCsvOp, path, ":", line, ":", column, ": empty cell");
  double value = 0;
  const Parsed parsed = parse_number(cell, value);
  if (parsed == Parsed::OutOfRange) {
    throw_runtime(kCsvOp, path, ":", line, ":", column, ": ", quoted_cell(cell), " is out of range for float64");
  }
  if (parsed == Parsed::NotANumber) {
    throw_runtime(kCsvOp, path, ":", line, ":", column, ": ", quoted_cell(cell), " is not a number");
  }
  if (!std::isfinite(value)) {
    throw_runtime(kCsvOp, path, ":", line, ":", column, ": ", quoted_cell(cell), " is not a finite number");
  }
  return value;
}

CsvCells split_csv(const std::string& path, bool has_header, char delimiter) {
  if (delimiter == '"' || delimiter == '\n' || delimiter == '\r') {
    throw_invalid(kCsvOp, "the delimiter cannot be a quote or a line break");
  }
  CsvCells out;
  out.text = read_whole_file<std::vector<std::uint8_t>>(path, kCsvOp);
  std::string_view rest(reinterpret_cast<const char*>(out.text.data()), out.text.size());
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
      out.header = split_header(line, delimiter, path, line_number);
      out.cols = static_cast<std::int64_t>(out.header.size());
      columns_line = line_number;
      continue;
    }
    const std::size_t row_start = out.cells.size();
    std::size_t start = 0;
    for (;;) {
      const std::size_t stop = line.find(delimiter, start);
      out.cells.push_back(trim(line.substr(start, stop == std::string_view::npos ? stop : stop - start)));
      if (stop == std::string_view::npos) break;
      start = stop + 1;
    }
    const auto columns = static_cast<std::int64_t>(out.cells.size() - row_start);
    if (columns_line == 0) {
      out.cols = columns;
      columns_line = line_number;
    } else if (columns != out.cols) {
      throw_runtime(kCsvOp, path, ":", line_number, ": ", columns, columns == 1 ? " column" : " columns", ", expected ",
                    out.cols, " (as on line ", columns_line, ")");
    }
    out.lines.push_back(line_number);
    ++out.rows;
  }
  return out;
}

}  // namespace tapegrad::data::detail
