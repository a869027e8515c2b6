#include "tapegrad/train/plot.hpp"

#include <iostream>

#include "plot/gnuplot.hpp"

namespace tapegrad::train {

std::string gnuplot_png_terminal(int width, int height, const std::string& png) {
  return plot::png_terminal(width, height, png);
}

GnuplotResult run_gnuplot(const std::string& script, const std::string& png, const GnuplotOptions& options) {
  plot::Drawn drawn = plot::draw(options.gnuplot, script, png);
  (options.messages ? *options.messages : std::cerr) << drawn.output;
  return {.gnuplot_found = drawn.found, .png_written = drawn.png_written, .message = std::move(drawn.message)};
}

}  // namespace tapegrad::train
