#include "tapegrad/data/csv.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <string_view>

#include "data/csv_cells.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::data {

namespace {

using detail::CsvCells;
using detail::quoted_cell;
constexpr const char* kOp = detail::kCsvOp;
// Labels are integers held exactly in a double, and bounded well below that.
constexpr double kMaxLabel = 1e15;
// An inferred one-hot width may make targets of at most this many bytes, or
// this many times the file's size if larger (see csv.hpp).
constexpr std::uint64_t kOneHotFloorBytes = std::uint64_t{64} << 20;
constexpr std::uint64_t kOneHotPerFileByte = 64;
// Names listed in a message before "...": a file may hold thousands of classes.
constexpr std::size_t kNamesShown = 10;

// The shortest text that reads back as `value` ("1e+39", "0.1").
template <class Real>
std::string number_text(Real value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < kNamesShown; ++i) out += (i == 0 ? "" : ", ") + names[i];
  if (names.size() > kNamesShown) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out;
}

// Which columns of the file are what.
struct Columns {
  std::int64_t target = 0;
  std::vector<std::int64_t> features;  // in file order
};

std::int64_t column_named(const CsvCells& cells, const std::string& name, const std::string& path) {
  const auto it = std::find(cells.header.begin(), cells.header.end(), name);
  if (it == cells.header.end()) {
    throw_runtime(kOp, path, ": no column named '", name, "' (the header has: ", join(cells.header), ")");
  }
  return it - cells.header.begin();
}

Columns resolve_columns(const CsvCells& cells, const CsvOptions& options, const std::string& path) {
  Columns out;
  out.target = options.target_column;
  if (!options.target_name.empty()) {
    out.target = column_named(cells, options.target_name, path);
  } else if (out.target < 0) {
    out.target += cells.cols;
  }
  if (out.target < 0 || out.target >= cells.cols) {
    throw_invalid(kOp, path, ": target column ", options.target_column, " is out of range for ", cells.cols,
                  " columns");
  }
  std::vector<bool> dropped(static_cast<std::size_t>(cells.cols), false);
  for (const std::string& name : options.drop_columns) {
    const std::int64_t column = column_named(cells, name, path);
    if (column == out.target) throw_invalid(kOp, path, ": cannot drop the target column '", name, "'");
    dropped[static_cast<std::size_t>(column)] = true;
  }
  for (std::int64_t c = 0; c < cells.cols; ++c) {
    if (c != out.target && !dropped[static_cast<std::size_t>(c)]) out.features.push_back(c);
  }
  if (out.features.empty()) {
    throw_runtime(kOp, path, ": no feature columns left after dropping ", join(options.drop_columns));
  }
  return out;
}

bool is_missing(std::string_view cell, const CsvOptions& options) {
  return cell.empty() || std::find(options.missing_markers.begin(), options.missing_markers.end(), cell) !=
                             options.missing_markers.end();
}

// "(empty cell)" or "('NA')", for the messages about missing cells.
std::string missing_text(std::string_view cell) {
  return cell.empty() ? "(empty cell)" : "(" + quoted_cell(cell) + ")";
}

