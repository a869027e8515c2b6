#pragma once
// Internal: the parts of a "CSV + gnuplot script + PNG" save that
// train::save_curves and tools::GradFlow::save have in common, so that the
// two write the same script preamble, report the same errors and decide
// "PNG written or not" the same way. A room of its own, below train and
// tools, so that neither needs the other for its pictures. `op` names the public function in
// every error message ("save_curves", "GradFlow::save").
#include <fstream>
#include <ostream>
#include <string>

#include "os/process.hpp"

namespace tapegrad::plot {

// A gnuplot single-quoted string: '' stands for one quote inside.
std::string quoted(const std::string& text);

// Creates the directory that will hold <stem>.* (if any); throws on failure.
void create_parent_directory(const char* op, const std::string& stem);

// Opens `path` for writing, truncating it; throws with the system's reason.
std::ofstream open_for_writing(const char* op, const std::string& path);

// Flushes `out`, throwing if anything written to `path` was lost.
void finish(const char* op, std::ofstream& out, const std::string& path);

// The script lines from the data format to "set grid": comma-separated data
// with 'nan' as missing, a PNG terminal of width x height (pngcairo when the
// gnuplot has it), plain-text labels, output to `png`.
void write_preamble(std::ostream& gp, int width, int height, const std::string& png);

struct Drawn {
  bool png_written = false;
  std::string message;  // why not, when png_written is false
};

// Runs `gnuplot` (looked up on PATH) on `script`; the PNG counts as written
// only if gnuplot succeeded and `png_path` now starts with the PNG
// signature. `output` says where gnuplot's own messages go: the callers
// differ there. The caller removes any stale `png_path` first.
Drawn draw(const std::string& gnuplot, const std::string& script, const std::string& png_path, os::Output output);

}  // namespace tapegrad::plot
