#pragma once
// Training progress. On a terminal, a bar redrawn in place during each epoch
// (batches done, running loss, samples/s, ETA) that becomes the epoch's
// summary line; elsewhere (a log file, CI) one plain line per epoch; or
// nothing (Quiet).
//
//   Progress progress;                        // Auto: bar if stdout is a terminal
//   for (int epoch = 1; epoch <= epochs; ++epoch) {
//     progress.begin_epoch(epoch, epochs, loader.num_batches());
//     for (const auto& [x, y] : loader) { ...; progress.step(x.shape(0), loss.item()); }
//     progress.end_epoch({{"val_loss", v}, {"val_acc", a}});
//   }
//
// Plain line: "epoch 3/10: loss 0.4321, val_loss 0.4012, val_acc 0.9105 (8000 samples, 1.22 s, 6557 samples/s)"
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/train/metrics.hpp"

namespace tapegrad::train {

enum class ProgressMode {
  Auto,   // Bar when the stream is a terminal (std::cout / std::cerr on a tty), else Lines
  Bar,
  Lines,
  Quiet,
};

using Metrics = std::vector<std::pair<std::string, double>>;

struct ProgressOptions {
  ProgressMode mode = ProgressMode::Auto;
  std::ostream* out = nullptr;            // nullptr: std::cout
  int bar_width = 30;
  double refresh_seconds = 0.1;           // the bar is redrawn at most this often (and at the end)
  std::function<double()> clock{};        // seconds; default: steady_clock (tests inject one)
};

// True when `out` is std::cout, std::cerr or std::clog and that stream's
// file descriptor is a terminal.
bool is_terminal(const std::ostream& out);

class Progress {
 public:
  explicit Progress(ProgressOptions options = {});

  // The mode after resolving Auto.
  ProgressMode mode() const { return mode_; }

  // `epoch` is 1-based; `epochs` and `batches` (per epoch) may be 0 when unknown.
  void begin_epoch(std::int64_t epoch, std::int64_t epochs, std::int64_t batches);
  // One batch done: its sample count and mean loss.
  void step(std::int64_t samples, double loss);
  // Ends the epoch's line with extra metrics (validation loss, accuracy, ...).
  void end_epoch(const Metrics& metrics = {});

  // The epoch so far: per-sample mean loss, samples, throughput.
  double running_loss() const { return loss_.mean(); }
  std::int64_t samples() const { return loss_.count(); }
  double elapsed_seconds() const;
  double samples_per_second() const;

 private:
  double now() const;
  std::string prefix() const;
  void draw_bar(bool force);

  ProgressOptions options_;
  std::ostream* out_;
  ProgressMode mode_;
  std::int64_t epoch_ = 0;
  std::int64_t epochs_ = 0;
  std::int64_t batches_ = 0;
  std::int64_t done_ = 0;
  RunningMean loss_;
  double start_ = 0;
  double last_draw_ = 0;
  std::size_t drawn_width_ = 0;
  std::size_t columns_ = 0;  // the terminal's width, 0 when unknown
};

// "1:05", "1:02:03": minutes and seconds, hours when needed.
std::string format_duration(double seconds);

}  // namespace tapegrad::train
