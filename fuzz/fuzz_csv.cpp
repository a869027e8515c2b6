// libFuzzer target: the CSV reader on arbitrary text, with the options a
// user would pick (a header or not, each target kind, both dtypes). Every
// input must either be read, with shapes consistent with the table, or throw
// std::runtime_error / std::invalid_argument.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <tapegrad/data/csv.hpp>

#include "scratch_file.hpp"

using namespace tapegrad;
using namespace tapegrad::data;

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

void all_finite(const Tensor& t) {
  for (double v : t.to_vector()) check(std::isfinite(v));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fuzz::ScratchFile file(".csv");
  const std::string& path = file.write(data, size);
  for (bool header : {false, true}) {
    try {
      const CsvTable table = read_csv_table(path, header);
      check(table.values.size() == static_cast<std::size_t>(table.rows * table.cols));
      check(table.lines.size() == static_cast<std::size_t>(table.rows));
      check(!header || table.header.size() == static_cast<std::size_t>(table.cols) || table.rows == 0);
      check(table.file_bytes == size);
      for (double v : table.values) check(std::isfinite(v));
    } catch (const std::runtime_error&) {
    }
  }
  const CsvOptions choices[] = {
      {},
      {.target = CsvTarget::OneHot},
      {.target = CsvTarget::Value},
      {.has_header = true, .target_column = 0, .target = CsvTarget::OneHot, .dtype = DType::Float64},
      {.has_header = true, .target_name = "y", .target = CsvTarget::Value},
      {.delimiter = ';', .target = CsvTarget::OneHot, .num_classes = 7},
      {.delimiter = '\t', .target_column = 1},
      {.has_header = true, .labels = CsvLabels::FirstSeen, .missing = CsvMissing::Mean},
      {.has_header = true, .target = CsvTarget::OneHot, .labels = CsvLabels::Sorted, .drop_columns = {"id"},
       .missing = CsvMissing::Constant, .fill_value = -1},
  };
  for (const CsvOptions& options : choices) {
    try {
      const Dataset d = read_csv(path, options);
      check(d.features().dim() == 2);
      check(d.targets().shape(0) == d.features().shape(0));
      all_finite(d.features());
      if (options.target != CsvTarget::ClassIndex) all_finite(d.targets());
      if (options.target == CsvTarget::OneHot) {
        // Each row holds exactly one 1.
        const Tensor& t = d.targets();
        const std::vector<double> values = t.to_vector();
        for (std::int64_t r = 0; r < t.shape(0); ++r) {
          double sum = 0;
          for (std::int64_t c = 0; c < t.shape(1); ++c) sum += values[static_cast<std::size_t>(r * t.shape(1) + c)];
          check(sum == 1.0);
        }
      }
    } catch (const std::runtime_error&) {
    } catch (const std::invalid_argument&) {
    }
  }
  return 0;
}
