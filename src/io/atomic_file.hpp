#pragma once
// Internal: replacing a file atomically, the way every save of tapegrad's
// writes: into a temporary file next to `path` ("<path>.tmp-<pid>-<n>"),
// flushed with fsync, then renamed over `path`, then the directory synced.
// A failed write leaves any previous file at `path` untouched and removes its
// temporary file; a crash can leave only the temporary file behind, which
// the next save of the same `path` removes once its writer is gone
// (tapegrad/io/npz.hpp, save_npz, says exactly when).
#include <functional>
#include <string>

#include "io/sink.hpp"

namespace tapegrad::io {

// `write` fills the file through the sink. I/O failures throw
// std::runtime_error "<op>: '<path>': ..."; whatever `write` throws passes
// through, after the temporary file is removed.
void write_atomically(const std::string& path, const char* op, const std::function<void(Sink&)>& write);

}  // namespace tapegrad::io
