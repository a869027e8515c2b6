#pragma once
// Readers for IDX files of unsigned bytes: the format of MNIST and
// Fashion-MNIST (train-images-idx3-ubyte, train-labels-idx1-ubyte, ...).
//
// Layout: magic number 0x00 0x00 0x08 <rank> (0x08: unsigned byte), then
// <rank> big-endian uint32 extents, then the bytes row-major. Images have
// rank 3 (magic 0x00000803), labels rank 1 (0x00000801).
//
// A bad file (missing, truncated, wrong magic number, extra bytes, extents
// whose product overflows 64 bits, images of zero rows or columns, image and
// label counts that disagree, a label out of range) throws an exception whose
// message names the reader, the file and the byte offset or the extents.
// Every size is computed with overflow checks and compared with the file's
// real size before anything is allocated for the data, so a file never asks
// for more memory than about four times its own size. Gzipped downloads are
// recognised and the message says to gunzip them.
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/data/dataset.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::data {

// A whole unsigned-byte IDX file.
struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> values;  // row-major, product(dims) bytes
};

// Reads an unsigned-byte IDX file of rank `expected_rank`; `op` starts
// every error message.
IdxArray read_idx(const std::string& path, std::size_t expected_rank, const char* op = "read_idx");

// Images as float32 [N, rows, cols]: grey levels / 255 in [0, 1] when
// `scale`, else the raw 0..255.
Tensor read_idx_images(const std::string& path, bool scale = true);
// Labels as int64 [N], each checked to lie in [0, num_classes).
Tensor read_idx_labels(const std::string& path, std::int64_t num_classes = 10);

struct IdxOptions {
  std::int64_t num_classes = 10;
  bool scale = true;    // grey levels in [0, 1]
  bool flatten = false; // features [N, rows*cols] instead of [N, rows, cols]
};
// An image file and its label file as one Dataset; their counts must agree.
Dataset read_idx_dataset(const std::string& images_path, const std::string& labels_path, IdxOptions options = {});

struct MnistData {
  Dataset train;
  Dataset test;
};
// The four standard files in `directory`: train-images-idx3-ubyte,
// train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte
// (MNIST, Fashion-MNIST, or the 8,000/2,000 set that scripts/get-data makes).
MnistData load_mnist(const std::string& directory, IdxOptions options = {});

}  // namespace tapegrad::data
