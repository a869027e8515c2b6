#pragma once
// Small helpers shared by the examples: choosing an optimizer by name,
// evaluation mode, the files behind the pictures (drawn by the library's
// train::run_gnuplot), and saving a checkpoint with its learning curves.
// Their flags and main() are in command_line.hpp.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tapegrad/tapegrad.hpp>
#include <vector>

namespace examples {

// `text` followed by spaces to `width` characters; characters, not bytes,
// so that names holding UTF-8 (∂, ‖, ℓ) line up in a table.
inline std::string padded(const std::string& text, std::size_t width) {
  std::size_t characters = 0;
  for (const char c : text) characters += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return text + std::string(characters < width ? width - characters : 0, ' ');
}

// sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw with learning rate
// `lr` and the optimizers' other defaults (momentum 0.9 where it applies).
inline std::unique_ptr<tapegrad::optim::Optimizer> make_optimizer(const std::string& name,
                                                                  std::vector<tapegrad::Tensor> parameters, double lr,
                                                                  double weight_decay = 0) {
  using namespace tapegrad::optim;
  if (name == "sgd") return std::make_unique<SGD>(parameters, SGDOptions{.lr = lr, .weight_decay = weight_decay});
  if (name == "momentum") {
    return std::make_unique<SGD>(parameters, SGDOptions{.lr = lr, .momentum = 0.9, .weight_decay = weight_decay});
  }
  if (name == "nesterov") {
    return std::make_unique<SGD>(parameters,
                                 SGDOptions{.lr = lr, .momentum = 0.9, .weight_decay = weight_decay, .nesterov = true});
  }
  if (name == "adagrad") {
    return std::make_unique<Adagrad>(parameters, AdagradOptions{.lr = lr, .weight_decay = weight_decay});
  }
  if (name == "rmsprop") {
    return std::make_unique<RMSprop>(parameters, RMSpropOptions{.lr = lr, .weight_decay = weight_decay});
  }
  if (name == "adam") return std::make_unique<Adam>(parameters, AdamOptions{.lr = lr, .weight_decay = weight_decay});
  if (name == "adamw") {
    return std::make_unique<AdamW>(parameters, AdamWOptions{.lr = lr, .weight_decay = weight_decay});
  }
  throw std::invalid_argument("unknown optimizer '" + name +
                              "' (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw)");
}

// Mean loss and accuracy of a model over a data set.
struct Evaluation {
  double loss = 0;
  double accuracy = 0;
};

// For one scope: no tape, and `model` in evaluation mode (dropout off, batch
// norm on its running statistics), so that measured numbers describe the net
// itself. The mode the model had comes back at the end of the scope, so an
// evaluation in the middle of training does not switch dropout off for the
// epochs after it.
class EvaluationMode {
 public:
  explicit EvaluationMode(tapegrad::nn::Module& model) : model_(model), was_training_(model.is_training()) {
    model_.eval();
  }
  ~EvaluationMode() { model_.train(was_training_); }
  EvaluationMode(const EvaluationMode&) = delete;
  EvaluationMode& operator=(const EvaluationMode&) = delete;

 private:
  tapegrad::NoGradGuard no_grad_;  // first: on for the whole scope
  tapegrad::nn::Module& model_;
  bool was_training_;
};

// Writes `text` to `path`, replacing it; throws if that fails, so that a
// full disk is an error and not a silently truncated data file.
inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out.flush()) throw std::runtime_error("cannot write '" + path + "'");
}

// A picture's files: the data, the gnuplot script and the PNG it draws.
struct PlotFiles {
  std::string data;
  std::string script;
  std::string png;
};

// <out_dir>/<stem>.<data_extension>, <stem>.gp and <stem>.png, with out_dir
// created. The paths are absolute because the script names the data and the
// PNG, and must still find them when run by hand from another directory.
inline PlotFiles plot_files(const std::string& out_dir, const std::string& stem,
                            const std::string& data_extension = "csv") {
  namespace fs = std::filesystem;
  fs::create_directories(out_dir);
  return {fs::absolute(out_dir + "/" + stem + "." + data_extension).string(),
          fs::absolute(out_dir + "/" + stem + ".gp").string(), fs::absolute(out_dir + "/" + stem + ".png").string()};
}

