// One-step-ahead forecasting of a real series: the yearly mean sunspot
// numbers 1700-2008 (scripts/get-series takes them from Debian's
// python3-statsmodels). A GRU (or an LSTM) reads the last --window years
// and predicts the next one; a linear layer on its final hidden state gives
// the value.
//
// What keeps the test honest:
// - the split is chronological, by the year of the value predicted:
//   training up to --val-start (1930), validation up to --test-start
//   (1965), test from there to 2008 (44 years, four solar cycles). Inputs
//   are past values only, so a test window may read validation years (they
//   are known when the forecast is made) but never the year it predicts;
// - the normalisation (mean and standard deviation) comes from the training
//   years alone;
// - the epoch is chosen by early stopping on the validation RMSE (the best
//   weights restored); the test years are predicted once, at the end. The
//   defaults were chosen by validation RMSE too.
//
// The yardstick is the naive forecast, "next year = this year", which is
// hard to beat on a slow series; sunspots follow an ~11-year cycle, and a
// model that has learned its shape (the fast rise, the slower fall) beats
// it clearly. It prints `test_rmse=... naive_rmse=... ratio=...` in sunspot
// units, and draws forecast vs truth over the test years.
//
// Exits 1 unless test_rmse < --max-ratio × naive_rmse: the test suite runs
// it (--short) as a convergence check.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "command_line.hpp"
#include "example_support.hpp"

using namespace tapegrad;

namespace {

const char* kDescription =
    "forecast: one-step-ahead forecasts of the yearly sunspot numbers by a GRU, an LSTM or a linear AR baseline, "
    "against the naive last-value forecast.";

struct Series {
  std::vector<double> years;
  std::vector<double> values;
};

// The yearly series, checked to have one value for every year.
Series read_series(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    throw std::runtime_error(path + " is missing (scripts/get-series makes it)");
  }
  const data::Dataset table = data::read_csv(
      path,
      {.has_header = true, .target_name = "SUNACTIVITY", .target = data::CsvTarget::Value, .dtype = DType::Float64});
  Series series{table.features().to_vector(), table.targets().to_vector()};
  for (std::size_t i = 1; i < series.years.size(); ++i) {
    if (series.years[i] != series.years[i - 1] + 1) {
      throw std::runtime_error(path + ": year " + std::to_string(static_cast<long long>(series.years[i])) +
                               " does not follow " + std::to_string(static_cast<long long>(series.years[i - 1])));
    }
  }
  return series;
}

// Index of `year` in the series (clamped to [0, size]).
std::int64_t index_of(const Series& series, double year) {
  const double offset = year - series.years.front();
  return static_cast<std::int64_t>(std::clamp(offset, 0.0, static_cast<double>(series.years.size())));
}

// x ↦ (x − mean) / std with the training part's statistics.
struct Standardiser {
  double mean = 0, std = 1;
  double forward(double x) const { return (x - mean) / std; }
  double inverse(double z) const { return z * std + mean; }
};

Standardiser fit_standardiser(const std::vector<double>& values, std::int64_t end) {
  Standardiser s;
  for (std::int64_t i = 0; i < end; ++i) s.mean += values[static_cast<std::size_t>(i)];
  s.mean /= static_cast<double>(end);
  double squares = 0;
  for (std::int64_t i = 0; i < end; ++i) squares += std::pow(values[static_cast<std::size_t>(i)] - s.mean, 2);
  s.std = std::sqrt(squares / static_cast<double>(end));
  return s;
}

// The windows that predict the values at indices [first, end): inputs
// [n, window, 1] (batch first) of the `window` standardised values before
// each target, targets [n, 1] standardised.
struct Windows {
  data::Dataset set;
  std::vector<std::int64_t> targets;  // the series index of each target
};

