#pragma once
// Loss and accuracy curves: a History of per-epoch values, saved as CSV and
// drawn to a PNG by gnuplot (Debian: gnuplot-nox).
//
//   History history;
//   history.add(epoch, {{"train_loss", l}, {"val_loss", v}, {"train_acc", t}, {"val_acc", a}});
//   save_curves(history, "out/mnist");   // out/mnist.csv, out/mnist.gp, out/mnist.png
//
// Columns whose name contains "loss" are drawn in one panel, the others
// (accuracies: training beside validation) in a second one beside it. A
// single epoch is drawn as points on a range around it.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

namespace tapegrad::train {

class History {
 public:
  // One epoch's values. A column seen for the first time is added; epochs
  // that lack a column hold NaN there (written as "nan").
  void add(std::int64_t epoch, const std::vector<std::pair<std::string, double>>& values);

  const std::vector<std::string>& columns() const { return columns_; }
  std::int64_t size() const { return static_cast<std::int64_t>(epochs_.size()); }
  const std::vector<std::int64_t>& epochs() const { return epochs_; }
  // Every epoch's value of a column; throws if there is no such column.
  std::vector<double> column(const std::string& name) const;

  // "epoch,<columns...>" then one line per epoch.
  void write_csv(const std::string& path) const;

 private:
  std::vector<std::string> columns_;
  std::vector<std::int64_t> epochs_;
  std::vector<std::vector<double>> rows_;
};

struct CurvesOptions {
  std::string title = "training curves";
  std::string gnuplot = "gnuplot";   // the program, looked up on PATH
  int width = 1200;
  int height = 450;
  std::ostream* warnings = nullptr;   // nullptr: std::cerr
};

struct CurvesResult {
  std::string csv_path;
  std::string script_path;
  std::string png_path;
  bool png_written = false;
  std::string message;   // why there is no PNG, when there is none
};

// Writes <stem>.csv and the gnuplot script <stem>.gp, then runs gnuplot to
// draw <stem>.png. Without gnuplot (or if it fails) the CSV and the script
// are still written, a warning saying so goes to options.warnings, and the
// result says why; nothing throws for that. Whatever gnuplot itself prints
// goes to options.warnings too. Unwritable files throw.
CurvesResult save_curves(const History& history, const std::string& stem, const CurvesOptions& options = {});

// The full path of `program` if an executable of that name is on PATH (or
// `program` contains a '/' and is executable), else "".
std::string find_program(const std::string& program);

}  // namespace tapegrad::train
