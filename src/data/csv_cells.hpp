#pragma once
// Internal: a CSV file cut into trimmed cells, before any cell is read as a
// number or a label, so that read_csv can decide per column what a cell is
// (a feature, a text label, a skipped ID). Also the number parser and the
// quoting of file text in messages that read_csv_table and read_csv share.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tapegrad::data::detail {

inline constexpr const char* kCsvOp = "read_csv";

struct CsvCells {
  CsvCells() = default;
  CsvCells(CsvCells&&) = default;  // a vector's move keeps its buffer, so `cells` stay valid
  CsvCells& operator=(CsvCells&&) = default;
  CsvCells(const CsvCells&) = delete;  // a copy's cells would point into the original
  CsvCells& operator=(const CsvCells&) = delete;

  std::vector<std::uint8_t> text;   // the file; `cells` point into it
  std::vector<std::string> header;  // empty without a header
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::vector<std::string_view> cells;  // rows * cols, row-major, trimmed of spaces and tabs
  std::vector<std::int64_t> lines;      // the 1-based file line of each row
};

// Reads and splits `path`. Throws std::runtime_error naming the file and the
// line for a ragged row, a repeated header name or an unterminated quote.
CsvCells split_csv(const std::string& path, bool has_header, char delimiter);

// `cell` as a finite float64, or std::runtime_error naming
// path:line:column ("'abc' is not a number", "... is out of range for
// float64", "... is not a finite number", "empty cell").
double parse_csv_number(std::string_view cell, const std::string& path, std::int64_t line, std::int64_t column);

// File text fit for a message: quoted, control bytes escaped, capped.
std::string quoted_cell(std::string_view text);

}  // namespace tapegrad::data::detail