// train::run_gnuplot for examples that print no message of their own when
// the picture is missing: a one-line note on stdout, in parentheses, saying
// how to get it; true when there is a picture. The pictures are extras (the
// tests do not need them), so a missing gnuplot is no error.
inline bool run_gnuplot_or_note(const std::string& script, const std::string& png) {
  const tapegrad::train::GnuplotResult run = tapegrad::train::run_gnuplot(script, png);
  if (!run.gnuplot_found) {
    std::printf("(gnuplot not found: no picture; install gnuplot-nox and run gnuplot %s)\n", script.c_str());
  } else if (!run.png_written) {
    std::printf("(no picture: %s)\n", run.message.c_str());
  }
  return run.png_written;
}

// A chart of curves over one x axis (loss per step, variance per layer, ...)
// for comparing a few runs in one picture.
struct CurvesChart {
  std::string x_name = "x";                      // the CSV's first column
  std::int64_t first_x = 0;                      // x of the first point; then +1 per point
  std::vector<std::string> names = {};           // the CSV's other columns, one per curve
  std::vector<std::string> titles = {};          // the legend, one per curve
  std::vector<std::vector<double>> curves = {};  // every curve as long as the first
  int width = 900, height = 600;                 // of the PNG, in pixels
  std::string settings = {};                     // script lines between output and plot: title, axes, key
  std::string style = "lines";                   // how each curve is drawn: "lines linewidth 2", ...
};

// Writes the chart's data as <out_dir>/<stem>.csv and its script as
// <stem>.gp, draws <stem>.png with gnuplot and says on stdout where the
// picture is (or, by run_gnuplot_or_note, why there is none). The picture is
// an extra, so a failed write is not an error here: it shows as that note.
inline void draw_curves(const std::string& out_dir, const std::string& stem, const CurvesChart& chart) {
  const PlotFiles files = plot_files(out_dir, stem);
  {
    std::ofstream csv(files.data);
    csv << chart.x_name;
    for (const std::string& name : chart.names) csv << ',' << name;
    csv << '\n';
    for (std::size_t i = 0; i < chart.curves.front().size(); ++i) {
      csv << chart.first_x + static_cast<std::int64_t>(i);
      for (const std::vector<double>& curve : chart.curves) csv << ',' << curve[i];
      csv << '\n';
    }
  }
  {
    std::ofstream gp(files.script);
    gp << "set datafile separator ','\n"
       << tapegrad::train::gnuplot_png_terminal(chart.width, chart.height, files.png) << chart.settings << "plot ";
    for (std::size_t i = 0; i < chart.titles.size(); ++i) {
      gp << (i == 0 ? "'" + files.data + "'" : std::string("''")) << " skip 1 using 1:" << i + 2 << " with "
         << chart.style << " title '" << chart.titles[i] << "'" << (i + 1 < chart.titles.size() ? ", \\\n     " : "\n");
    }
    gp << "set output\n";
  }
  if (run_gnuplot_or_note(files.script, files.png)) {
    std::printf("picture: %s (data %s)\n", files.png.c_str(), files.data.c_str());
  }
}

// Writes <out_dir>/<name>.npz (model and optimizer) and the learning curves
// <out_dir>/<curves_stem>.csv/.png, and says where unless quiet.
inline void save_training(const tapegrad::nn::Module& model, const tapegrad::optim::Optimizer& optimizer,
                          const tapegrad::train::History& history, const std::string& out_dir, const std::string& name,
                          const std::string& curves_stem, const std::string& title, bool quiet) {
  std::filesystem::create_directories(out_dir);
  const std::string checkpoint = out_dir + "/" + name + ".npz";
  tapegrad::io::save_checkpoint(checkpoint, model, optimizer);
  std::ostringstream curve_warnings;
  const tapegrad::train::CurvesResult curves =
      tapegrad::train::save_curves(history, out_dir + "/" + curves_stem, {.title = title, .warnings = &curve_warnings});
  // Only gnuplot's own warnings: a missing picture is reported below.
  if (curves.png_written) std::fputs(curve_warnings.str().c_str(), stderr);
  if (quiet) return;
  std::printf("checkpoint: %s\n", checkpoint.c_str());
  std::printf(
      "curves: %s%s\n", curves.csv_path.c_str(),
      curves.png_written ? (" and " + curves.png_path).c_str() : (" (no picture: " + curves.message + ")").c_str());
}

}  // namespace examples
