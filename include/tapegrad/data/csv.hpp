#pragma once
// CSV of numbers: one sample per line, one column of which is the target.
//
//   x1,x2,label        read_csv("iris.csv", {.has_header = true, .target_name = "label"})
//   5.1,3.5,0          -> features float32 [N, 2], targets int64 [N]
//
// Real tables also have text labels, ID columns and holes. read_csv_data
// reads them and returns what it learned, so that a test file is read the
// way its training file was:
//
//   id,x1,x2,species
//   a7,5.1,NA,setosa
//
//   const CsvOptions options{.has_header = true, .target_name = "species",
//                            .labels = CsvLabels::Sorted, .drop_columns = {"id"},
//                            .missing = CsvMissing::Mean};
//   CsvData train = read_csv_data("train.csv", options);
//   CsvOptions test_options = options;
//   test_options.classes = train.classes;          // the training mapping
//   test_options.missing = CsvMissing::Values;     // the training means
//   test_options.fill_values = train.fill_values;
//   CsvData test = read_csv_data("test.csv", test_options);
//
// Cells are trimmed of spaces; blank lines are skipped; CRLF line ends and a
// UTF-8 byte-order mark are accepted. Quoting is supported in the header only
// (column names, which must be unique); data cells must be finite numbers
// within range of the dtype they are stored as (1e39 is refused for
// float32, 1e400 for any dtype; values below a dtype's smallest magnitude
// round towards zero as usual). A bad cell, a ragged row, a repeated header
// name or a label out of range throws std::runtime_error naming the file, the
// line and the column ("read_csv: iris.csv:7:3: 'abc' is not a number").
// So does a missing cell (empty, or a missing_markers text such as NA),
// unless CsvOptions::missing says how to fill it; a missing label is always
// an error.
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

// What the target column's cells are (ClassIndex and OneHot targets).
enum class CsvLabels {
  Numbers,    // the class indices themselves: non-negative integers
  FirstSeen,  // any text (trimmed); class i is the i-th distinct label in file order
  Sorted,     // any text; classes in byte order of their labels (independent of row order)
};

// What a missing cell of a feature column becomes.
enum class CsvMissing {
  Error,     // std::runtime_error naming file:line:column
  Mean,      // the mean of the column's present cells in the file being read
  Constant,  // CsvOptions::fill_value (any double, NaN included)
  Values,    // fill_values[k] for feature k: e.g. a training read's CsvData::fill_values
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
  CsvLabels labels = CsvLabels::Numbers;
  // Text labels: when given, class i is classes[i] (pass the training
  // read's CsvData::classes to read its test file with the same mapping),
  // and a label not among them is an error naming the file, line and
  // label. Empty: the classes are this file's labels, ordered by `labels`.
  std::vector<std::string> classes{};
  // Header names of columns to skip (an ID, free text): their cells are
  // never read. Needs has_header; the target cannot be dropped.
  std::vector<std::string> drop_columns{};
  // Cells that count as missing besides empty ones (compared after trimming).
  std::vector<std::string> missing_markers{"NA"};
  CsvMissing missing = CsvMissing::Error;
  double fill_value = 0;              // CsvMissing::Constant
  std::vector<double> fill_values{};  // CsvMissing::Values: one per feature column, in order
};

// A read_csv_data result: the data set and what reading the file decided.
struct CsvData {
  Dataset dataset;
  // The header names of the feature columns, in the features' order (empty
  // without a header).
  std::vector<std::string> feature_names;
  // Text labels: class i's label (the targets' index i); empty for
  // CsvLabels::Numbers and Value targets.
  std::vector<std::string> classes;
  // Per feature column, what its missing cells became: Mean: this file's
  // column means (computed whether or not a cell was missing, so that they
  // can impute the test file); Constant / Values: the values used; Error:
  // empty.
  std::vector<double> fill_values;
  std::int64_t filled_cells = 0;  // missing cells imputed
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
CsvData read_csv_data(const std::string& path, const CsvOptions& options = {});
// read_csv_data(path, options).dataset.
Dataset read_csv(const std::string& path, const CsvOptions& options = {});

}  // namespace tapegrad::data
