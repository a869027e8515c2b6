#pragma once
// .npz files, NumPy's format for named arrays: a ZIP archive holding one .npy
// file per tensor, stored uncompressed (numpy.savez) or deflated
// (numpy.savez_compressed). numpy.load opens what save_npz writes
// (np.load(path)[name]) and load_npz reads what either of numpy's writes.
//
// Each tensor becomes the member "<name>.npy": a .npy 1.0 header
// ('<f4' float32, '<f8' float64 or '<i8' int64, fortran_order False, the
// shape tuple) padded so the data starts 64-byte aligned, then the row-major
// data. Names may contain '/' ("model/fc.weight"); numpy keeps it in the key.
// Archives carry a fixed timestamp (1980-01-01), so equal tensors give
// byte-identical files.
#include <string>

#include "tapegrad/named_tensors.hpp"

namespace tapegrad::io {

struct NpzOptions {
  // Deflate each member (zlib's default level), as numpy.savez_compressed
  // does. Each member is compressed in memory before the file is opened.
  bool compressed = false;
};

// Writes the tensors, in order, atomically: into a temporary file next to
// `path` ("<path>.tmp-<pid>-<n>"), flushed to disk with fsync, then renamed
// over `path`. A failed save leaves any previous file at `path` untouched and
// removes its temporary file; a crash mid-save can leave that temporary file
// behind, never a half-written `path`. Each save first removes the temporary
// files of the same `path` that such crashes left: regular files named
// exactly "<path>.tmp-<pid>-<n>" whose process is gone (kill(pid, 0) fails
// with ESRCH) and that nothing has written for 5 minutes, or that nothing has
// written for 24 hours whatever their pid. It never touches `path` itself,
// other files, or a temporary that a live process (this one included) may
// still be writing. Names must be non-empty and unique.
// Throws std::invalid_argument for undefined tensors, bad names and archives
// that would need ZIP64 (4 GiB or more, 65535 or more tensors), all before
// touching the disk; std::runtime_error for I/O failures. Messages name the
// file.
void save_npz(const std::string& path, const NamedTensors& tensors, const NpzOptions& options = {});

// Reads every array of an .npz archive, in archive order, names without their
// ".npy" suffix. Every offset and size is bounds-checked and every member's
// CRC-32 verified. Reads stored and deflated members holding .npy 1.0, 2.0 or
// 3.0 arrays of dtype '<f4', '<f8' or '<i8' in C order; refuses encrypted and
// ZIP64 archives, other compression methods, Fortran-order arrays and other
// dtypes. A deflated member may not claim more than deflate can produce from
// its size (1032 to 1), so a small file cannot ask for a huge allocation. Any problem throws std::runtime_error whose
// message names the file and, where there is one, the member.
NamedTensors load_npz(const std::string& path);

}  // namespace tapegrad::io