Windows make_windows(const std::vector<double>& z, std::int64_t window, std::int64_t first, std::int64_t end) {
  Windows w;
  std::vector<double> inputs, targets;
  for (std::int64_t t = std::max(first, window); t < end; ++t) {
    inputs.insert(inputs.end(), z.begin() + (t - window), z.begin() + t);
    targets.push_back(z[static_cast<std::size_t>(t)]);
    w.targets.push_back(t);
  }
  const auto n = static_cast<std::int64_t>(w.targets.size());
  if (n == 0) throw std::invalid_argument("a part of the split has no windows (check --window and the years)");
  w.set = data::Dataset(from_vector(inputs, {n, window, 1}), from_vector(targets, {n, 1}));
  return w;
}

// A recurrent layer over the window, then a linear layer on the last
// layer's final hidden state: [B, T, 1] → [B, 1]. Or, as a baseline, the
// linear layer alone on the T values.
class Forecaster : public nn::Module {
 public:
  Forecaster(const std::string& cell, std::int64_t hidden, std::int64_t layers, std::int64_t window)
      : nn::Module("Forecaster") {
    const nn::RecurrentOptions options{.num_layers = layers, .batch_first = true};
    if (cell == "gru") {
      recurrent_ = register_module("rnn", std::make_shared<nn::GRU>(1, hidden, options));
    } else if (cell == "lstm") {
      recurrent_ = register_module("rnn", std::make_shared<nn::LSTM>(1, hidden, options));
    } else if (cell != "linear") {
      throw std::invalid_argument("unknown cell '" + cell + "' (gru, lstm, linear)");
    }
    // "linear": no recurrent layer; the head reads the window itself, an
    // autoregressive model of order `window` (the classical baseline).
    head_ = register_module("head", std::make_shared<nn::Linear>(recurrent_ ? hidden : window, 1));
  }

  Tensor forward(const Tensor& x) override {
    if (!recurrent_) return (*head_)(reshape(x, {x.shape(0), x.shape(1)}));
    const Tensor h = recurrent_->forward(x, {}).state.h;  // [layers, B, hidden]
    const std::int64_t layers = h.shape(0);
    return (*head_)(reshape(slice(h, 0, layers - 1, layers), {h.shape(1), h.shape(2)}));
  }

  std::string str() const override { return recurrent_ ? recurrent_->str() + " -> " + head_->str() : head_->str(); }

 private:
  std::shared_ptr<nn::RecurrentBase> recurrent_;
  std::shared_ptr<nn::Linear> head_;
};

// The model's forecasts of the windows' targets, in the series' units.
std::vector<double> predict(Forecaster& model, const Windows& windows, const Standardiser& s) {
  const examples::EvaluationMode evaluating(model);
  std::vector<double> z = model(windows.set.features()).to_vector();
  for (double& v : z) v = s.inverse(v);
  return z;
}

// "Next year = this year".
std::vector<double> naive_forecast(const Series& series, const Windows& windows) {
  std::vector<double> out;
  for (const std::int64_t t : windows.targets) out.push_back(series.values[static_cast<std::size_t>(t - 1)]);
  return out;
}

double rmse(const std::vector<double>& forecast, const Series& series, const Windows& windows) {
  double squares = 0;
  for (std::size_t i = 0; i < forecast.size(); ++i) {
    squares += std::pow(forecast[i] - series.values[static_cast<std::size_t>(windows.targets[i])], 2);
  }
  return std::sqrt(squares / static_cast<double>(forecast.size()));
}

struct Settings {
  std::int64_t epochs = 300, patience = 40, batch_size = 16;
  double lr = 3e-3, clip = 1;
  std::uint64_t seed = 1;
  bool quiet = false;
};

struct Trained {
  train::History history;
  std::int64_t best_epoch = 0, epochs_run = 0;
};

