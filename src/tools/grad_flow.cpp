#include "tapegrad/tools/grad_flow.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "plot/gnuplot.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::tools {

namespace fs = std::filesystem;

namespace {

std::string number(double value, const char* format = "%.6g") {
  if (std::isnan(value)) return "nan";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

double norm(const std::vector<double>& v) {
  double squares = 0;
  for (double x : v) squares += x * x;
  return std::sqrt(squares);
}

using plot::quoted;

constexpr const char* kOp = "GradFlow::save";

std::ofstream open_for_writing(const std::string& path) { return plot::open_for_writing(kOp, path); }

void finish(std::ofstream& out, const std::string& path) { plot::finish(kOp, out, path); }

// A CSV field: quoted when it holds a comma or a quote (module descriptions do).
std::string field(const std::string& text) {
  if (text.find_first_of(",\"") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

Tensor GradFlow::forward(nn::Sequential& model, const Tensor& input) {
  layers_.clear();
  outputs_.clear();
  Tensor h = input;
  for (const auto& [name, child] : model.children()) {
    h = (*child)(h);
    if (h.requires_grad()) h.retain_grad();
    layers_.emplace_back(name, child->str());
    outputs_.push_back(h);
  }
  return h;
}

const GradFlowRecord& GradFlow::record(std::int64_t step, const nn::Module& model) {
  GradFlowRecord record;
  record.step = step;
  for (const auto& [name, parameter] : model.named_parameters()) {
    ParameterFlow p;
    p.name = name;
    const std::size_t dot = name.rfind('.');
    p.layer = dot == std::string::npos ? "" : name.substr(0, dot);
    p.shape = parameter.shape();
    p.value_norm = norm(parameter.to_vector());
    const Tensor grad = parameter.grad();
    if (grad.defined()) {
      const std::vector<double> g = grad.to_vector();
      p.has_grad = true;
      p.grad_norm = norm(g);
      for (double x : g) p.grad_max_abs = std::max(p.grad_max_abs, std::abs(x));
    }
    record.parameters.push_back(std::move(p));
  }
  for (std::size_t i = 0; i < outputs_.size(); ++i) {
    ActivationFlow a;
    a.layer = layers_[i].first;
    a.module = layers_[i].second;
    a.shape = outputs_[i].shape();
    const std::vector<double> v = outputs_[i].to_vector();
    if (!v.empty()) {
      double total = 0, squares = 0, zeros = 0;
      a.min = v[0];
      a.max = v[0];
      for (double x : v) {
        total += x;
        a.min = std::min(a.min, x);
        a.max = std::max(a.max, x);
        zeros += x == 0 ? 1 : 0;
      }
      a.mean = total / static_cast<double>(v.size());
      for (double x : v) squares += (x - a.mean) * (x - a.mean);
      a.std = std::sqrt(squares / static_cast<double>(v.size()));
      a.fraction_zero = zeros / static_cast<double>(v.size());
    }
    const Tensor grad = outputs_[i].grad();
    if (grad.defined()) {
      a.has_grad = true;
      a.grad_norm = norm(grad.to_vector());
    }
    record.activations.push_back(std::move(a));
  }
  // The kept outputs hold the graph; a record is taken once per forward.
  layers_.clear();
  outputs_.clear();
  records_.push_back(std::move(record));
  return records_.back();
}

std::string GradFlow::table() const {
  if (records_.empty()) throw_invalid("GradFlow::table", "nothing recorded yet (call record() after backward)");
  return table(records_.size() - 1);
}

std::string GradFlow::table(std::size_t index) const {
  if (index >= records_.size()) {
    throw_out_of_range("GradFlow::table", "record ", index, " does not exist (", records_.size(), " recorded)");
  }
  const GradFlowRecord& r = records_[index];
  std::string out = "gradient flow at step " + std::to_string(r.step) + "\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-22s %-12s %12s %12s %12s\n", "parameter", "shape", "grad norm", "max |grad|",
                "value norm");
  out += line;
  for (const ParameterFlow& p : r.parameters) {
    std::snprintf(line, sizeof line, "  %-22s %-12s %12s %12s %12s\n", p.name.c_str(), p.shape.str().c_str(),
                  p.has_grad ? number(p.grad_norm, "%.4e").c_str() : "-", p.has_grad ? number(p.grad_max_abs, "%.4e").c_str() : "-",
                  number(p.value_norm, "%.4g").c_str());
    out += line;
  }
  if (!r.activations.empty()) {
    std::snprintf(line, sizeof line, "  %-6s %-22s %10s %10s %10s %8s %12s\n", "layer", "module", "mean", "std", "max",
                  "zeros", "grad norm");
    out += line;
    for (const ActivationFlow& a : r.activations) {
      std::snprintf(line, sizeof line, "  %-6s %-22s %10s %10s %10s %7.1f%% %12s\n", a.layer.c_str(),
                    a.module.substr(0, 22).c_str(), number(a.mean, "%.4g").c_str(), number(a.std, "%.4g").c_str(),
                    number(a.max, "%.4g").c_str(), 100 * a.fraction_zero,
                    a.has_grad ? number(a.grad_norm, "%.4e").c_str() : "-");
      out += line;
    }
  }
  return out;
}

GradFlowPlotResult GradFlow::save(const std::string& stem, const GradFlowPlotOptions& options) const {
  if (records_.empty()) throw_invalid("GradFlow::save", "nothing recorded yet (call record() after backward)");
  std::ostream& warn = options.warnings ? *options.warnings : std::cerr;
  GradFlowPlotResult result;
  result.parameters_csv = stem + "_parameters.csv";
  result.activations_csv = stem + "_activations.csv";
  result.script_path = stem + ".gp";
  result.png_path = stem + ".png";
  plot::create_parent_directory(kOp, stem);

  // Wide tables: one row per parameter (per layer), one column per step.
  const GradFlowRecord& last = records_.back();
  {
    std::ofstream csv = open_for_writing(result.parameters_csv);
    csv << "index,parameter,shape";
    for (const GradFlowRecord& r : records_) csv << ",grad_norm_step_" << r.step;
    csv << '\n';
    for (std::size_t i = 0; i < last.parameters.size(); ++i) {
      csv << i << ',' << field(last.parameters[i].name) << ',' << last.parameters[i].shape.str();
      for (const GradFlowRecord& r : records_) {
        const bool known = i < r.parameters.size() && r.parameters[i].has_grad;
        csv << ',' << (known ? number(r.parameters[i].grad_norm, "%.9g") : std::string("nan"));
      }
      csv << '\n';
    }
    finish(csv, result.parameters_csv);
  }
  std::size_t layers = 0;
  for (const GradFlowRecord& r : records_) layers = std::max(layers, r.activations.size());
  {
    std::ofstream csv = open_for_writing(result.activations_csv);
    csv << "index,layer,module,label";
    for (const GradFlowRecord& r : records_) csv << ",grad_norm_step_" << r.step << ",std_step_" << r.step;
    csv << '\n';
    for (std::size_t i = 0; i < layers; ++i) {
      const ActivationFlow* named = nullptr;
      for (const GradFlowRecord& r : records_) {
        if (i < r.activations.size()) named = &r.activations[i];
      }
      // The picture's tick label: the layer's name and its module's type ("3 Linear").
      const std::string label = named->layer + " " + named->module.substr(0, named->module.find('('));
      csv << i << ',' << field(named->layer) << ',' << field(named->module) << ',' << field(label);
      for (const GradFlowRecord& r : records_) {
        const bool known = i < r.activations.size() && r.activations[i].has_grad;
        csv << ',' << (known ? number(r.activations[i].grad_norm, "%.9g") : std::string("nan")) << ','
            << (i < r.activations.size() ? number(r.activations[i].std, "%.9g") : std::string("nan"));
      }
      csv << '\n';
    }
    finish(csv, result.activations_csv);
  }

  const std::string parameters = fs::absolute(result.parameters_csv).string();
  const std::string activations = fs::absolute(result.activations_csv).string();
  const std::string png = fs::absolute(result.png_path).string();
  const std::size_t steps = records_.size();
  std::string step_words;  // "0 10 20": the legend's step numbers, for gnuplot's word()
  for (const GradFlowRecord& r : records_) step_words += (step_words.empty() ? "" : " ") + std::to_string(r.step);
  {
    std::ofstream gp = open_for_writing(result.script_path);
    gp << "# Gradient flow written by tapegrad::tools::GradFlow::save. Redraw with: gnuplot " << quoted(result.script_path)
       << "\n";
    plot::write_preamble(gp, options.width, options.height, png);
    gp << "set logscale y\n"
       << "set format y '%.0e'\n"
       << "set key outside bottom center horizontal\n"
       << "set xtics rotate by -45\n"
       << "set multiplot layout 1,2 title " << quoted(options.title) << "\n"
       << "set title 'gradient norm of each parameter (input side on the left)'\n"
       << "set ylabel '||dL/dp||'\n"
       << "plot for [i=4:" << 3 + steps << "] " << quoted(parameters)
       << " skip 1 using 1:i:xtic(2) with linespoints pointsize 0.6 title 'step '.word(" << quoted(step_words) << ", i-3)\n";
    if (layers > 0) {
      gp << "set title 'gradient norm of each layer output'\n"
         << "set ylabel '||dL/dh||'\n"
         << "plot for [i=0:" << steps - 1 << "] " << quoted(activations)
         << " skip 1 using 1:(column(5+2*i)):xtic(4) with linespoints pointsize 0.6 "
            "title 'step '.word("
         << quoted(step_words) << ", i+1)\n";
    }
    gp << "unset multiplot\nset output\n";
    finish(gp, result.script_path);
  }

  // gnuplot's own output (drawn.output) is dropped here.
  plot::Drawn drawn = plot::draw(options.gnuplot, result.script_path, result.png_path);
  result.png_written = drawn.png_written;
  result.message = std::move(drawn.message);
  if (!result.png_written) {
    warn << "GradFlow::save: warning: " << result.message << "; wrote " << result.parameters_csv << ", "
         << result.activations_csv << " and " << result.script_path << " but no PNG\n";
  }
  return result;
}

}  // namespace tapegrad::tools
