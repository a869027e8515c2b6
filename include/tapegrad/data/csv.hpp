#pragma once
// CSV of numbers: one sample per line, one column of which is the target.
//
//   x1,x2,label        read_csv("iris.csv", {.has_header = true, .target_name = "label"})
//   5.1,3.5,0          -> features float32 [N, 2], targets int64 [N]
//
// Cells are trimmed of spaces; blank lines are skipped; CRLF line ends and a
// UTF-8 byte-order mark are accepted. Quoting is supported in the header only
// (column names, which must be unique); data cells must be finite numbers
// within range of the dtype they are stored as (1e39 is refused for
// float32, 1e400 for any dtype; values below a dtype's smallest magnitude
// round towards zero as usual). A bad cell, a ragged row, a repeated header
// name or a label out of range throws std::runtime_error naming the file, the
// line and the column ("read_csv: iris.csv:7:3: 'abc' is not a number").
//
// One-hot targets are rows x classes: a small file with a large label could
// ask for gigabytes. When num_classes is inferred (0), the inferred class
// count may not exceed the number of data rows, and the one-hot array may
// not exceed 64 times the file's size (or 64 MiB, whichever is larger);
// beyond that read_csv throws, and setting num_classes explicitly allows any
// width (it is then the caller's decision).
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/data/dataset.hpp"
#include "tapegrad/dtype.hpp"

namespace tapegrad::data {

// What the target column becomes.
enum class CsvTarget {
  ClassIndex,  // int64 [N]; cells must be non-negative integers
  OneHot,      // float [N, num_classes]; cells as for ClassIndex
  Value,       // float [N, 1]: regression
};

struct CsvOptions {
  bool has_header = false;
  char delimiter = ',';
  // 0-based; negative counts from the end (-1: the last column).
  std::int64_t target_column = -1;
  // When set, the target is the header column of this name (needs has_header).
  std::string target_name{};
  CsvTarget target = CsvTarget::ClassIndex;
  // ClassIndex / OneHot: labels must lie in [0, num_classes); 0 infers
  // num_classes as the largest label + 1.
  std::int64_t num_classes = 0;
  DType dtype = DType::Float32;  // of the features (and of float targets)
};

// Every cell as a number, before any column is singled out.
struct CsvTable {
  std::vector<std::string> header;  // empty without a header
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::vector<double> values;       // rows * cols, row-major
  std::vector<std::int64_t> lines;  // the 1-based file line of each row
  std::uint64_t file_bytes = 0;     // the size of the file read
};

CsvTable read_csv_table(const std::string& path, bool has_header = false, char delimiter = ',');
Dataset read_csv(const std::string& path, const CsvOptions& options = {});

}  // namespace tapegrad::data
