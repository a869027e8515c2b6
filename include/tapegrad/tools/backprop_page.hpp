#pragma once
// An interactive page for learners: one self-contained HTML file that draws
// the computation graph and steps through the backward pass.
//
//   tools::CaptureValuesGuard values;           // keep intermediate values
//   Tensor loss = ...;
//   tools::BackwardTrace trace = tools::trace_backward(loss);
//   tools::write_backprop_page("out/backprop.html", trace, {.title = "XOR"});
//
// Open it in any browser, offline: inline CSS and JavaScript, the trace's
// JSON (tools/trace.hpp) embedded, no external resource of any kind. The
// graph is laid out by the page itself (layered, inputs on top, the loss at
// the bottom). Previous / Next / Reset, Play, a slider and the arrow keys
// (Home, End) move through the steps; the current step's op, its output
// (where the upstream gradient comes from) and its inputs (where gradients
// go) are highlighted. The side panel shows the op, its formula, the
// upstream gradient, each input's local derivative and the gradient sent
// to it, small tensors as tables. Each tensor node shows its value and,
// once backward has reached it, its gradient (partial sums while some of
// its consumers have not sent theirs yet).
//
// For tests and links: "page.html?step=N" or "page.html#step=N" opens step
// N. After rendering, <body> carries data-ready="1" and data-step="N" (the
// step shown); script errors are collected in data-errors and shown in a
// red banner.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tapegrad/tools/trace.hpp"

namespace tapegrad::tools {

struct PageOptions {
  std::string title = "Backpropagation, step by step";
  std::string description{};        // one paragraph under the title (plain text), optional
  int precision = 6;                // significant digits in the side panel (graph nodes show 4)
  std::int64_t max_elements = 64;   // larger tensors: shape and summary instead of values
  std::size_t start_step = 0;       // shown at load, unless the URL asks for another
};

// The page as one string (UTF-8).
std::string backprop_page_html(const BackwardTrace& trace, const PageOptions& options = {});

// Writes the page to `path`, creating its directory; throws
// std::runtime_error naming the path when it cannot be written.
void write_backprop_page(const std::string& path, const BackwardTrace& trace, const PageOptions& options = {});

}  // namespace tapegrad::tools
