#include "plot/gnuplot.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <system_error>

#include "os/process.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::plot {

namespace fs = std::filesystem;

namespace {

bool looks_like_png(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char signature[8] = {};
  return in.read(signature, 8) && std::memcmp(signature, "\x89PNG\r\n\x1a\n", 8) == 0;
}

}  // namespace

std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

void create_parent_directory(const char* op, const std::string& stem) {
  const fs::path parent = fs::path(stem).parent_path();
  if (!parent.empty()) {
    std::error_code error;
    fs::create_directories(parent, error);
    if (error) throw_runtime(op, "cannot create directory '", parent.string(), "': ", error.message());
  }
}

std::ofstream open_for_writing(const char* op, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw_runtime(op, "cannot write '", path, "': ", std::strerror(errno));
  return out;
}

void finish(const char* op, std::ofstream& out, const std::string& path) {
  if (!out.flush()) throw_runtime(op, "cannot write '", path, "'");
}

std::string png_terminal(int width, int height, const std::string& png) {
  std::ostringstream gp;
  gp << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
     << "  set terminal pngcairo size " << width << "," << height << " font ',10'\n"
     << "} else {\n"
     << "  set terminal png size " << width << "," << height << "\n"
     << "}\n"
     << "set output " << quoted(png) << "\n";
  return gp.str();
}

void write_preamble(std::ostream& gp, int width, int height, const std::string& png) {
  gp << "set datafile separator ','\n"
     << "set datafile missing 'nan'\n"
     << png_terminal(width, height, png) << "set termoption noenhanced\n"
     << "set grid\n";
}

Drawn draw(const std::string& gnuplot, const std::string& script, const std::string& png_path) {
  std::error_code ignored;
  fs::remove(png_path, ignored);
  Drawn drawn;
  const os::ProcessResult run = os::run_process({gnuplot, script});
  drawn.found = run.found();
  drawn.output = run.out + run.err;
  if (!run.found()) {
    drawn.message = run.describe() + " (Debian package gnuplot-nox)";
  } else if (run.succeeded() && looks_like_png(png_path)) {
    drawn.png_written = true;
  } else {
    drawn.message = run.describe() + " and wrote no PNG";
  }
  return drawn;
}

}  // namespace tapegrad::plot
