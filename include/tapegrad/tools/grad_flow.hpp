#pragma once
// Gradient flow: per-parameter gradient norms and per-layer activation
// statistics during training, as a table and a picture, to see gradients
// vanish (or explode) through depth.
//
//   tools::GradFlow flow;
//   for (step ...) {
//     Tensor out = flow.forward(*model, x);       // instead of (*model)(x) on steps you record
//     Tensor loss = mse_loss(out, y);
//     loss.backward();
//     flow.record(step, *model);                  // after backward, before zero_grad
//     ...
//   }
//   std::cout << flow.table();
//   flow.save("out/flow");   // out/flow_parameters.csv, out/flow_activations.csv, out/flow.gp, out/flow.png
//
// The picture (gnuplot, Debian: gnuplot-nox) has two panels: the gradient
// norm of every parameter, in model order and on a log scale, and the
// gradient norm of every layer's output; one line per recorded step.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/nn/module.hpp"
#include "tapegrad/nn/sequential.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::tools {

struct ParameterFlow {
  std::string name;   // module path, "3.weight"
  std::string layer;  // its module, "3" ("" for the model's own parameters)
  Shape shape;
  double grad_norm = 0;      // ‖∂L/∂p‖₂ (0 when no gradient reached it)
  double grad_max_abs = 0;   // max |∂L/∂p|
  double value_norm = 0;     // ‖p‖₂
  bool has_grad = false;
};

struct ActivationFlow {
  std::string layer;   // the Sequential child's name, "3"
  std::string module;  // its description, "Sigmoid", "Linear(32 -> 32)"
  Shape shape;
  double mean = 0;
  double std = 0;            // population standard deviation
  double min = 0;
  double max = 0;
  double fraction_zero = 0;  // share of exact zeros (dead ReLUs)
  double grad_norm = 0;      // ‖∂L/∂output‖₂ (0 when no gradient reached it)
  bool has_grad = false;
};

struct GradFlowRecord {
  std::int64_t step = 0;
  std::vector<ParameterFlow> parameters;
  std::vector<ActivationFlow> activations;  // empty unless forward() ran
};

struct GradFlowPlotOptions {
  std::string title = "gradient flow";
  std::string gnuplot = "gnuplot";
  int width = 1400;
  int height = 500;
  std::ostream* warnings = nullptr;  // nullptr: std::cerr
};

struct GradFlowPlotResult {
  std::string parameters_csv;
  std::string activations_csv;
  std::string script_path;
  std::string png_path;
  bool png_written = false;
  std::string message;  // why there is no PNG, when there is none
};

class GradFlow {
 public:
  // Runs `model` child by child, keeping each child's output (its gradient
  // retained) for the next record(). Same result as model(input).
  Tensor forward(nn::Sequential& model, const Tensor& input);
  // After backward: the gradient norms of the model's parameters and, if
  // forward() ran since the last record, the statistics of each layer's
  // output and of its gradient. Returns the new record.
  const GradFlowRecord& record(std::int64_t step, const nn::Module& model);

  const std::vector<GradFlowRecord>& records() const { return records_; }
  // A fixed-width table of one record (default: the last), parameters then
  // activations.
  std::string table() const;
  std::string table(std::size_t record) const;
  // Writes the CSV files and the gnuplot script, then draws the PNG. Without
  // gnuplot the files are still written and a warning says so (nothing
  // throws); no records or unwritable files throw.
  GradFlowPlotResult save(const std::string& stem, const GradFlowPlotOptions& options = {}) const;

 private:
  std::vector<std::pair<std::string, std::string>> layers_;  // name, description
  std::vector<Tensor> outputs_;
  std::vector<GradFlowRecord> records_;
};

}  // namespace tapegrad::tools
