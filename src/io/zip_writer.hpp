#pragma once
// Internal: writes ZIP archives of stored or deflated members. Every header
// and offset is computed (and every member compressed) before the first byte
// is written, so that an archive that cannot be written fails before the
// sink is touched.
#include <cstddef>
#include <string>
#include <vector>

#include "io/sink.hpp"

namespace tapegrad::io::zip {

struct Chunk {
  const void* data;
  std::size_t size;
};

struct OutMember {
  std::string name;
  std::vector<Chunk> chunks;  // the member's bytes, in order
};

enum class Compression { Stored, Deflate };

struct Plan {
  std::vector<std::string> local_headers;
  std::vector<std::string> deflated;  // each member's compressed bytes (empty when stored)
  std::string trailer;                // central directory and end record
};

// `op` and `label` (the file) name the archive in errors: std::invalid_argument
// for archives that would need ZIP64 (4 GiB or more, 65535 or more members).
Plan plan(const std::vector<OutMember>& members, Compression compression, const char* op, const std::string& label);

void write(Sink& sink, const std::vector<OutMember>& members, const Plan& plan);

}  // namespace tapegrad::io::zip
