#include "tapegrad/train/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "tapegrad/error.hpp"

namespace tapegrad::train {

namespace {

std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

std::string metric_list(const Metrics& metrics) {
  std::string out;
  for (const auto& [name, value] : metrics) out += (out.empty() ? "" : ", ") + name + " " + fixed(value, 4);
  return out;
}

// The file descriptor behind the standard streams; -1 for any other.
int stream_fd(const std::ostream& out) {
  if (&out == &std::cout) return STDOUT_FILENO;
  if (&out == &std::cerr || &out == &std::clog) return STDERR_FILENO;
  return -1;
}

// The terminal's width in columns, 0 when unknown.
std::size_t terminal_columns(const std::ostream& out) {
  const int fd = stream_fd(out);
  winsize size{};
  if (fd < 0 || ::ioctl(fd, TIOCGWINSZ, &size) != 0) return 0;
  return size.ws_col;
}

}  // namespace

bool is_terminal(const std::ostream& out) {
  const int fd = stream_fd(out);
  return fd >= 0 && ::isatty(fd) == 1;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = static_cast<long long>(std::llround(seconds));
  char buffer[64];
  if (total >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", total / 3600, total / 60 % 60, total % 60);
  } else {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld", total / 60, total % 60);
  }
  return buffer;
}

Progress::Progress(ProgressOptions options)
    : options_(std::move(options)), out_(options_.out ? options_.out : &std::cout), mode_(options_.mode) {
  if (options_.bar_width < 1) throw_invalid("Progress", "bar_width must be positive, got ", options_.bar_width);
  if (mode_ == ProgressMode::Auto) mode_ = is_terminal(*out_) ? ProgressMode::Bar : ProgressMode::Lines;
}

double Progress::now() const {
  if (options_.clock) return options_.clock();
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

double Progress::elapsed_seconds() const { return std::max(0.0, now() - start_); }

double Progress::samples_per_second() const {
  const double elapsed = elapsed_seconds();
  return elapsed > 0 ? static_cast<double>(samples()) / elapsed : 0.0;
}

std::string Progress::prefix() const {
  return "epoch " + std::to_string(epoch_) + (epochs_ > 0 ? "/" + std::to_string(epochs_) : "");
}

void Progress::begin_epoch(std::int64_t epoch, std::int64_t epochs, std::int64_t batches) {
  epoch_ = epoch;
  epochs_ = std::max<std::int64_t>(epochs, 0);
  batches_ = std::max<std::int64_t>(batches, 0);
  done_ = 0;
  loss_.reset();
  start_ = now();
  last_draw_ = start_;
  drawn_width_ = 0;
  columns_ = terminal_columns(*out_);
  if (mode_ == ProgressMode::Bar) draw_bar(true);
}

void Progress::step(std::int64_t samples, double loss) {
  ++done_;
  loss_.add(loss, samples);
  if (mode_ == ProgressMode::Bar) draw_bar(false);
}

void Progress::draw_bar(bool force) {
  const double t = now();
  if (!force && t - last_draw_ < options_.refresh_seconds && done_ != batches_) return;
  last_draw_ = t;
  std::string stats;
  if (samples() > 0) stats += " loss " + fixed(running_loss(), 4) + " " + fixed(samples_per_second(), 0) + " samples/s";
  if (batches_ > 0 && done_ > 0 && done_ < batches_) {
    const double per_batch = (t - start_) / static_cast<double>(done_);
    stats += " ETA " + format_duration(per_batch * static_cast<double>(batches_ - done_));
  }
  auto build = [&](std::int64_t bar) {
    std::string line = prefix() + " ";
    if (batches_ > 0) {
      const std::int64_t filled = std::min(bar, done_ * bar / batches_);
      line += "[" + std::string(static_cast<std::size_t>(filled), '=');
      if (filled < bar) line += ">" + std::string(static_cast<std::size_t>(bar - filled - 1), ' ');
      line += "] " + std::to_string(done_) + "/" + std::to_string(batches_);
    } else {
      line += std::to_string(done_) + " batches";
    }
    return line + stats;
  };
  std::int64_t bar = options_.bar_width;
  std::string line = build(bar);
  // A line wider than the terminal wraps, and '\r' would then redraw only
  // its last row: narrow the bar first (down to 10), then cut the line.
  if (columns_ > 1 && line.size() > columns_ - 1) {
    const auto excess = static_cast<std::int64_t>(line.size() - (columns_ - 1));
    if (bar > 10) line = build(std::max<std::int64_t>(10, bar - excess));
    if (line.size() > columns_ - 1) line.resize(columns_ - 1);
  }
  const std::size_t width = line.size();
  // Pad with spaces so that a shorter line hides the end of the previous one.
  if (width < drawn_width_) line += std::string(drawn_width_ - width, ' ');
  drawn_width_ = width;
  *out_ << '\r' << line << std::flush;
}

void Progress::end_epoch(const Metrics& metrics) {
  if (mode_ == ProgressMode::Quiet) return;
  Metrics all;
  if (samples() > 0) all.emplace_back("loss", running_loss());
  all.insert(all.end(), metrics.begin(), metrics.end());
  const std::string summary = metric_list(all) + (all.empty() ? "(" : " (") + std::to_string(samples()) + " samples, " +
                              fixed(elapsed_seconds(), 2) + " s, " + fixed(samples_per_second(), 0) + " samples/s)";
  if (mode_ == ProgressMode::Lines) {
    *out_ << prefix() << ": " << summary << "\n" << std::flush;
    return;
  }
  std::string line = prefix() + " ";
  if (batches_ > 0) line += "[" + std::string(static_cast<std::size_t>(options_.bar_width), '=') + "] ";
  line += summary;
  if (line.size() < drawn_width_) line += std::string(drawn_width_ - line.size(), ' ');
  drawn_width_ = 0;
  *out_ << '\r' << line << "\n" << std::flush;
}

}  // namespace tapegrad::train