// The feature cells as numbers, rows x features, missing cells filled as
// `options.missing` says; records the fill values and count in `data`.
std::vector<double> read_features(const CsvCells& cells, const Columns& columns, const CsvOptions& options,
                                  const std::string& path, CsvData& data) {
  const std::int64_t n = cells.rows;
  const auto f = static_cast<std::int64_t>(columns.features.size());
  if (options.missing == CsvMissing::Values && static_cast<std::int64_t>(options.fill_values.size()) != f) {
    throw_invalid(kOp, path, ": ", options.fill_values.size(), " fill_values for ", f, " feature columns");
  }
  std::vector<double> values(static_cast<std::size_t>(n * f));
  std::vector<bool> holes(values.size(), false);
  std::vector<double> sums(static_cast<std::size_t>(f), 0.0);
  std::vector<std::int64_t> present(static_cast<std::size_t>(f), 0);
  for (std::int64_t r = 0; r < n; ++r) {
    for (std::int64_t k = 0; k < f; ++k) {
      const std::int64_t column = columns.features[static_cast<std::size_t>(k)];
      const std::string_view cell = cells.cells[static_cast<std::size_t>(r * cells.cols + column)];
      const auto at = static_cast<std::size_t>(r * f + k);
      const std::int64_t line = cells.lines[static_cast<std::size_t>(r)];
      if (is_missing(cell, options)) {
        if (options.missing == CsvMissing::Error) {
          throw_runtime(kOp, path, ":", line, ":", column + 1, ": missing value ", missing_text(cell),
                        "; set CsvOptions::missing to impute it");
        }
        holes[at] = true;
        continue;
      }
      const double value = detail::parse_csv_number(cell, path, line, column + 1);
      // A float64 cell stored as float32 must stay finite: 1e39 would become inf.
      if (options.dtype == DType::Float32 && std::isinf(static_cast<float>(value))) {
        throw_runtime(kOp, path, ":", line, ":", column + 1, ": ", number_text(value),
                      " is out of range for float32 (largest finite value ",
                      number_text(std::numeric_limits<float>::max()), "); read it as float64");
      }
      values[at] = value;
      sums[static_cast<std::size_t>(k)] += value;
      ++present[static_cast<std::size_t>(k)];
    }
  }
  switch (options.missing) {
    case CsvMissing::Error:
      return values;
    case CsvMissing::Mean:
      for (std::int64_t k = 0; k < f; ++k) {
        const auto kk = static_cast<std::size_t>(k);
        if (present[kk] == 0) {
          const std::int64_t column = columns.features[kk];
          const std::string name = cells.header.empty() ? "" : " (" + quoted_cell(cells.header[column]) + ")";
          throw_runtime(kOp, path, ": column ", column + 1, name, " has no values to take the mean of");
        }
        data.fill_values.push_back(sums[kk] / static_cast<double>(present[kk]));
      }
      break;
    case CsvMissing::Constant:
      data.fill_values.assign(static_cast<std::size_t>(f), options.fill_value);
      break;
    case CsvMissing::Values:
      data.fill_values = options.fill_values;
      break;
  }
  for (std::size_t at = 0; at < values.size(); ++at) {
    if (!holes[at]) continue;
    values[at] = data.fill_values[at % static_cast<std::size_t>(f)];
    ++data.filled_cells;
  }
  return values;
}

// A target cell: a missing one is always an error (there is nothing to
// learn from a sample without its answer).
std::string_view target_cell(const CsvCells& cells, std::int64_t row, std::int64_t target, const CsvOptions& options,
                             const std::string& path) {
  const std::string_view cell = cells.cells[static_cast<std::size_t>(row * cells.cols + target)];
  if (is_missing(cell, options)) {
    throw_runtime(kOp, path, ":", cells.lines[static_cast<std::size_t>(row)], ":", target + 1, ": missing ",
                  options.target == CsvTarget::Value ? "target value " : "label ", missing_text(cell));
  }
  return cell;
}

// Numeric labels: the class indices themselves.
std::vector<std::int64_t> number_labels(const CsvCells& cells, std::int64_t target, const CsvOptions& options,
                                        const std::string& path) {
  std::vector<std::int64_t> labels(static_cast<std::size_t>(cells.rows));
  for (std::int64_t r = 0; r < cells.rows; ++r) {
    const std::int64_t line = cells.lines[static_cast<std::size_t>(r)];
    const double value = detail::parse_csv_number(target_cell(cells, r, target, options, path), path, line, target + 1);
    if (value < 0 || value != std::floor(value)) {
      throw_runtime(kOp, path, ":", line, ":", target + 1, ": label ", number_text(value),
                    " is not a non-negative integer");
    }
    if (value > kMaxLabel) {
      throw_runtime(kOp, path, ":", line, ":", target + 1, ": label ", number_text(value),
                    " is too large for a class label (at most ", kMaxLabel, ")");
    }
    const auto label = static_cast<std::int64_t>(value);
    if (options.num_classes > 0 && label >= options.num_classes) {
      throw_runtime(kOp, path, ":", line, ":", target + 1, ": label ", label, " is out of range [0, ",
                    options.num_classes, ")");
    }
    labels[static_cast<std::size_t>(r)] = label;
  }
  return labels;
}