// Mini-batch Adam on the MSE of the standardised values; after each epoch
// the validation RMSE (in series units) feeds early stopping, which keeps
// the best weights and puts them back at the end.
Trained fit(Forecaster& model, const Windows& fit_windows, const Windows& val_windows, const Series& series,
            const Standardiser& s, const Settings& o) {
  data::DataLoader loader(fit_windows.set, {.batch_size = o.batch_size, .shuffle = true, .seed = o.seed});
  const std::vector<Tensor> parameters = model.parameters();
  optim::Adam optimizer(parameters, {.lr = o.lr});
  train::EarlyStopping stopper(model, {.patience = o.patience, .min_delta = 0, .restore_best = true});
  Trained result;
  const std::int64_t report_every = std::max<std::int64_t>(1, o.epochs / 20);
  for (std::int64_t epoch = 1; epoch <= o.epochs; ++epoch) {
    model.train();
    train::RunningMean train_mse;
    for (const auto& [x, y] : loader) {
      const Tensor loss = mse_loss(model(x), y);
      optimizer.zero_grad();
      loss.backward();
      // Recurrent nets see the occasional huge gradient (a step through
      // many near-linear time steps); clipping keeps one batch from
      // throwing the weights far off.
      if (o.clip > 0) optim::clip_grad_norm_(parameters, o.clip);
      optimizer.step();
      train_mse.add(loss.item(), x.shape(0));
    }
    const double train_rmse = std::sqrt(train_mse.mean()) * s.std;
    const double val_rmse = rmse(predict(model, val_windows, s), series, val_windows);
    result.history.add(epoch, {{"train_rmse_loss", train_rmse}, {"val_rmse_loss", val_rmse}});
    result.epochs_run = epoch;
    const bool stop = stopper.step(val_rmse);
    if (!o.quiet && (epoch == 1 || epoch % report_every == 0 || stop)) {
      std::printf("epoch %4lld  train RMSE %7.3f  validation RMSE %7.3f%s\n", static_cast<long long>(epoch), train_rmse,
                  val_rmse, stop ? "  (early stop)" : "");
    }
    if (stop) break;
  }
  stopper.restore_best();  // also when the epochs ran out first
  result.best_epoch = stopper.best_epoch();
  return result;
}

// Two panels: the whole series with the validation and test years shaded,
// and the test years' truth, forecast and naive forecast.
void draw_forecast(const std::string& out_dir, const Series& series, const Windows& test,
                   const std::vector<double>& forecast, const std::vector<double>& naive, double val_start,
                   double test_start, const std::string& title, bool quiet) {
  const examples::PlotFiles files = examples::plot_files(out_dir, "forecast_test");
  const std::string series_csv = std::filesystem::absolute(out_dir + "/forecast_series.csv").string();
  {
    std::ostringstream csv;
    csv << "year,value\n";
    for (std::size_t i = 0; i < series.years.size(); ++i) csv << series.years[i] << ',' << series.values[i] << '\n';
    examples::write_file(series_csv, csv.str());
  }
  {
    std::ostringstream csv;
    csv << "year,truth,forecast,naive\n";
    for (std::size_t i = 0; i < forecast.size(); ++i) {
      const auto t = static_cast<std::size_t>(test.targets[i]);
      csv << series.years[t] << ',' << series.values[t] << ',' << forecast[i] << ',' << naive[i] << '\n';
    }
    examples::write_file(files.data, csv.str());
  }
  std::ostringstream gp;
  gp << "# Drawn by the forecast example. Redraw with: gnuplot forecast_test.gp\n"
     << "set datafile separator ','\n"
     << train::gnuplot_png_terminal(1100, 800, files.png) << "set termoption noenhanced\n"
     << "set multiplot layout 2,1 title '" << title << "'\n"
     << "set grid\nset ylabel 'sunspot number'\nset key top left\n"
     << "set title 'yearly sunspot numbers: training, validation (light) and test (dark) years'\n"
     << "set object 1 rect from " << val_start - 0.5 << ", graph 0 to " << test_start - 0.5
     << ", graph 1 fillcolor rgb '#eef3ff' fillstyle solid noborder behind\n"
     << "set object 2 rect from " << test_start - 0.5 << ", graph 0 to " << series.years.back() + 0.5
     << ", graph 1 fillcolor rgb '#d8e4ff' fillstyle solid noborder behind\n"
     << "set xrange [" << series.years.front() << ':' << series.years.back() << "]\n"
     << "plot '" << series_csv << "' skip 1 using 1:2 with lines lw 1.5 lc rgb '#333333' notitle\n"
     << "unset object 1\nunset object 2\nset autoscale x\nset xlabel 'year'\n"
     << "set title 'test years: one-step-ahead forecasts'\n"
     << "plot '" << files.data
     << "' skip 1 using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb 'black' title 'truth', \\\n"
     << "     '' skip 1 using 1:3 with linespoints lw 2 pt 5 ps 0.6 lc rgb '#d62728' title 'model', \\\n"
     << "     '' skip 1 using 1:4 with lines lw 1.5 dt 2 lc rgb '#888888' title 'naive (last year)'\n"
     << "unset multiplot\nset output\n";
  examples::write_file(files.script, gp.str());
  if (examples::run_gnuplot_or_note(files.script, files.png) && !quiet) {
    std::printf("picture: %s (data %s)\n", files.png.c_str(), files.data.c_str());
  }
}

