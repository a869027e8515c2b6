// Writes the seed corpus of the fuzz targets: small valid files and edge
// cases for each reader. Run once by hand after changing a format (the
// output is committed in fuzz/corpus/):
//   build-fuzz/fuzz/make_corpus fuzz/corpus
// The .npz seeds also include tests/data/*.npz, copied by hand.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "io/npz_detail.hpp"

using namespace tapegrad;
namespace fs = std::filesystem;

namespace {

fs::path root;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / target);
  std::ofstream(root / target / name, std::ios::binary) << bytes;
}

std::string idx(const std::vector<std::uint32_t>& dims, const std::string& payload) {
  std::string out = {0, 0, 8, static_cast<char>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(d >> shift));
  }
  return out + payload;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_corpus <corpus directory>\n";
    return 2;
  }
  root = argv[1];

  // IDX: images, labels, empty, the overflow the issue found, truncations.
  put("idx", "images_2x2x3", idx({2, 2, 3}, std::string("\x00\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xff", 12)));
  put("idx", "labels_5", idx({5}, std::string("\x07\x00\x09\x01\x03", 5)));
  put("idx", "images_none", idx({0, 28, 28}, ""));
  put("idx", "images_no_pixels", idx({4, 0, 3}, ""));
  put("idx", "overflow_zero_extent", idx({4160749567u, 4294901760u, 0}, ""));
  put("idx", "truncated_header", idx({3, 2, 3}, "").substr(0, 10));
  put("idx", "rank2", idx({2, 2}, std::string("\x01\x02\x03\x04", 4)));
  put("idx", "gzip", std::string("\x1f\x8b\x08\x08\x00\x00\x00\x00", 8));

  // CSV: the shapes read_csv meets in practice, and its edge cases.
  put("csv", "plain.csv", "1,2,0\n3.5, -4 ,2\n\n+5e-1,6,1\n");
  put("csv", "header.csv", "\xEF\xBB\xBF" "y,\"x, first\",x2\r\n1,0.5,7\r\n0,1.5,8\r\n");
  put("csv", "semicolons.csv", "a;b;y\n1;2;0.25\n3;4;-1.5\n");
  put("csv", "tabs.csv", "1\t0\t2\n3\t1\t4\n");
  put("csv", "ranges.csv", "3.4028235e38,1e-400,0\n-1e39,1e400,1\n4.9e-324,nan,inf\n");
  put("csv", "labels.csv", "0.1,2\n0.2,0\n0.3,1\n0.4,6\n0.5,3\n0.6,5\n0.7,4\n");
  put("csv", "duplicate_header.csv", "x,y,x\n1,0,2\n");
  put("csv", "ragged.csv", "1,2,3\n4,5\n");
  put("csv", "quote_open.csv", "\"a,b\nc,1\n");

  // .npz: every dtype, 0-d, empty, rank 8, names with '/' and UTF-8.
  const NamedTensors tensors = {
      {"f32", from_vector({1.5, -2.0, 3.25, 0.0, -0.0, 1e30}, {2, 3}, DType::Float32)},
      {"f64", from_vector({3.141592653589793, -1e-300}, {2}, DType::Float64)},
      {"i64", from_indices({-1, 0, 7}, Shape{3})},
      {"scalar", scalar(2.0)},
      {"empty", zeros({0, 4})},
      {"model/fc.weight", ones({1, 1, 1, 1, 1, 1, 1, 2})},
      {"caf\xc3\xa9", zeros({1})},
  };
  put("npz", "all_dtypes.npz", io::detail::encode_npz(tensors));
  put("npz", "one.npz", io::detail::encode_npz({{"x", from_vector({1, 2, 3}, {3})}}));
  put("npz", "no_members.npz", io::detail::encode_npz({}));

  // Checkpoints of fuzz_checkpoint's model, nn::Linear(3, 2), with Adam.
  nn::Linear model(3, 2);
  optim::Adam optimizer(model.parameters(), {.lr = 1e-2});
  const std::string dir = (root / "checkpoint").string();
  fs::create_directories(dir);
  io::save_checkpoint(dir + "/model_only.npz", model);
  Tensor loss = sum(model(ones({4, 3})));
  loss.backward();
  optimizer.step();
  io::save_checkpoint(dir + "/model_and_adam.npz", model, optimizer);
  // A checkpoint of another model: names that do not match.
  nn::Linear wider(4, 2);
  io::save_checkpoint(dir + "/other_model.npz", wider);
  std::cout << "seeds written under " << root << "\n";
  return 0;
}
