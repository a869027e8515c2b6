#pragma once
// Internal: the in-memory halves of save_npz / load_npz, and the two building
// blocks they share, exposed so that tests can build (and damage) archives
// byte by byte without going through the file system.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tapegrad/io/npz.hpp"
#include "tapegrad/named_tensors.hpp"

namespace tapegrad::io::detail {

// The .npy preamble of a tensor: magic, version 1.0, header length and the
// header dict, padded with spaces and a '\n' so the data starts 64-aligned.
std::string npy_header(DType dtype, const Shape& shape);

// A ZIP archive of stored (or deflated) members (name, bytes), laid out as
// save_npz lays out its files; the bytes may be anything, valid .npy or not.
std::string zip_archive(const std::vector<std::pair<std::string, std::string>>& members, bool compressed = false);

// Exactly the bytes save_npz writes.
std::string encode_npz(const NamedTensors& tensors, const NpzOptions& options = {});

// load_npz on bytes in memory; `label` stands for the file name in messages.
NamedTensors decode_npz(std::string_view bytes, const std::string& label);

}  // namespace tapegrad::io::detail