// Text labels: indices into `classes`, which is given (options.classes) or
// made from this file's labels in first-seen or sorted order.
std::vector<std::int64_t> text_labels(const CsvCells& cells, std::int64_t target, const CsvOptions& options,
                                      const std::string& path, std::vector<std::string>& classes) {
  std::map<std::string_view, std::int64_t> index;
  const bool given = !options.classes.empty();
  if (given) {
    classes = options.classes;
    for (std::size_t i = 0; i < classes.size(); ++i) {
      if (!index.emplace(classes[i], static_cast<std::int64_t>(i)).second) {
        throw_invalid(kOp, "classes: ", quoted_cell(classes[i]), " is given twice");
      }
    }
  }
  std::vector<std::int64_t> labels(static_cast<std::size_t>(cells.rows));
  for (std::int64_t r = 0; r < cells.rows; ++r) {
    const std::string_view label = target_cell(cells, r, target, options, path);
    auto it = index.find(label);
    if (it == index.end()) {
      if (given) {
        throw_runtime(kOp, path, ":", cells.lines[static_cast<std::size_t>(r)], ":", target + 1, ": label ",
                      quoted_cell(label), " is not one of the ", classes.size(), " classes given (", join(classes),
                      ")");
      }
      it = index.emplace(label, static_cast<std::int64_t>(classes.size())).first;
      classes.emplace_back(label);
    }
    labels[static_cast<std::size_t>(r)] = it->second;
  }
  if (!given && options.labels == CsvLabels::Sorted) {
    // Renumber from first-seen to sorted order; std::map iterates sorted.
    std::vector<std::int64_t> rank(classes.size());
    std::int64_t next = 0;
    for (const auto& [label, first_seen] : index) rank[static_cast<std::size_t>(first_seen)] = next++;
    for (std::int64_t& label : labels) label = rank[static_cast<std::size_t>(label)];
    std::sort(classes.begin(), classes.end());
  }
  if (options.num_classes > 0 && static_cast<std::int64_t>(classes.size()) > options.num_classes) {
    throw_runtime(kOp, path, ": ", classes.size(), " classes (", join(classes),
                  ") do not fit num_classes = ", options.num_classes);
  }
  return labels;
}

// One-hot rows of `classes` columns; an inferred width is bounded by the file.
Tensor one_hot_targets(const std::vector<std::int64_t>& labels, std::int64_t classes, bool inferred,
                       const CsvCells& cells, std::int64_t target, const CsvOptions& options, const std::string& path) {
  const auto n = static_cast<std::int64_t>(labels.size());
  const std::int64_t element = static_cast<std::int64_t>(dtype_size(options.dtype));
  std::int64_t count = 0, bytes = 0;
  if (__builtin_mul_overflow(n, classes, &count) || __builtin_mul_overflow(count, element, &bytes)) {
    throw_runtime(kOp, path, ": one-hot targets of ", n, " rows x ", classes, " classes overflow a 64-bit size");
  }
  if (inferred) {
    // The width comes from the file: bound it by the file, so that a few
    // kilobytes cannot ask for gigabytes. A given num_classes is the caller's
    // decision and is honoured.
    const auto largest_row = std::max_element(labels.begin(), labels.end()) - labels.begin();
    const std::int64_t largest = labels[static_cast<std::size_t>(largest_row)];
    const std::string where = path + ":" + std::to_string(cells.lines[static_cast<std::size_t>(largest_row)]) + ":" +
                              std::to_string(target + 1);
    if (classes > n) {
      throw_runtime(kOp, where, ": label ", largest, " makes ", classes, " one-hot classes, more than the ", n,
                    " data rows; is this the label column? Set num_classes to allow it");
    }
    const std::uint64_t limit = std::max<std::uint64_t>(kOneHotFloorBytes, kOneHotPerFileByte * cells.text.size());
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
  return one_hot;
}

void check_options(const CsvOptions& options) {
  if (!is_floating(options.dtype))
    throw_invalid(kOp, "dtype must be float32 or float64, got ", dtype_name(options.dtype));
  if (!options.target_name.empty() && !options.has_header) {
    throw_invalid(kOp, "target_name '", options.target_name, "' needs has_header = true");
  }
  if (!options.drop_columns.empty() && !options.has_header) {
    throw_invalid(kOp, "drop_columns (", join(options.drop_columns), ") needs has_header = true");
  }
  if (options.num_classes < 0) throw_invalid(kOp, "num_classes must be non-negative, got ", options.num_classes);
  if (options.labels != CsvLabels::Numbers && options.target == CsvTarget::Value) {
    throw_invalid(kOp, "text labels need class targets (CsvTarget::ClassIndex or OneHot), not Value");
  }
  if (!options.classes.empty() && options.labels == CsvLabels::Numbers) {
    throw_invalid(kOp, "classes are given but labels is CsvLabels::Numbers; set labels to FirstSeen or Sorted");
  }
}

}  // namespace

