#pragma once
// Internal: the parts of a "CSV + gnuplot script + PNG" save that
// train::save_curves, tools::GradFlow::save and train::run_gnuplot (the
// examples' pictures) have in common, so that they write the same script
// preamble, report the same errors and decide "PNG written or not" the same
// way. A room of its own, below train and tools, so that neither needs the
// other for its pictures. `op` names the public function in every error
// message ("save_curves", "GradFlow::save").
#include <fstream>
#include <ostream>
#include <string>

namespace tapegrad::plot {

// A gnuplot single-quoted string: '' stands for one quote inside.
std::string quoted(const std::string& text);

// Creates the directory that will hold <stem>.* (if any); throws on failure.
void create_parent_directory(const char* op, const std::string& stem);

// Opens `path` for writing, truncating it; throws with the system's reason.
std::ofstream open_for_writing(const char* op, const std::string& path);

// Flushes `out`, throwing if anything written to `path` was lost.
void finish(const char* op, std::ofstream& out, const std::string& path);

// The script lines that draw a width x height PNG to `png`: pngcairo
// (antialiased) when this gnuplot has it, else the plain png terminal, which
// every build with PNG support has.
std::string png_terminal(int width, int height, const std::string& png);

// The script lines from the data format to "set grid": comma-separated data
// with 'nan' as missing, png_terminal, plain-text labels.
void write_preamble(std::ostream& gp, int width, int height, const std::string& png);

struct Drawn {
  bool found = false;  // gnuplot was found on PATH (and so was run)
  bool png_written = false;
  std::string message;  // why not, when png_written is false
  std::string output;   // what gnuplot printed (warnings, errors): the callers differ in where it goes
};

// Removes any stale `png_path` (it must not pass for a new one), then runs
// `gnuplot` (looked up on PATH) on `script`; the PNG counts as written only
// if gnuplot succeeded and `png_path` now starts with the PNG signature.
Drawn draw(const std::string& gnuplot, const std::string& script, const std::string& png_path);

}  // namespace tapegrad::plot
