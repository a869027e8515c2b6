#include "tapegrad/train/curves.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>

#include "os/process.hpp"
#include "plot/gnuplot.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::train {

namespace fs = std::filesystem;

namespace {

std::string number(double value) {
  if (std::isnan(value)) return "nan";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.9g", value);
  return buffer;
}

using plot::quoted;

constexpr const char* kOp = "save_curves";

// "set <axis>range" around `value` when a range would be empty: gnuplot
// cannot autoscale a range of one value, widens it itself and prints a
// warning. True when a range was set.
bool widen_single_value(std::ostream& gp, const char* axis, double low, double high, double margin) {
  if (!(low == high)) return false;  // also false for NaN: no finite value at all
  gp << "set " << axis << "range [" << number(low - margin) << ":" << number(high + margin) << "]\n";
  return true;
}

void plot_panel(std::ostream& gp, const History& history, const std::string& csv, const std::string& title,
                const std::vector<std::pair<std::string, int>>& series, const char* key, double point_size) {
  gp << "set title " << quoted(title) << "\n";
  gp << "set key " << key << "\n";
  double low = std::numeric_limits<double>::quiet_NaN(), high = low;
  for (const auto& [name, column] : series) {
    for (double value : history.column(name)) {
      if (!std::isfinite(value)) continue;
      low = std::isnan(low) ? value : std::min(low, value);
      high = std::isnan(high) ? value : std::max(high, value);
    }
  }
  const bool fixed_y = widen_single_value(gp, "y", low, high, std::max(0.05 * std::abs(low), 1e-3));
  gp << "plot ";
  for (std::size_t i = 0; i < series.size(); ++i) {
    gp << (i == 0 ? quoted(csv) : std::string("''")) << " skip 1 using 1:" << series[i].second
       << " with linespoints pointsize " << point_size << " title " << quoted(series[i].first)
       << (i + 1 < series.size() ? ", \\\n     " : "\n");
  }
  if (fixed_y) gp << "set autoscale y\n";
}

}  // namespace

void History::add(std::int64_t epoch, const std::vector<std::pair<std::string, double>>& values) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::string& name = values[i].first;
    if (name.empty() || name == "epoch" || name.find_first_of(",\"\r\n") != std::string::npos) {
      throw_invalid("History::add", "column name '", name, "' must be non-empty, not 'epoch', and hold no comma, quote or line break");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (values[j].first == name) throw_invalid("History::add", "column '", name, "' appears twice");
    }
  }
  std::vector<double> row(columns_.size(), std::numeric_limits<double>::quiet_NaN());
  for (const auto& [name, value] : values) {
    auto it = std::find(columns_.begin(), columns_.end(), name);
    if (it == columns_.end()) {
      columns_.push_back(name);
      for (auto& earlier : rows_) earlier.push_back(std::numeric_limits<double>::quiet_NaN());
      row.push_back(value);
    } else {
      row[static_cast<std::size_t>(it - columns_.begin())] = value;
    }
  }
  epochs_.push_back(epoch);
  rows_.push_back(std::move(row));
}

std::vector<double> History::column(const std::string& name) const {
  auto it = std::find(columns_.begin(), columns_.end(), name);
  if (it == columns_.end()) throw_invalid("History::column", "no column '", name, "'");
  const auto index = static_cast<std::size_t>(it - columns_.begin());
  std::vector<double> out;
  for (const auto& row : rows_) out.push_back(row[index]);
  return out;
}

void History::write_csv(const std::string& path) const {
  std::ofstream out = plot::open_for_writing(kOp, path);
  out << "epoch";
  for (const std::string& name : columns_) out << ',' << name;
  out << '\n';
  for (std::size_t r = 0; r < rows_.size(); ++r) {
    out << epochs_[r];
    for (double value : rows_[r]) out << ',' << number(value);
    out << '\n';
  }
  plot::finish(kOp, out, path);
}

std::string find_program(const std::string& program) { return os::find_program(program); }

CurvesResult save_curves(const History& history, const std::string& stem, const CurvesOptions& options) {
  std::ostream& warn = options.warnings ? *options.warnings : std::cerr;
  CurvesResult result;
  result.csv_path = stem + ".csv";
  result.script_path = stem + ".gp";
  result.png_path = stem + ".png";
  plot::create_parent_directory(kOp, stem);
  history.write_csv(result.csv_path);

  // The script names files by absolute path, so it runs from any directory.
  const std::string csv = fs::absolute(result.csv_path).string();
  const std::string png = fs::absolute(result.png_path).string();
  std::vector<std::pair<std::string, int>> losses, others;
  for (std::size_t i = 0; i < history.columns().size(); ++i) {
    const std::string& name = history.columns()[i];
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    (lower.find("loss") != std::string::npos ? losses : others).emplace_back(name, static_cast<int>(i) + 2);
  }
  bool all_accuracies = !others.empty();
  for (const auto& [name, column] : others) all_accuracies = all_accuracies && name.find("acc") != std::string::npos;
  {
    std::ofstream gp = plot::open_for_writing(kOp, result.script_path);
    gp << "# Training curves written by tapegrad::train::save_curves. Redraw with: gnuplot " << quoted(result.script_path) << "\n";
    plot::write_preamble(gp, options.width, options.height, png);
    gp << "set xlabel 'epoch'\n";
    bool one_epoch = false;
    if (history.size() > 0) {
      const auto [first, last] = std::minmax_element(history.epochs().begin(), history.epochs().end());
      // One epoch: a range around it, one tick on it, and points big enough to see without lines.
      one_epoch = widen_single_value(gp, "x", static_cast<double>(*first), static_cast<double>(*last), 0.5);
      if (one_epoch) gp << "set xtics 1\n";
    }
    const double point_size = one_epoch ? 1.5 : 0.6;
    const bool two_panels = !losses.empty() && !others.empty();
    if (two_panels) gp << "set multiplot layout 1,2 title " << quoted(options.title) << "\n";
    if (!losses.empty())
      plot_panel(gp, history, csv, two_panels ? "loss" : options.title, losses, "top right", point_size);
    if (!others.empty()) {
      plot_panel(gp, history, csv, two_panels ? (all_accuracies ? "accuracy" : "metrics") : options.title, others,
                 "bottom right", point_size);
    }
    if (two_panels) gp << "unset multiplot\n";
    gp << "set output\n";
    plot::finish(kOp, gp, result.script_path);
  }

  if (history.size() == 0 || history.columns().empty()) {
    std::error_code ignored;
    fs::remove(result.png_path, ignored);  // a stale picture must not pass for a new one
    result.message = "no epochs to plot";
  } else {
    plot::Drawn drawn = plot::draw(options.gnuplot, result.script_path, result.png_path);
    warn << drawn.output;  // gnuplot's own warnings, as it wrote them
    result.png_written = drawn.png_written;
    result.message = std::move(drawn.message);
  }
  if (!result.png_written) {
    warn << "save_curves: warning: " << result.message << "; wrote " << result.csv_path << " and " << result.script_path
         << " but no PNG (draw it with: gnuplot " << result.script_path << ")\n";
  }
  return result;
}

}  // namespace tapegrad::train