int run(int argc, char** argv) {
  bool short_mode = false;
  std::string path = TAPEGRAD_SOURCE_DIR "/data/sunspots/sunspots.csv", cell = "gru", out_dir = "forecast_out";
  std::int64_t hidden = 32, layers = 1, window = 20;
  Settings o;
  double val_start = 1930, test_start = 1965, max_ratio = 1;
  const std::int64_t one = 1;
  examples::CommandLine cli(kDescription);
  cli.text("--data", path,
           "the series, \"YEAR\",\"SUNACTIVITY\" CSV (the default is the repository's "
           "data/sunspots/sunspots.csv)",
           "FILE");
  cli.choice("--cell", cell, "the recurrent cell, or linear (no recurrent layer: an AR(window) baseline)",
             {"gru", "lstm", "linear"});
  cli.default_when(short_mode,
                   cli.integer("--hidden", hidden, "hidden units of the recurrent layer (16 with --short)", one),
                   hidden, std::int64_t{16});
  cli.integer("--layers", layers, "stacked recurrent layers", one);
  cli.integer("--window", window, "years of past values in each input sequence", one);
  cli.default_when(short_mode, cli.integer("--epochs", o.epochs, "at most this many epochs (100 with --short)", one),
                   o.epochs, std::int64_t{100});
  cli.default_when(short_mode,
                   cli.integer("--patience", o.patience,
                               "stop after N epochs without a better validation RMSE (25 with --short)", one),
                   o.patience, std::int64_t{25});
  cli.integer("--batch-size", o.batch_size, "mini-batch size", one);
  cli.number("--lr", o.lr, "Adam's learning rate", examples::above(0));
  cli.number("--clip", o.clip, "clip the gradient norm to X before each step (0 = off)", examples::at_least(0));
  cli.number("--val-start", val_start, "first year predicted in validation; earlier ones train");
  cli.number("--test-start", test_start, "first year predicted in the test");
  cli.integer("--seed", o.seed, "random seed");
  cli.flag("--short", short_mode, "the test suite's mode: fewer epochs, hidden 16");
  cli.text("--out", out_dir, "CSV, gnuplot scripts and PNGs go here", "DIR");
  cli.number("--max-ratio", max_ratio, "exit 1 unless test RMSE < X times the naive forecast's", examples::above(0));
  cli.flag("--quiet", o.quiet, "print only the result lines");
  if (!cli.parse(argc, argv)) return 0;
  if (!(val_start < test_start)) throw std::invalid_argument("--val-start must come before --test-start");

  manual_seed(o.seed);
  const Series series = read_series(path);
  const std::int64_t val_begin = index_of(series, val_start), test_begin = index_of(series, test_start);
  const auto n = static_cast<std::int64_t>(series.values.size());
  if (val_begin <= window) throw std::invalid_argument("no training windows before --val-start");
  const Standardiser s = fit_standardiser(series.values, val_begin);  // training years only
  std::vector<double> z;
  for (const double v : series.values) z.push_back(s.forward(v));
  const Windows fit_windows = make_windows(z, window, 0, val_begin);
  const Windows val_windows = make_windows(z, window, val_begin, test_begin);
  const Windows test_windows = make_windows(z, window, test_begin, n);

  auto year = [&](std::int64_t t) { return static_cast<long long>(series.years[static_cast<std::size_t>(t)]); };
  auto describe = [&](const Windows& w) {
    return std::to_string(year(w.targets.front())) + "-" + std::to_string(year(w.targets.back())) + " (" +
           std::to_string(w.targets.size()) + ")";
  };
  Forecaster model(cell, hidden, layers, window);
  if (!o.quiet) {
    std::printf("data: %lld years %lld-%lld from %s\n", static_cast<long long>(n), year(0), year(n - 1), path.c_str());
    std::printf("predicted years: training %s, validation %s, test %s; inputs: the previous %lld years\n",
                describe(fit_windows).c_str(), describe(val_windows).c_str(), describe(test_windows).c_str(),
                static_cast<long long>(window));
    std::printf("normalisation from the training years only: mean %.2f, std %.2f\n", s.mean, s.std);
    std::printf(
        "model: %s; Adam lr %g, batch %lld, MSE, gradient norm clipped to %g, at most %lld epochs,\n"
        "       early stopping on the validation RMSE (patience %lld)\n\n",
        model.str().c_str(), o.lr, static_cast<long long>(o.batch_size), o.clip, static_cast<long long>(o.epochs),
        static_cast<long long>(o.patience));
  }

  const Trained trained = fit(model, fit_windows, val_windows, series, s, o);
  const double val_rmse = rmse(predict(model, val_windows, s), series, val_windows);
  const double val_naive = rmse(naive_forecast(series, val_windows), series, val_windows);
  // The test years, once, with the weights validation chose.
  const std::vector<double> forecast = predict(model, test_windows, s);
  const std::vector<double> naive = naive_forecast(series, test_windows);
  const double test_rmse = rmse(forecast, series, test_windows);
  const double naive_rmse = rmse(naive, series, test_windows);
  const double ratio = test_rmse / naive_rmse;

  std::filesystem::create_directories(out_dir);
  std::ostringstream curve_warnings;
  const train::CurvesResult curves =
      train::save_curves(trained.history, out_dir + "/forecast_curves",
                         {.title = "forecast: RMSE per epoch", .warnings = &curve_warnings});
  char title[160];
  std::snprintf(title, sizeof title, "%s, %lld hidden, window %lld: test RMSE %.2f, naive %.2f (ratio %.3f)",
                cell.c_str(), static_cast<long long>(hidden), static_cast<long long>(window), test_rmse, naive_rmse,
                ratio);
  draw_forecast(out_dir, series, test_windows, forecast, naive, val_start, test_start, title, o.quiet);
  if (!o.quiet) {
    std::printf(
        "curves: %s%s\n", curves.csv_path.c_str(),
        curves.png_written ? (" and " + curves.png_path).c_str() : (" (no picture: " + curves.message + ")").c_str());
  }

  std::printf("best_epoch=%lld of %lld val_rmse=%.3f val_naive_rmse=%.3f\n", static_cast<long long>(trained.best_epoch),
              static_cast<long long>(trained.epochs_run), val_rmse, val_naive);
  std::printf("test_rmse=%.3f naive_rmse=%.3f ratio=%.3f (test years %s)\n", test_rmse, naive_rmse, ratio,
              describe(test_windows).c_str());
  const bool ok = ratio < max_ratio;
  if (!ok) std::printf("FAILED: test RMSE is not below %g x the naive forecast's\n", max_ratio);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("forecast", argc, argv, run); }