CsvTable read_csv_table(const std::string& path, bool has_header, char delimiter) {
  const CsvCells cells = detail::split_csv(path, has_header, delimiter);
  CsvTable table;
  table.header = cells.header;
  table.rows = cells.rows;
  table.cols = cells.cols;
  table.lines = cells.lines;
  table.file_bytes = cells.text.size();
  table.values.reserve(cells.cells.size());
  for (std::int64_t r = 0; r < cells.rows; ++r) {
    for (std::int64_t c = 0; c < cells.cols; ++c) {
      table.values.push_back(detail::parse_csv_number(cells.cells[static_cast<std::size_t>(r * cells.cols + c)], path,
                                                      cells.lines[static_cast<std::size_t>(r)], c + 1));
    }
  }
  return table;
}

CsvData read_csv_data(const std::string& path, const CsvOptions& options) {
  check_options(options);
  const CsvCells cells = detail::split_csv(path, options.has_header, options.delimiter);
  if (cells.rows == 0) throw_runtime(kOp, path, ": no data rows");
  if (cells.cols < 2)
    throw_runtime(kOp, path, ": needs at least 2 columns (features and a target), found ", cells.cols);
  const Columns columns = resolve_columns(cells, options, path);

  CsvData data;
  for (std::int64_t c : columns.features) {
    if (!cells.header.empty()) data.feature_names.push_back(cells.header[static_cast<std::size_t>(c)]);
  }
  const std::int64_t n = cells.rows;
  const auto f = static_cast<std::int64_t>(columns.features.size());
  const std::vector<double> values = read_features(cells, columns, options, path, data);
  const Tensor features = from_vector(values, Shape{n, f}, options.dtype);

  if (options.target == CsvTarget::Value) {
    std::vector<double> targets(static_cast<std::size_t>(n));
    for (std::int64_t r = 0; r < n; ++r) {
      const std::int64_t line = cells.lines[static_cast<std::size_t>(r)];
      const double value = detail::parse_csv_number(target_cell(cells, r, columns.target, options, path), path, line,
                                                    columns.target + 1);
      if (options.dtype == DType::Float32 && std::isinf(static_cast<float>(value))) {
        throw_runtime(kOp, path, ":", line, ":", columns.target + 1, ": ", number_text(value),
                      " is out of range for float32 (largest finite value ",
                      number_text(std::numeric_limits<float>::max()), "); read it as float64");
      }
      targets[static_cast<std::size_t>(r)] = value;
    }
    data.dataset = Dataset(features, from_vector(targets, Shape{n, 1}, options.dtype));
    return data;
  }

  const bool text = options.labels != CsvLabels::Numbers;
  const std::vector<std::int64_t> labels = text ? text_labels(cells, columns.target, options, path, data.classes)
                                                : number_labels(cells, columns.target, options, path);
  if (options.target == CsvTarget::ClassIndex) {
    data.dataset = Dataset(features, from_indices(labels, Shape{n}));
    return data;
  }
  const bool inferred = options.num_classes == 0;
  const std::int64_t classes = !inferred ? options.num_classes
                               : text    ? static_cast<std::int64_t>(data.classes.size())
                                         : *std::max_element(labels.begin(), labels.end()) + 1;
  // Text classes never outnumber the rows (or were given): no bound needed.
  data.dataset =
      Dataset(features, one_hot_targets(labels, classes, inferred && !text, cells, columns.target, options, path));
  return data;
}

Dataset read_csv(const std::string& path, const CsvOptions& options) { return read_csv_data(path, options).dataset; }

}  // namespace tapegrad::data
