#pragma once
// Pictures of your own with gnuplot (Debian: gnuplot-nox), run the way
// save_curves runs it: write a script that starts with gnuplot_png_terminal,
// then let run_gnuplot draw it.
//
//   std::ofstream gp("out/fit.gp");
//   gp << gnuplot_png_terminal(900, 600, "/abs/out/fit.png") << "plot '/abs/out/fit.csv' using 1:2 with lines\n";
//   gp.close();
//   GnuplotResult r = run_gnuplot("out/fit.gp", "/abs/out/fit.png");
//   if (!r.png_written) std::cout << "no picture: " << r.message << "\n";
#include <iosfwd>
#include <string>

namespace tapegrad::train {

// The script lines that draw a width x height PNG to `png`: pngcairo
// (antialiased) when this gnuplot has it, else the plain png terminal.
// Nothing else is set (no data format, no text mode), so scripts reading
// whitespace-separated matrices or using enhanced text keep working.
std::string gnuplot_png_terminal(int width, int height, const std::string& png);

struct GnuplotOptions {
  std::string gnuplot = "gnuplot";   // the program, looked up on PATH
  std::ostream* messages = nullptr;  // where gnuplot's own output goes; nullptr: std::cerr
};

struct GnuplotResult {
  bool gnuplot_found = false;  // false: nothing was run
  bool png_written = false;
  std::string message;  // why there is no PNG, when there is none
};

// Removes a stale `png`, runs gnuplot on `script` (no shell: paths need no
// quoting) and checks that `png` is now a PNG. A missing or failing gnuplot
// does not throw: the result says why there is no picture.
GnuplotResult run_gnuplot(const std::string& script, const std::string& png, const GnuplotOptions& options = {});

}  // namespace tapegrad::train
