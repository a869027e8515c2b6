// Readers (IDX, CSV, text) on small files written into a temporary
// directory, every bad-file case with its exact message, the character
// vocabulary, Dataset, DataLoader, and the train/validation and K-fold splits.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"
#include "tapegrad/io/checkpoint.hpp"
#include "tapegrad/memory.hpp"

using namespace tapegrad;
using namespace tapegrad::data;
using namespace tapegrad::testing;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<std::uint8_t>;

std::string write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return path;
}

std::string write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  return path;
}

// True when `read` returns or throws one of the readers' documented
// exceptions; anything else propagates and fails the test.
template <class Read>
bool read_or_refused(const Read& read) {
  try {
    read();
  } catch (const std::runtime_error&) {
  } catch (const std::invalid_argument&) {
  }
  return true;
}

// An IDX file by hand: 0, 0, type 0x08, rank, big-endian extents, payload.
Bytes idx_bytes(const std::vector<std::uint32_t>& dims, const Bytes& payload) {
  Bytes out = {0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(d >> shift));
  }
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

// Three 2x3 images with pixel values 0, 10, 20, ... and their labels.
const Bytes kPixels = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 255};
const Bytes kLabels = {7, 0, 9};

std::vector<std::int64_t> as_indices(const Tensor& t) {
  const std::int64_t* p = t.data<std::int64_t>();
  return std::vector<std::int64_t>(p, p + t.numel());
}

// A dataset of n samples whose features row i is {i, 10 i} and target i.
Dataset numbered(std::int64_t n) {
  std::vector<double> features;
  std::vector<std::int64_t> targets;
  for (std::int64_t i = 0; i < n; ++i) {
    features.push_back(static_cast<double>(i));
    features.push_back(10.0 * static_cast<double>(i));
    targets.push_back(i);
  }
  return Dataset(from_vector(features, Shape{n, 2}), from_indices(targets, Shape{n}));
}

// Checks that a batch's feature rows match its targets in `numbered`.
void check_rows_follow_targets(const Batch& batch) {
  const std::vector<std::int64_t> targets = as_indices(batch.targets);
  for (std::size_t r = 0; r < targets.size(); ++r) {
    CHECK(batch.inputs.at({static_cast<std::int64_t>(r), 0}) == static_cast<double>(targets[r]));
    CHECK(batch.inputs.at({static_cast<std::int64_t>(r), 1}) == 10.0 * static_cast<double>(targets[r]));
  }
}

}  // namespace

// --- IDX ---

TEST_CASE("IDX images and labels are read as float32 [N, rows, cols] and int64 [N]", "[data][idx]") {
  TempDir dir;
  const std::string images = write_file(dir.file("images"), idx_bytes({3, 2, 3}, kPixels));
  const std::string labels = write_file(dir.file("labels"), idx_bytes({3}, kLabels));

  Tensor x = read_idx_images(images);
  CHECK(x.shape() == Shape{3, 2, 3});
  CHECK(x.dtype() == DType::Float32);
  CHECK(x.at({0, 0, 1}) == Approx(10.0 / 255.0));
  CHECK(x.at({2, 1, 2}) == 1.0);
  CHECK(read_idx_images(images, /*scale=*/false).at({1, 0, 2}) == 80.0);

  Tensor y = read_idx_labels(labels);
  CHECK(y.dtype() == DType::Int64);
  CHECK(as_indices(y) == std::vector<std::int64_t>{7, 0, 9});

  Dataset flat = read_idx_dataset(images, labels, {.flatten = true});
  CHECK(flat.size() == 3);
  CHECK(flat.features().shape() == Shape{3, 6});
  CHECK(flat.features().at({1, 5}) == Approx(110.0 / 255.0));
  CHECK(as_indices(flat.targets()) == std::vector<std::int64_t>{7, 0, 9});
}

TEST_CASE("load_mnist reads the four standard files of a directory", "[data][idx]") {
  TempDir dir;
  write_file(dir.file("train-images-idx3-ubyte"), idx_bytes({3, 2, 3}, kPixels));
  write_file(dir.file("train-labels-idx1-ubyte"), idx_bytes({3}, kLabels));
  write_file(dir.file("t10k-images-idx3-ubyte"), idx_bytes({1, 2, 3}, {1, 2, 3, 4, 5, 6}));
  write_file(dir.file("t10k-labels-idx1-ubyte"), idx_bytes({1}, {4}));
  MnistData mnist = load_mnist(dir.path().string());
  CHECK(mnist.train.features().shape() == Shape{3, 2, 3});
  CHECK(mnist.test.features().shape() == Shape{1, 2, 3});
  CHECK(as_indices(mnist.test.targets()) == std::vector<std::int64_t>{4});
}

TEST_CASE("bad IDX files throw, naming the file and the byte offset", "[data][idx][errors]") {
  TempDir dir;
  const std::string images = write_file(dir.file("images"), idx_bytes({3, 2, 3}, kPixels));
  const std::string labels = write_file(dir.file("labels"), idx_bytes({3}, kLabels));

  SECTION("a missing file") {
    const std::string missing = dir.file("nothing-here");
    REQUIRE_THROWS_MESSAGE(read_idx_images(missing), std::runtime_error,
                           "read_idx_images: cannot open '" + missing + "': No such file or directory");
    write_file(missing + ".gz", {0x1f, 0x8b});
    REQUIRE_THROWS_MESSAGE(read_idx_images(missing), std::runtime_error,
                           "read_idx_images: cannot open '" + missing + "': No such file or directory (found '" +
                               missing + ".gz': decompress it with gunzip)");
    REQUIRE_THROWS_MESSAGE(read_idx_labels(dir.path().string()), std::runtime_error,
                           "read_idx_labels: cannot open '" + dir.path().string() + "': it is a directory");
  }
  SECTION("truncated in the magic number") {
    const std::string bad = write_file(dir.file("bad"), {0, 0, 8});
    REQUIRE_THROWS_MESSAGE(read_idx_images(bad), std::runtime_error,
                           "read_idx_images: " + bad + ": truncated at byte offset 3: the magic number needs 4 bytes");
    write_file(bad, {});
    REQUIRE_THROWS_MESSAGE(read_idx_labels(bad), std::runtime_error,
                           "read_idx_labels: " + bad + ": truncated at byte offset 0: the magic number needs 4 bytes");
  }
  SECTION("a wrong magic number: labels read as images, a gzip file, another type") {
    REQUIRE_THROWS_MESSAGE(read_idx_images(labels), std::runtime_error,
                           "read_idx_images: " + labels +
                               ": wrong magic number 0x00000801 at byte offset 0, expected 0x00000803 "
                               "(unsigned-byte IDX of rank 3)");
    REQUIRE_THROWS_MESSAGE(read_idx_labels(images), std::runtime_error,
                           "read_idx_labels: " + images +
                               ": wrong magic number 0x00000803 at byte offset 0, expected 0x00000801 "
                               "(unsigned-byte IDX of rank 1)");
    const std::string gz = write_file(dir.file("gz"), {0x1f, 0x8b, 0x08, 0x08, 1, 2, 3});
    REQUIRE_THROWS_MESSAGE(read_idx_images(gz), std::runtime_error,
                           "read_idx_images: " + gz +
                               ": wrong magic number 0x1f8b0808 at byte offset 0, expected 0x00000803 "
                               "(unsigned-byte IDX of rank 3); this is a gzip file: decompress it with gunzip");
    Bytes floats = idx_bytes({1}, {0, 0, 0, 0});
    floats[2] = 0x0d;  // float32 elements
    const std::string f = write_file(dir.file("floats"), floats);
    REQUIRE_THROWS_MESSAGE(read_idx_labels(f), std::runtime_error,
                           "read_idx_labels: " + f +
                               ": wrong magic number 0x00000d01 at byte offset 0, expected 0x00000801 "
                               "(unsigned-byte IDX of rank 1)");
  }
  SECTION("truncated in the header") {
    Bytes bytes = idx_bytes({3, 2, 3}, {});
    bytes.resize(10);
    const std::string bad = write_file(dir.file("bad"), bytes);
    REQUIRE_THROWS_MESSAGE(read_idx_images(bad), std::runtime_error,
                           "read_idx_images: " + bad + ": truncated at byte offset 10: the header of rank 3 needs 16 bytes");
  }
  SECTION("truncated in the data") {
    Bytes bytes = idx_bytes({3, 2, 3}, kPixels);
    bytes.resize(30);
    const std::string bad = write_file(dir.file("bad"), bytes);
    REQUIRE_THROWS_MESSAGE(read_idx_images(bad), std::runtime_error,
                           "read_idx_images: " + bad +
                               ": truncated at byte offset 30: extents [3x2x3] need 18 bytes of data after the "
                               "16-byte header");
    const std::string labels_huge = write_file(dir.file("labels-huge"), idx_bytes({0xffffffffu}, {1, 2}));
    REQUIRE_THROWS_MESSAGE(read_idx_labels(labels_huge), std::runtime_error,
                           "read_idx_labels: " + labels_huge +
                               ": truncated at byte offset 10: extents [4294967295] need 4294967295 bytes of data "
                               "after the 8-byte header");
  }
  SECTION("extents whose product overflows, even when one of them is zero") {
    // 16 bytes that once made a dataset of 4160749567 empty images whose
    // strides overflowed.
    const std::string zero = write_file(dir.file("zero"), idx_bytes({4160749567u, 4294901760u, 0}, {}));
    REQUIRE(fs::file_size(zero) == 16);
    REQUIRE_THROWS_MESSAGE(read_idx_images(zero), std::runtime_error,
                           "read_idx_images: " + zero +
                               ": extents [4160749567x4294901760x0] are too large: their product exceeds 2^63 - 1");
    REQUIRE_THROWS_MESSAGE(read_idx(zero, 3), std::runtime_error,
                           "read_idx: " + zero +
                               ": extents [4160749567x4294901760x0] are too large: their product exceeds 2^63 - 1");
    const std::string huge = write_file(dir.file("huge"), idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu}, {1}));
    REQUIRE_THROWS_MESSAGE(read_idx_images(huge), std::runtime_error,
                           "read_idx_images: " + huge +
                               ": extents [4294967295x4294967295x4294967295] are too large: their product exceeds "
                               "2^63 - 1");
    // Just representable: 2^31 x 2^31 x 1 extents, but the file is 17 bytes.
    const std::string big = write_file(dir.file("big"), idx_bytes({1u << 31, 1u << 31, 1}, {1}));
    REQUIRE_THROWS_MESSAGE(read_idx_images(big), std::runtime_error,
                           "read_idx_images: " + big +
                               ": truncated at byte offset 17: extents [2147483648x2147483648x1] need "
                               "4611686018427387904 bytes of data after the 16-byte header");
  }
  SECTION("images without pixels") {
    const std::string empty_images = write_file(dir.file("empty"), idx_bytes({5, 0, 28}, {}));
    REQUIRE_THROWS_MESSAGE(read_idx_images(empty_images), std::runtime_error,
                           "read_idx_images: " + empty_images +
                               ": extents [5x0x28] declare 5 images of 0x28 pixels: images without pixels hold no data");
    // No images at all is a valid (empty) file.
    const std::string none = write_file(dir.file("none"), idx_bytes({0, 28, 28}, {}));
    CHECK(read_idx_images(none).shape() == Shape{0, 28, 28});
  }
  SECTION("the reason a file cannot be opened is the real one") {
    const std::string under_file = images + "/inside";
    REQUIRE_THROWS_MESSAGE(read_idx_images(under_file), std::runtime_error,
                           "read_idx_images: cannot open '" + under_file + "': Not a directory");
  }
  SECTION("bytes after the data") {
    Bytes bytes = idx_bytes({3}, kLabels);
    bytes.push_back(1);
    bytes.push_back(2);
    const std::string bad = write_file(dir.file("bad"), bytes);
    REQUIRE_THROWS_MESSAGE(read_idx_labels(bad), std::runtime_error,
                           "read_idx_labels: " + bad + ": 2 unexpected bytes at byte offset 11, after the data of extents [3]");
  }
  SECTION("image and label counts that disagree") {
    const std::string two = write_file(dir.file("two-labels"), idx_bytes({2}, {1, 2}));
    REQUIRE_THROWS_MESSAGE(read_idx_dataset(images, two), std::runtime_error,
                           "read_idx_dataset: " + images + " holds 3 images but " + two + " holds 2 labels");
  }
  SECTION("a label out of range") {
    const std::string bad = write_file(dir.file("bad"), idx_bytes({3}, {1, 12, 3}));
    REQUIRE_THROWS_MESSAGE(read_idx_labels(bad), std::runtime_error,
                           "read_idx_labels: " + bad + ": label 12 at byte offset 9 (sample 1) is out of range [0, 10)");
    REQUIRE_THROWS_MESSAGE(read_idx_dataset(images, labels, {.num_classes = 8}), std::runtime_error,
                           "read_idx_labels: " + labels + ": label 9 at byte offset 10 (sample 2) is out of range [0, 8)");
    CHECK(as_indices(read_idx_labels(bad, 13)) == std::vector<std::int64_t>{1, 12, 3});
    REQUIRE_THROWS_MESSAGE(read_idx_labels(bad, 0), std::invalid_argument,
                           "read_idx_labels: num_classes must be in [1, 256], got 0");
  }
}

TEST_CASE("IDX files are read from pipes too (<(gunzip -c labels.gz))", "[data][idx]") {
  // A stream that opened with std::ios::ate failed on a pipe with the stale
  // reason "Illegal seek"; the reader now reads any file to its end.
  TempDir dir;
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const Bytes bytes = idx_bytes({3}, kLabels);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const int fd = ::open(fifo.c_str(), O_WRONLY);
    const bool ok = fd >= 0 && ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    ::_exit(ok ? 0 : 1);
  }
  const Tensor labels = read_idx_labels(fifo);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(as_indices(labels) == std::vector<std::int64_t>{7, 0, 9});
}

TEST_CASE("the MNIST files made by scripts/get-data hold 8000 + 2000 real digits", "[data][idx][mnist]") {
  const std::string dir = TAPEGRAD_TEST_DATA_DIR "/../../data/mnist";
  if (!fs::exists(dir + "/train-images-idx3-ubyte")) {
    WARN("skipped: " << dir << " is absent (scripts/get-data makes it)");
    return;
  }
  MnistData mnist = load_mnist(dir, {.flatten = true});
  REQUIRE(mnist.train.features().shape() == Shape{8000, 784});
  REQUIRE(mnist.test.features().shape() == Shape{2000, 784});
  // The split is fixed: digits 0..9 in file order, every fifth sample tested.
  std::vector<std::int64_t> train_counts(10), test_counts(10);
  for (std::int64_t label : as_indices(mnist.train.targets())) ++train_counts[static_cast<std::size_t>(label)];
  for (std::int64_t label : as_indices(mnist.test.targets())) ++test_counts[static_cast<std::size_t>(label)];
  CHECK(train_counts == std::vector<std::int64_t>{801, 902, 793, 825, 784, 691, 811, 856, 755, 782});
  CHECK(test_counts == std::vector<std::int64_t>{200, 225, 198, 207, 196, 172, 203, 214, 189, 196});
  // The first zero's pixels 127..131 are 0.2, 0.624, 0.992, 0.624, 0.196 in 0.json.
  const std::vector<double> expected = {51, 159, 253, 159, 50};
  for (std::int64_t k = 0; k < 5; ++k) CHECK(mnist.train.features().at({0, 127 + k}) * 255.0 == Approx(expected[k]));
  double low = 1, high = 0;
  for (double v : mnist.test.features().to_vector()) low = std::min(low, v), high = std::max(high, v);
  CHECK(low == 0.0);
  CHECK(high == 1.0);
}

// --- CSV ---

TEST_CASE("CSV: numbers, a header, the target column by index or name", "[data][csv]") {
  TempDir dir;
  const std::string plain = write_text(dir.file("plain.csv"), "1,2,0\n3.5, -4 ,2\n\n+5e-1,6,1\n");
  Dataset d = read_csv(plain);
  CHECK(d.features().shape() == Shape{3, 2});
  CHECK(d.features().dtype() == DType::Float32);
  CHECK(d.features().to_vector() == std::vector<double>{1, 2, 3.5, -4, 0.5, 6});
  CHECK(as_indices(d.targets()) == std::vector<std::int64_t>{0, 2, 1});

  // Target first, CRLF line ends, a byte-order mark, a quoted header name.
  const std::string headed = write_text(dir.file("headed.csv"), "\xEF\xBB\xBF" "label,\"x, first\",x2\r\n1,0.5,7\r\n0,1.5,8\r\n");
  CsvTable table = read_csv_table(headed, true);
  CHECK(table.header == std::vector<std::string>{"label", "x, first", "x2"});
  CHECK(table.rows == 2);
  CHECK(table.lines == std::vector<std::int64_t>{2, 3});
  Dataset by_name = read_csv(headed, {.has_header = true, .target_name = "label", .dtype = DType::Float64});
  CHECK(by_name.features().dtype() == DType::Float64);
  CHECK(by_name.features().to_vector() == std::vector<double>{0.5, 7, 1.5, 8});
  CHECK(as_indices(by_name.targets()) == std::vector<std::int64_t>{1, 0});
  Dataset by_index = read_csv(headed, {.has_header = true, .target_column = 0});
  CHECK(as_indices(by_index.targets()) == std::vector<std::int64_t>{1, 0});

  // Semicolons, regression targets [N, 1].
  const std::string semi = write_text(dir.file("semi.csv"), "1;2;0.25\n3;4;-1.5\n");
  Dataset regression = read_csv(semi, {.delimiter = ';', .target = CsvTarget::Value});
  CHECK(regression.targets().shape() == Shape{2, 1});
  CHECK(regression.targets().to_vector() == std::vector<double>{0.25, -1.5});
}

TEST_CASE("CSV: one-hot targets, with the class count given or inferred", "[data][csv]") {
  TempDir dir;
  const std::string path = write_text(dir.file("d.csv"), "0.1,2\n0.2,0\n0.3,1\n");
  Dataset inferred = read_csv(path, {.target = CsvTarget::OneHot});
  CHECK(inferred.targets().shape() == Shape{3, 3});
  CHECK(inferred.targets().to_vector() == std::vector<double>{0, 0, 1, 1, 0, 0, 0, 1, 0});
  Dataset given = read_csv(path, {.target = CsvTarget::OneHot, .num_classes = 4});
  CHECK(given.targets().shape() == Shape{3, 4});
  CHECK(given.targets().at({0, 2}) == 1.0);
}

TEST_CASE("bad CSV files throw, naming the file, the line and the column", "[data][csv][errors]") {
  TempDir dir;
  auto csv = [&](const std::string& text) { return write_text(dir.file("bad.csv"), text); };
  std::string p = csv("1,2,0\n3,abc,1\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error, "read_csv: " + p + ":2:2: 'abc' is not a number");
  p = csv("a,b,y\n1,2,0\n\n3,4x,1\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p, {.has_header = true}), std::runtime_error,
                         "read_csv: " + p + ":4:2: '4x' is not a number");
  // Without has_header, a header line is a non-numeric row.
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error, "read_csv: " + p + ":1:1: 'a' is not a number");
  p = csv("1,2,0\n3,,1\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error,
                         "read_csv: " + p + ":2:2: missing value (empty cell); set CsvOptions::missing to impute it");
  p = csv("1,2,0\n1,nan,0\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error, "read_csv: " + p + ":2:2: 'nan' is not a finite number");
  p = csv("1,+-2,0\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error, "read_csv: " + p + ":1:2: '+-2' is not a number");
  p = csv("1,2,0\n3,4,1\n5,6\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error, "read_csv: " + p + ":3: 2 columns, expected 3 (as on line 1)");
  p = csv("x,y\n1,2,3\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p, {.has_header = true}), std::runtime_error,
                         "read_csv: " + p + ":2: 3 columns, expected 2 (as on line 1)");
  p = csv("1,2,0\n3,4,2.5\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error, "read_csv: " + p + ":2:3: label 2.5 is not a non-negative integer");
  p = csv("1,2,-1\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error, "read_csv: " + p + ":1:3: label -1 is not a non-negative integer");
  p = csv("1,2,0\n3,4,7\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p, {.num_classes = 3}), std::runtime_error,
                         "read_csv: " + p + ":2:3: label 7 is out of range [0, 3)");
  REQUIRE_THROWS_MESSAGE(read_csv(p, {.target = CsvTarget::OneHot, .num_classes = 3}), std::runtime_error,
                         "read_csv: " + p + ":2:3: label 7 is out of range [0, 3)");
  p = csv("x,y\n\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p, {.has_header = true}), std::runtime_error, "read_csv: " + p + ": no data rows");
  p = csv("1\n2\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error,
                         "read_csv: " + p + ": needs at least 2 columns (features and a target), found 1");
  p = csv("a,b\n1,0\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p, {.has_header = true, .target_name = "label"}), std::runtime_error,
                         "read_csv: " + p + ": no column named 'label' (the header has: a, b)");
  REQUIRE_THROWS_MESSAGE(read_csv(p, {.has_header = true, .target_column = 5}), std::invalid_argument,
                         "read_csv: " + p + ": target column 5 is out of range for 2 columns");
  REQUIRE_THROWS_MESSAGE(read_csv(p, {.target_name = "b"}), std::invalid_argument,
                         "read_csv: target_name 'b' needs has_header = true");
  const std::string missing = dir.file("missing.csv");
  REQUIRE_THROWS_MESSAGE(read_csv(missing), std::runtime_error,
                         "read_csv: cannot open '" + missing + "': No such file or directory");
}

TEST_CASE("CSV: values beyond float32 or float64 are out of range, not infinite or 'not a number'", "[data][csv][errors]") {
  TempDir dir;
  auto csv = [&](const std::string& text) { return write_text(dir.file("range.csv"), text); };
  std::string p = csv("1,2,0\n1e39,2,1\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error,
                         "read_csv: " + p +
                             ":2:1: 1e+39 is out of range for float32 (largest finite value 3.4028235e+38); read it "
                             "as float64");
  CHECK(read_csv(p, {.dtype = DType::Float64}).features().at({1, 0}) == 1e39);
  p = csv("1,2,0.5\n3,4,-3.5e38\n");  // a regression target, as float32
  REQUIRE_THROWS_MESSAGE(read_csv(p, {.target = CsvTarget::Value}), std::runtime_error,
                         "read_csv: " + p +
                             ":2:3: -3.5e+38 is out of range for float32 (largest finite value 3.4028235e+38); read "
                             "it as float64");
  // The largest float32 itself, and values that round to it, are fine.
  p = csv("3.4028235e38,0\n3.40282356e38,1\n");
  CHECK(read_csv(p).features().at({1, 0}) == Approx(3.4028235e38));
  p = csv("1,2,0\n3,1e400,1\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error, "read_csv: " + p + ":2:2: '1e400' is out of range for float64");
  p = csv("-1e400,2,0\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p, {.dtype = DType::Float64}), std::runtime_error,
                         "read_csv: " + p + ":1:1: '-1e400' is out of range for float64");
  // Below the smallest float64 a value rounds to zero, as strtod and numpy read it.
  p = csv("1e-400,-2e-324,0\n");
  CHECK(read_csv(p, {.dtype = DType::Float64}).features().to_vector() == std::vector<double>{0, 0});
  // A huge broken cell is quoted in part, control bytes escaped.
  p = csv("1," + std::string(100, 'z') + "\x01,0\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error,
                         "read_csv: " + p + ":1:2: '" + std::string(60, 'z') + "...' is not a number");
  p = csv("1,a\x01,0\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error, "read_csv: " + p + ":1:2: 'a\\x01' is not a number");
  p = csv("1,2,1e16\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p), std::runtime_error,
                         "read_csv: " + p + ":1:3: label 1e+16 is too large for a class label (at most 1e+15)");
}

TEST_CASE("CSV: header names must be unique and quotes closed", "[data][csv][errors]") {
  TempDir dir;
  const std::string p = write_text(dir.file("dup.csv"), "x,label,y,x\n1,0,2,3\n");
  REQUIRE_THROWS_MESSAGE(read_csv(p, {.has_header = true, .target_name = "x"}), std::runtime_error,
                         "read_csv: " + p + ":1: columns 1 and 4 are both named 'x': header names must be unique");
  REQUIRE_THROWS_MESSAGE(read_csv_table(p, true), std::runtime_error,
                         "read_csv: " + p + ":1: columns 1 and 4 are both named 'x': header names must be unique");
  // Names compare after trimming and unquoting.
  const std::string q = write_text(dir.file("quoted.csv"), "\n\"a b\",c, a b \n1,2,3\n");
  REQUIRE_THROWS_MESSAGE(read_csv_table(q, true), std::runtime_error,
                         "read_csv: " + q + ":2: columns 1 and 3 are both named 'a b': header names must be unique");
  const std::string open_quote = write_text(dir.file("open.csv"), "a,\"b,c\n1,2\n");
  REQUIRE_THROWS_MESSAGE(read_csv_table(open_quote, true), std::runtime_error,
                         "read_csv: " + open_quote + ":1:2: unterminated quote in the header");
  // Without a header the same text is data: a non-number.
  REQUIRE_THROWS_MESSAGE(read_csv_table(p), std::runtime_error, "read_csv: " + p + ":1:1: 'x' is not a number");
}

TEST_CASE("CSV: an inferred one-hot width is bounded by the file", "[data][csv][errors]") {
  TempDir dir;
  // 8 KB: 2000 rows of "0,0" and one label of 98303 once asked for
  // 2001 x 98304 float32 = 787 MB.
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "0,0\n";
  const std::string small = write_text(dir.file("small.csv"), text + "0,98303\n");
  REQUIRE(fs::file_size(small) < 8200);
  REQUIRE_THROWS_MESSAGE(read_csv(small, {.target = CsvTarget::OneHot}), std::runtime_error,
                         "read_csv: " + small +
                             ":2001:2: label 98303 makes 98304 one-hot classes, more than the 2001 data rows; is this "
                             "the label column? Set num_classes to allow it");
  // As many classes as rows, but 5000 x 5000 float32 (100 MB) from a 20 KB file.
  text.clear();
  for (int i = 0; i < 4999; ++i) text += "0,0\n";
  const std::string square = write_text(dir.file("square.csv"), text + "0,4999\n");
  REQUIRE_THROWS_MESSAGE(read_csv(square, {.target = CsvTarget::OneHot}), std::runtime_error,
                         "read_csv: " + square +
                             ":5000:2: label 4999 makes one-hot targets of 5000 rows x 5000 classes (100000000 "
                             "bytes), more than 64 times the file's size; set num_classes to allow it");
  // Class indices need no such bound: they are one integer per row.
  CHECK(read_csv(square).targets().shape() == Shape{5000});
  // An explicit class count is the caller's decision, even beyond the rows.
  const std::string few = write_text(dir.file("few.csv"), "0.5,3\n0.25,1\n");
  Dataset wide = read_csv(few, {.target = CsvTarget::OneHot, .num_classes = 50});
  CHECK(wide.targets().shape() == Shape{2, 50});
  CHECK(wide.targets().at({0, 3}) == 1.0);
  REQUIRE_THROWS_MESSAGE(read_csv(few, {.target = CsvTarget::OneHot}), std::runtime_error,
                         "read_csv: " + few +
                             ":1:2: label 3 makes 4 one-hot classes, more than the 2 data rows; is this the label "
                             "column? Set num_classes to allow it");
  REQUIRE_THROWS_MESSAGE(read_csv(few, {.target = CsvTarget::OneHot, .num_classes = std::int64_t{1} << 62}),
                         std::runtime_error,
                         "read_csv: " + few + ": one-hot targets of 2 rows x 4611686018427387904 classes overflow a "
                                              "64-bit size");
}

TEST_CASE("CSV: the reason a file cannot be opened is the real one", "[data][csv][errors]") {
  TempDir dir;
  const std::string file = write_text(dir.file("f.csv"), "1,0\n");
  REQUIRE_THROWS_MESSAGE(read_csv(file + "/inside"), std::runtime_error,
                         "read_csv: cannot open '" + file + "/inside': Not a directory");
  REQUIRE_THROWS_MESSAGE(read_csv(dir.path().string()), std::runtime_error,
                         "read_csv: cannot open '" + dir.path().string() + "': it is a directory");
  errno = EACCES;  // a stale value from earlier must not leak into the message
  REQUIRE_THROWS_MESSAGE(read_csv(dir.file("missing.csv")), std::runtime_error,
                         "read_csv: cannot open '" + dir.file("missing.csv") + "': No such file or directory");
}

// The forecast example's series (scripts/get-series): a quoted header, the
// year in the first column, the value in the second.
// The plants files in tests/data: an ID column, text labels, holes.
const std::string kPlantsTrain = TAPEGRAD_TEST_DATA_DIR "/csv_plants_train.csv";
const std::string kPlantsTest = TAPEGRAD_TEST_DATA_DIR "/csv_plants_test.csv";
const std::string kPlantsUnseen = TAPEGRAD_TEST_DATA_DIR "/csv_plants_unseen.csv";
const CsvOptions kPlants{.has_header = true,
                         .target_name = "kind",
                         .labels = CsvLabels::Sorted,
                         .drop_columns = {"id"},
                         .missing = CsvMissing::Mean};

TEST_CASE("CSV: text labels in first-seen or sorted order; the test file read with the training mapping",
          "[data][csv]") {
  const CsvData train = read_csv_data(kPlantsTrain, kPlants);
  CHECK(train.classes == std::vector<std::string>{"lily", "rose", "tulip"});
  CHECK(as_indices(train.dataset.targets()) == std::vector<std::int64_t>{1, 2, 0, 1, 2});
  CHECK(train.feature_names == std::vector<std::string>{"colour", "length", "width"});

  CsvOptions first_seen = kPlants;
  first_seen.labels = CsvLabels::FirstSeen;
  const CsvData in_file_order = read_csv_data(kPlantsTrain, first_seen);
  CHECK(in_file_order.classes == std::vector<std::string>{"rose", "tulip", "lily"});
  CHECK(as_indices(in_file_order.dataset.targets()) == std::vector<std::int64_t>{0, 1, 2, 0, 1});

  // The test file alone would number lily 0 and rose 1 whatever the order;
  // with the training classes its indices mean what they meant in training.
  CsvOptions test_options = first_seen;
  test_options.classes = in_file_order.classes;
  const CsvData test = read_csv_data(kPlantsTest, test_options);
  CHECK(test.classes == in_file_order.classes);
  CHECK(as_indices(test.dataset.targets()) == std::vector<std::int64_t>{2, 0});
  CHECK(as_indices(read_csv_data(kPlantsTest, first_seen).dataset.targets()) == std::vector<std::int64_t>{0, 1});

  // One-hot: as wide as the classes, or num_classes.
  CsvOptions one_hot = test_options;
  one_hot.target = CsvTarget::OneHot;
  CHECK(read_csv(kPlantsTest, one_hot).targets().to_vector() == std::vector<double>{0, 0, 1, 1, 0, 0});
  one_hot.num_classes = 4;
  CHECK(read_csv(kPlantsTest, one_hot).targets().shape() == Shape{2, 4});

  REQUIRE_THROWS_MESSAGE(read_csv(kPlantsUnseen, test_options), std::runtime_error,
                         "read_csv: " + kPlantsUnseen +
                             ":3:5: label 'daisy' is not one of the 3 classes given (rose, "
                             "tulip, lily)");
}

TEST_CASE("CSV: dropped columns are never read", "[data][csv]") {
  TempDir dir;
  const std::string path = write_text(dir.file("ids.csv"), "id,x,note,y\nA-1,1.5,free text,0\nB-2,2.5,,1\n");
  const CsvData data = read_csv_data(path, {.has_header = true, .target_name = "y", .drop_columns = {"id", "note"}});
  CHECK(data.feature_names == std::vector<std::string>{"x"});
  CHECK(data.dataset.features().to_vector() == std::vector<double>{1.5, 2.5});
  CHECK(as_indices(data.dataset.targets()) == std::vector<std::int64_t>{0, 1});
  CHECK(data.classes.empty());
  REQUIRE_THROWS_MESSAGE(read_csv(path, {.has_header = true, .target_name = "y", .drop_columns = {"id"}}),
                         std::runtime_error, "read_csv: " + path + ":2:3: 'free text' is not a number");
  REQUIRE_THROWS_MESSAGE(read_csv(path, {.has_header = true, .drop_columns = {"ID"}}), std::runtime_error,
                         "read_csv: " + path + ": no column named 'ID' (the header has: id, x, note, y)");
  REQUIRE_THROWS_MESSAGE(read_csv(path, {.has_header = true, .drop_columns = {"y"}}), std::invalid_argument,
                         "read_csv: " + path + ": cannot drop the target column 'y'");
  REQUIRE_THROWS_MESSAGE(read_csv(path, {.has_header = true, .drop_columns = {"id", "x", "note"}}), std::runtime_error,
                         "read_csv: " + path + ": no feature columns left after dropping id, x, note");
  REQUIRE_THROWS_MESSAGE(read_csv(path, {.drop_columns = {"id"}}), std::invalid_argument,
                         "read_csv: drop_columns (id) needs has_header = true");
}

TEST_CASE("CSV: missing cells are errors, or the column's mean, a constant, or the training means", "[data][csv]") {
  CsvOptions options = kPlants;
  options.missing = CsvMissing::Error;
  REQUIRE_THROWS_MESSAGE(read_csv(kPlantsTrain, options), std::runtime_error,
                         "read_csv: " + kPlantsTrain +
                             ":3:3: missing value (empty cell); set CsvOptions::missing to "
                             "impute it");
  REQUIRE_THROWS_MESSAGE(
      read_csv(kPlantsTest, options), std::runtime_error,
      "read_csv: " + kPlantsTest + ":2:3: missing value ('NA'); set CsvOptions::missing to impute it");

  // Means of the present cells: colour (0.9 + 0.1 + 0.5 + 0.8 + 0.2) / 5,
  // length (4 + 6 + 5 + 3) / 4, width (1 + 2 + 1.5 + 2.5) / 4.
  options.missing = CsvMissing::Mean;
  options.dtype = DType::Float64;
  const CsvData train = read_csv_data(kPlantsTrain, options);
  REQUIRE(train.fill_values.size() == 3);
  CHECK(train.fill_values[0] == Approx(0.5));
  CHECK(train.fill_values[1] == 4.5);
  CHECK(train.fill_values[2] == 1.75);
  CHECK(train.filled_cells == 2);
  check_close(train.dataset.features(),
              Tensor({{0.9, 4, 1}, {0.1, 4.5, 2}, {0.5, 6, 1.75}, {0.8, 5, 1.5}, {0.2, 3, 2.5}}, DType::Float64));

  // The test file with its own means (one value each), then with train's.
  const CsvData own = read_csv_data(kPlantsTest, options);
  CHECK(own.dataset.features().to_vector() == std::vector<double>{0.7, 5.5, 1.2, 0.7, 5.5, 2.2});
  CsvOptions with_train = options;
  with_train.missing = CsvMissing::Values;
  with_train.fill_values = train.fill_values;
  with_train.classes = train.classes;
  const CsvData test = read_csv_data(kPlantsTest, with_train);
  check_close(test.dataset.features(), Tensor({{0.7, 4.5, 1.2}, {0.5, 5.5, 2.2}}, DType::Float64));
  CHECK(test.fill_values == train.fill_values);

  CsvOptions constant = options;
  constant.missing = CsvMissing::Constant;
  constant.fill_value = -1;
  CHECK(read_csv(kPlantsTest, constant).features().to_vector() == std::vector<double>{0.7, -1, 1.2, -1, 5.5, 2.2});
  // Other markers: "?" counts as missing, and "NA" no longer does.
  TempDir dir;
  const std::string marked = write_text(dir.file("marked.csv"), "x,y\n?,0\n4,1\n");
  CHECK(read_csv(marked, {.has_header = true, .missing_markers = {"?"}, .missing = CsvMissing::Mean})
            .features()
            .to_vector() == std::vector<double>{4, 4});
  // A NaN fill marks the holes for where() later.
  const Tensor marked_nan =
      read_csv(
          marked,
          {.has_header = true, .missing_markers = {"?"}, .missing = CsvMissing::Constant, .fill_value = std::nan("")})
          .features();
  CHECK(std::isnan(marked_nan.at({0, 0})));
  CHECK(marked_nan.at({1, 0}) == 4.0);
  const std::string na = write_text(dir.file("na.csv"), "x,y\nNA,0\n");
  REQUIRE_THROWS_MESSAGE(read_csv(na, {.has_header = true, .missing_markers = {}, .missing = CsvMissing::Mean}),
                         std::runtime_error, "read_csv: " + na + ":2:1: 'NA' is not a number");
}

TEST_CASE("CSV: option errors name the option, the file and the values", "[data][csv][errors]") {
  TempDir dir;
  CsvOptions options = kPlants;
  options.missing = CsvMissing::Values;
  options.fill_values = {1, 2};
  REQUIRE_THROWS_MESSAGE(read_csv(kPlantsTrain, options), std::invalid_argument,
                         "read_csv: " + kPlantsTrain + ": 2 fill_values for 3 feature columns");
  const std::string empty_column = write_text(dir.file("hole.csv"), "a,b,y\n1,,0\n2,NA,1\n");
  REQUIRE_THROWS_MESSAGE(read_csv(empty_column, {.has_header = true, .missing = CsvMissing::Mean}), std::runtime_error,
                         "read_csv: " + empty_column + ": column 2 ('b') has no values to take the mean of");
  const std::string no_label = write_text(dir.file("no_label.csv"), "a,y\n1,cat\n2,NA\n");
  REQUIRE_THROWS_MESSAGE(
      read_csv(no_label, {.has_header = true, .labels = CsvLabels::Sorted, .missing = CsvMissing::Mean}),
      std::runtime_error, "read_csv: " + no_label + ":3:2: missing label ('NA')");
  REQUIRE_THROWS_MESSAGE(read_csv(no_label, {.has_header = true}), std::runtime_error,
                         "read_csv: " + no_label + ":2:2: 'cat' is not a number");
  const std::string no_value = write_text(dir.file("no_value.csv"), "1,2.5\n2,\n");
  REQUIRE_THROWS_MESSAGE(read_csv(no_value, {.target = CsvTarget::Value}), std::runtime_error,
                         "read_csv: " + no_value + ":2:2: missing target value (empty cell)");
  REQUIRE_THROWS_MESSAGE(
      read_csv(kPlantsTrain, {.has_header = true, .target = CsvTarget::Value, .labels = CsvLabels::Sorted}),
      std::invalid_argument, "read_csv: text labels need class targets (CsvTarget::ClassIndex or OneHot), not Value");
  REQUIRE_THROWS_MESSAGE(read_csv(kPlantsTrain, {.has_header = true, .classes = {"rose"}}), std::invalid_argument,
                         "read_csv: classes are given but labels is CsvLabels::Numbers; set labels to FirstSeen or "
                         "Sorted");
  options = kPlants;
  options.classes = {"rose", "lily", "rose"};
  REQUIRE_THROWS_MESSAGE(read_csv(kPlantsTrain, options), std::invalid_argument,
                         "read_csv: classes: 'rose' is given twice");
  options = kPlants;
  options.num_classes = 2;
  REQUIRE_THROWS_MESSAGE(read_csv(kPlantsTrain, options), std::runtime_error,
                         "read_csv: " + kPlantsTrain + ": 3 classes (lily, rose, tulip) do not fit num_classes = 2");
  // A long class list is cut in the message.
  std::string many = "x,y\n";
  for (int i = 0; i < 12; ++i) many += std::to_string(i) + ",c" + std::to_string(i) + "\n";
  const std::string many_path = write_text(dir.file("many.csv"), many);
  CsvOptions many_options{.has_header = true, .labels = CsvLabels::FirstSeen};
  many_options.classes = read_csv_data(many_path, many_options).classes;
  const std::string other = write_text(dir.file("other.csv"), "x,y\n1,c99\n");
  REQUIRE_THROWS_MESSAGE(read_csv(other, many_options), std::runtime_error,
                         "read_csv: " + other +
                             ":2:2: label 'c99' is not one of the 12 classes given (c0, c1, c2, c3, "
                             "c4, c5, c6, c7, c8, c9, ... (12 in all))");
}

TEST_CASE("CSV: a yearly series in the layout of statsmodels' sunspots.csv", "[data][csv]") {
  TempDir dir;
  const std::string path = write_text(dir.file("sunspots.csv"), "\"YEAR\",\"SUNACTIVITY\"\n1700,5\n1701,11\n1702,16.5\n");
  CsvTable table = read_csv_table(path, true);
  CHECK(table.header == std::vector<std::string>{"YEAR", "SUNACTIVITY"});
  CHECK(table.rows == 3);
  CHECK(table.values == std::vector<double>{1700, 5, 1701, 11, 1702, 16.5});
  Dataset series = read_csv(path, {.has_header = true, .target_name = "SUNACTIVITY", .target = CsvTarget::Value,
                                   .dtype = DType::Float64});
  CHECK(series.features().to_vector() == std::vector<double>{1700, 1701, 1702});
  CHECK(series.targets().to_vector() == std::vector<double>{5, 11, 16.5});
}

TEST_CASE("the sunspots series made by scripts/get-series: 309 years, 1700 to 2008", "[data][csv][series]") {
  const std::string path = TAPEGRAD_TEST_DATA_DIR "/../../data/sunspots/sunspots.csv";
  if (!fs::exists(path)) {
    WARN("skipped: " << path << " is absent (scripts/get-series makes it)");
    return;
  }
  CsvTable table = read_csv_table(path, true);
  REQUIRE(table.header == std::vector<std::string>{"YEAR", "SUNACTIVITY"});
  REQUIRE(table.rows == 309);
  for (std::int64_t r = 0; r < table.rows; ++r) {
    INFO("row " << r);
    CHECK(table.values[static_cast<std::size_t>(2 * r)] == 1700 + r);
    CHECK(table.values[static_cast<std::size_t>(2 * r + 1)] >= 0);
  }
  CHECK(table.values[1] == 5);
  CHECK(table.values[3] == 11);
  CHECK(table.values.back() == 2.9);
}

TEST_CASE("fuzz inputs: every IDX and CSV seed and kept crash is read or refused cleanly", "[data][fuzz]") {
  // scripts/fuzz adds each input that crashed a reader to fuzz/regressions/;
  // here they are replayed through the public API, with the seeds.
  const std::vector<std::string> idx = fuzz_inputs("idx");
  REQUIRE(idx.size() >= 8);
  for (const std::string& path : idx) {
    INFO(path);
    CHECK(read_or_refused([&] { read_idx(path, 1); }));
    CHECK(read_or_refused([&] { read_idx(path, 3); }));
    CHECK(read_or_refused([&] { read_idx_images(path); }));
    CHECK(read_or_refused([&] { read_idx_labels(path, 256); }));
  }
  const std::vector<std::string> csv = fuzz_inputs("csv");
  REQUIRE(csv.size() >= 9);
  for (const std::string& path : csv) {
    INFO(path);
    CHECK(read_or_refused([&] { read_csv_table(path, true); }));
    CHECK(read_or_refused([&] { read_csv(path); }));
    CHECK(read_or_refused([&] { read_csv(path, {.target = CsvTarget::OneHot}); }));
    CHECK(read_or_refused([&] { read_csv(path, {.has_header = true, .target_name = "y", .target = CsvTarget::Value}); }));
  }
}

// --- text ---

TEST_CASE("read_text_files: one file, or a directory's text files by name, without links and binaries", "[data][text]") {
  TempDir dir;
  write_text(dir.file("b"), "two\n%\nthree\n");
  write_text(dir.file("a"), "one\n");
  write_file(dir.file("a.dat"), Bytes{0, 0, 0, 2, 'o', 'n', 'e'});  // fortune's strfile index: binary
  fs::create_symlink(dir.file("a"), dir.file("a.u8"));               // fortune's second name for a
  fs::create_directory(dir.file("sub"));
  write_text(dir.file("sub/c"), "not read\n");

  std::vector<TextFile> files = read_text_files(dir.path().string());
  REQUIRE(files.size() == 2);
  CHECK(files[0].path == dir.file("a"));
  CHECK(files[0].text == "one\n");
  CHECK(files[1].path == dir.file("b"));
  CHECK(files[1].text == "two\n%\nthree\n");

  files = read_text_files(dir.file("b"));
  REQUIRE(files.size() == 1);
  CHECK(files[0].text == "two\n%\nthree\n");

  REQUIRE_THROWS_MESSAGE(read_text_files(dir.file("a.dat")), std::runtime_error,
                         "read_text_files: " + dir.file("a.dat") + ": not a text file (it holds a NUL byte)");
  REQUIRE_THROWS_MESSAGE(read_text_files(dir.file("missing")), std::runtime_error,
                         "read_text_files: cannot open '" + dir.file("missing") + "': No such file or directory");
  TempDir binaries;
  write_file(binaries.file("x.dat"), Bytes{1, 0, 2});
  REQUIRE_THROWS_MESSAGE(read_text_files(binaries.path().string()), std::runtime_error,
                         "read_text_files: " + binaries.path().string() + ": the directory holds no text file");
}

TEST_CASE("split_entries: lines holding just the separator end an entry; blank entries are dropped", "[data][text]") {
  CHECK(split_entries("A day.\n%\nTwo\nlines.\n%\n%\n  \n%\n100% sure\n%%\nno newline") ==
        std::vector<std::string>{"A day.\n", "Two\nlines.\n", "100% sure\n%%\nno newline\n"});
  CHECK(split_entries("x\r\n%\r\ny\r\n") == std::vector<std::string>{"x\r\n", "y\r\n"});
  CHECK(split_entries("a\n--\nb\n%\nc\n", "--") == std::vector<std::string>{"a\n", "b\n%\nc\n"});
  CHECK(split_entries("").empty());
  CHECK(split_entries("%\n%\n").empty());
}

TEST_CASE("CharVocabulary: sorted distinct bytes, encode and decode", "[data][text]") {
  CharVocabulary vocab(std::vector<std::string>{"hello", "world\n"});
  CHECK(vocab.size() == 8);
  CHECK(vocab.symbols() == "\ndehlorw");
  CHECK(vocab.index('l') == 4);
  CHECK(vocab.symbol(7) == 'w');
  CHECK(vocab.contains('d'));
  CHECK_FALSE(vocab.contains('x'));

  Tensor ids = vocab.encode("low\n");
  CHECK(ids.dtype() == DType::Int64);
  CHECK(ids.shape() == Shape{4});
  CHECK(as_indices(ids) == std::vector<std::int64_t>{4, 5, 7, 0});
  CHECK(vocab.decode(ids) == "low\n");
  CHECK(vocab.decode(from_indices({3, 2, 4, 4, 5, 0}, Shape{2, 3})) == "hello\n");  // any shape, row-major
  CHECK(vocab.encode("").shape() == Shape{0});

  REQUIRE_THROWS_MESSAGE(vocab.encode("hex"), std::invalid_argument,
                         "CharVocabulary::encode: byte 0x78 ('x') at offset 2 is not in the vocabulary of 8 symbols");
  REQUIRE_THROWS_MESSAGE(vocab.index('\t'), std::invalid_argument,
                         "CharVocabulary::index: byte 0x09 is not in the vocabulary");
  REQUIRE_THROWS_MESSAGE(vocab.decode(from_indices({0, 8}, Shape{2})), std::out_of_range,
                         "CharVocabulary::decode: index 8 at element 1 is out of range [0, 8)");
  REQUIRE_THROWS_MESSAGE(vocab.decode(from_indices({-1}, Shape{1})), std::out_of_range,
                         "CharVocabulary::decode: index -1 at element 0 is out of range [0, 8)");
  REQUIRE_THROWS_MESSAGE(vocab.decode(Tensor({1.0})), std::invalid_argument,
                         "CharVocabulary::decode: indices must be int64, got float32");
  REQUIRE_THROWS_MESSAGE(vocab.symbol(8), std::out_of_range, "CharVocabulary::symbol: index 8 is out of range [0, 8)");

  // UTF-8: a two-byte character is two symbols, and comes back byte for byte.
  const std::string text = "caf\xC3\xA9";
  CharVocabulary utf8(text);
  CHECK(utf8.size() == 5);
  CHECK(utf8.decode(utf8.encode(text)) == text);
  REQUIRE_THROWS_MESSAGE(utf8.encode("\xFF"), std::invalid_argument,
                         "CharVocabulary::encode: byte 0xff at offset 0 is not in the vocabulary of 5 symbols");
}

TEST_CASE("split_held_out: seeded, disjoint, complete, in the original order", "[data][text]") {
  std::vector<std::string> entries;
  for (int i = 0; i < 20; ++i) entries.push_back(std::to_string(i) + " entry\n");
  const TextSplit split = split_held_out(entries, 0.25, 3);
  REQUIRE(split.held_out.size() == 5);
  REQUIRE(split.train.size() == 15);
  auto position = [&](const std::string& e) { return std::find(entries.begin(), entries.end(), e) - entries.begin(); };
  for (const auto* part : {&split.train, &split.held_out}) {
    for (std::size_t k = 1; k < part->size(); ++k) CHECK(position((*part)[k - 1]) < position((*part)[k]));
  }
  std::set<std::string> all(split.train.begin(), split.train.end());
  all.insert(split.held_out.begin(), split.held_out.end());
  CHECK(all.size() == 20);

  const TextSplit again = split_held_out(entries, 0.25, 3);
  CHECK(again.held_out == split.held_out);
  CHECK(again.train == split.train);
  CHECK(split_held_out(entries, 0.25, 4).held_out != split.held_out);
  CHECK(split_held_out(entries, 0.0, 3).train == entries);
  CHECK(split_held_out(entries, 0.01, 3).held_out.empty());  // round(0.2) entries

  REQUIRE_THROWS_MESSAGE(split_held_out(entries, 1.0, 3), std::invalid_argument,
                         "split_held_out: held_out_fraction must lie in [0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(split_held_out(entries, -0.5, 3), std::invalid_argument,
                         "split_held_out: held_out_fraction must lie in [0, 1), got -0.5");
  REQUIRE_THROWS_AS(split_held_out(entries, std::nan(""), 3), std::invalid_argument);
}

TEST_CASE("unigram_entropy_bits: closed forms", "[data][text]") {
  CHECK(unigram_entropy_bits({"ab", "ab"}) == 1.0);
  CHECK(unigram_entropy_bits({"abcd"}) == 2.0);
  CHECK(unigram_entropy_bits({"aaaa", ""}) == 0.0);
  // p = (2/3, 1/3): log2(3) - 2/3.
  CHECK(unigram_entropy_bits({"aab"}) == Approx(std::log2(3.0) - 2.0 / 3.0).epsilon(1e-15));
  REQUIRE_THROWS_MESSAGE(unigram_entropy_bits({""}), std::invalid_argument,
                         "unigram_entropy_bits: the texts hold no character");
  REQUIRE_THROWS_MESSAGE(unigram_entropy_bits({}), std::invalid_argument,
                         "unigram_entropy_bits: the texts hold no character");
}

// --- Dataset and DataLoader ---

TEST_CASE("Dataset checks its tensors and gathers copies of rows", "[data][dataset]") {
  REQUIRE_THROWS_MESSAGE(Dataset(zeros({5, 3}), zeros({4})), std::invalid_argument,
                         "Dataset: features [5x3] and targets [4] disagree on the number of samples (5 vs 4)");
  REQUIRE_THROWS_MESSAGE(Dataset(scalar(1), zeros({1})), std::invalid_argument,
                         "Dataset: features [] and targets [1] need a first axis: the samples");
  Dataset d = numbered(5);
  Batch b = d.gather({4, 1, 2});
  CHECK(b.inputs.shape() == Shape{3, 2});
  CHECK(as_indices(b.targets) == std::vector<std::int64_t>{4, 1, 2});
  check_rows_follow_targets(b);
  // A copy: writing into the batch leaves the data set alone.
  b.inputs.data<float>()[0] = -1;
  CHECK(d.features().at({4, 0}) == 4.0);
  CHECK(d.subset({0, 3}).features().to_vector() == std::vector<double>{0, 0, 3, 30});
  REQUIRE_THROWS_MESSAGE(d.gather({1, 5}), std::out_of_range, "Dataset::gather: index 5 is out of range for 5 samples");
  REQUIRE_THROWS_MESSAGE(d.gather({-1}), std::out_of_range, "Dataset::gather: index -1 is out of range for 5 samples");
}

TEST_CASE("DataLoader: mini-batches, pattern mode, full batch, drop_last", "[data][loader]") {
  Dataset d = numbered(10);
  auto sizes = [](DataLoader& loader) {
    std::vector<std::int64_t> out;
    for (const auto& [x, y] : loader) {
      CHECK(x.shape(0) == y.shape(0));
      out.push_back(x.shape(0));
    }
    return out;
  };
  DataLoader mini(d, {.batch_size = 3});
  CHECK(mini.num_batches() == 4);
  CHECK(sizes(mini) == std::vector<std::int64_t>{3, 3, 3, 1});
  DataLoader dropped(d, {.batch_size = 3, .drop_last = true});
  CHECK(dropped.num_batches() == 3);
  CHECK(dropped.num_samples() == 9);
  CHECK(sizes(dropped) == std::vector<std::int64_t>{3, 3, 3});
  DataLoader pattern(d, {.batch_size = 1});
  CHECK(sizes(pattern) == std::vector<std::int64_t>(10, 1));
  DataLoader full(d, {.batch_size = kFullBatch});
  CHECK(full.batch_size() == 10);
  CHECK(sizes(full) == std::vector<std::int64_t>{10});
  DataLoader larger(d, {.batch_size = 64});
  CHECK(sizes(larger) == std::vector<std::int64_t>{10});
  DataLoader larger_dropped(d, {.batch_size = 64, .drop_last = true});
  CHECK(sizes(larger_dropped).empty());

  // Unshuffled: the data set's order, and every epoch the same.
  std::vector<std::int64_t> seen;
  for (const auto& [x, y] : mini) {
    for (std::int64_t t : as_indices(y)) seen.push_back(t);
  }
  std::vector<std::int64_t> expected(10);
  std::iota(expected.begin(), expected.end(), 0);
  CHECK(seen == expected);
  CHECK(mini.epoch() == 2);

  CHECK(parse_batch_size("all") == kFullBatch);
  CHECK(parse_batch_size("full") == kFullBatch);
  CHECK(parse_batch_size("16") == 16);
  REQUIRE_THROWS_MESSAGE(parse_batch_size("-2"), std::invalid_argument,
                         "parse_batch_size: '-2' is not a batch size (a non-negative integer, or 'all')");
  REQUIRE_THROWS_MESSAGE(parse_batch_size("ten"), std::invalid_argument,
                         "parse_batch_size: 'ten' is not a batch size (a non-negative integer, or 'all')");
  REQUIRE_THROWS_MESSAGE(DataLoader(d, {.batch_size = -1}), std::invalid_argument,
                         "DataLoader: batch_size must be positive, or kFullBatch (0) for the whole data set; got -1");
  REQUIRE_THROWS_MESSAGE(mini.batch(4), std::out_of_range, "DataLoader::batch: batch 4 is out of range for 4 batches");
  DataLoader nothing(Dataset{}, {});
  CHECK(nothing.num_batches() == 0);
  CHECK(sizes(nothing).empty());
}

// One epoch of `loader`: the targets (sample numbers) in the order seen.
static std::vector<std::int64_t> epoch_order(DataLoader& loader) {
  std::vector<std::int64_t> order;
  for (const Batch& batch : loader) {
    check_rows_follow_targets(batch);
    for (std::int64_t t : as_indices(batch.targets)) order.push_back(t);
  }
  return order;
}

TEST_CASE("DataLoader shuffles with a seed: a new permutation every epoch, reproducibly", "[data][loader]") {
  Dataset d = numbered(50);
  DataLoader a(d, {.batch_size = 8, .shuffle = true, .seed = 42});
  DataLoader b(d, {.batch_size = 8, .shuffle = true, .seed = 42});
  DataLoader c(d, {.batch_size = 8, .shuffle = true, .seed = 43});
  const std::vector<std::int64_t> a1 = epoch_order(a), a2 = epoch_order(a);
  const std::vector<std::int64_t> b1 = epoch_order(b), b2 = epoch_order(b);
  const std::vector<std::int64_t> c1 = epoch_order(c);
  CHECK(a1 == b1);
  CHECK(a2 == b2);
  CHECK(a1 != a2);
  CHECK(a1 != c1);
  std::vector<std::int64_t> sorted = a1;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::int64_t> all(50);
  std::iota(all.begin(), all.end(), 0);
  CHECK(sorted == all);
  CHECK(a.order() == a2);

  // drop_last with shuffling drops different samples in different epochs.
  DataLoader dropping(d, {.batch_size = 8, .shuffle = true, .seed = 1, .drop_last = true});
  std::set<std::int64_t> union_of_epochs;
  for (int epoch = 0; epoch < 5; ++epoch) {
    const std::vector<std::int64_t> order = epoch_order(dropping);
    CHECK(order.size() == 48);
    union_of_epochs.insert(order.begin(), order.end());
  }
  CHECK(union_of_epochs.size() == 50);
}

TEST_CASE("DataLoader shards an epoch over ranks: disjoint, evened, the same permutation everywhere", "[data][loader][dist]") {
  Dataset d = numbered(10);
  // 10 samples over 3 ranks: 4 each, the permutation padded with its first two.
  for (const bool shuffle : {false, true}) {
    DataLoader whole(d, {.batch_size = 6, .shuffle = shuffle, .seed = 9});
    std::vector<DataLoader> ranks;
    for (std::int64_t r = 0; r < 3; ++r) {
      ranks.emplace_back(d, DataLoaderOptions{.batch_size = 2, .shuffle = shuffle, .seed = 9, .rank = r,
                                              .num_replicas = 3});
    }
    for (int epoch = 0; epoch < 3; ++epoch) {
      whole.begin();
      std::vector<std::int64_t> permutation = whole.order();
      std::vector<std::vector<std::int64_t>> shards;
      for (DataLoader& loader : ranks) {
        CHECK(loader.num_batches() == 2);
        CHECK(loader.num_samples() == 4);
        shards.push_back(epoch_order(loader));
      }
      for (std::int64_t r = 0; r < 3; ++r) {
        for (std::size_t i = 0; i < 4; ++i) {
          CHECK(shards[r][i] == permutation[(r + 3 * i) % 10]);
        }
      }
      std::set<std::int64_t> seen;
      for (const auto& shard : shards) seen.insert(shard.begin(), shard.end());
      CHECK(seen.size() == 10);  // every sample; two of them twice (the padding)
    }
  }
  // drop_last: 10 over 3 ranks is 3 each; with batch 2 the last batch of 1 goes too.
  DataLoader cut(d, {.batch_size = 2, .drop_last = true, .rank = 2, .num_replicas = 3});
  CHECK(cut.num_batches() == 1);
  CHECK(epoch_order(cut) == std::vector<std::int64_t>{2, 5});
  // Batch k of two ranks together is batch k of one loader with twice the batch.
  DataLoader single(d, {.batch_size = 4, .shuffle = true, .seed = 3});
  DataLoader even(d, {.batch_size = 2, .shuffle = true, .seed = 3, .rank = 0, .num_replicas = 2});
  DataLoader odd(d, {.batch_size = 2, .shuffle = true, .seed = 3, .rank = 1, .num_replicas = 2});
  single.begin();
  even.begin();
  odd.begin();
  for (std::int64_t k = 0; k < single.num_batches(); ++k) {
    std::multiset<std::int64_t> together, one;
    for (std::int64_t t : as_indices(even.batch(k).targets)) together.insert(t);
    for (std::int64_t t : as_indices(odd.batch(k).targets)) together.insert(t);
    for (std::int64_t t : as_indices(single.batch(k).targets)) one.insert(t);
    CHECK(together == one);
  }
  DataLoader full(d, {.batch_size = kFullBatch, .rank = 1, .num_replicas = 4});
  CHECK(full.batch_size() == 3);
  CHECK(epoch_order(full) == std::vector<std::int64_t>{1, 5, 9});
  REQUIRE_THROWS_MESSAGE(DataLoader(d, {.rank = 2, .num_replicas = 2}), std::invalid_argument,
                         "DataLoader: rank 2 is not in [0, 2)");
  REQUIRE_THROWS_MESSAGE(DataLoader(d, {.num_replicas = 0}), std::invalid_argument,
                         "DataLoader: num_replicas must be at least 1, got 0");
}

TEST_CASE("random_permutation is the same on every platform for a seed", "[data][loader]") {
  // Pinned values: Fisher-Yates over mt19937_64, whose output the C++
  // standard fixes; a change here would change every shuffled run.
  CHECK(random_permutation(10, 7) == random_permutation(10, 7));
  CHECK(random_permutation(10, 7) == std::vector<std::int64_t>{0, 7, 4, 9, 3, 1, 2, 8, 6, 5});
  CHECK(random_permutation(0, 1).empty());
  CHECK(random_permutation(1, 1) == std::vector<std::int64_t>{0});
}

// --- transforms ---

namespace {

// `n` samples of `channels` planes of 3x4 pixels, all nonzero and distinct
// (sample i, channel c, pixel p: 100 i + 20 c + p + 1), float64; target i.
Dataset pictures(std::int64_t n, std::int64_t channels) {
  std::vector<double> pixels;
  std::vector<std::int64_t> targets;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t c = 0; c < channels; ++c) {
      for (std::int64_t p = 0; p < 12; ++p) pixels.push_back(static_cast<double>(100 * i + 20 * c + p + 1));
    }
    targets.push_back(i);
  }
  return Dataset(from_vector(pixels, Shape{n, channels, 3, 4}, DType::Float64), from_indices(targets, Shape{n}));
}

// A 3x4 plane moved by (dy, dx), zeros shifted in, written out pixel by pixel.
std::vector<double> moved(const std::vector<double>& plane, int dy, int dx) {
  std::vector<double> out(12, 0.0);
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 4; ++x) {
      if (y - dy >= 0 && y - dy < 3 && x - dx >= 0 && x - dx < 4) out[y * 4 + x] = plane[(y - dy) * 4 + (x - dx)];
    }
  }
  return out;
}

// The (dy, dx) in [-m, m]² that makes `after` from `before` (every channel
// by the same offset), or fails the test.
std::pair<int, int> offset_of(const std::vector<double>& before, const std::vector<double>& after, int m) {
  for (int dy = -m; dy <= m; ++dy) {
    for (int dx = -m; dx <= m; ++dx) {
      bool all = true;
      for (std::size_t c = 0; c < before.size() / 12; ++c) {
        const std::vector<double> plane(before.begin() + 12 * c, before.begin() + 12 * (c + 1));
        all = all && std::equal(after.begin() + 12 * c, after.begin() + 12 * (c + 1), moved(plane, dy, dx).begin());
      }
      if (all) return {dy, dx};
    }
  }
  FAIL("the transformed sample is no shift of the original within " << m << " pixels");
  return {0, 0};
}

// The transformed inputs of every batch of one epoch, batch after batch.
std::vector<std::vector<double>> epoch_inputs(DataLoader& loader) {
  std::vector<std::vector<double>> out;
  for (const Batch& batch : loader) out.push_back(batch.inputs.to_vector());
  return out;
}

}  // namespace

TEST_CASE("random_shift moves each sample's planes together by an offset within range", "[data][transforms]") {
  const Dataset d = pictures(300, 2);
  DataLoader loader(d, {.batch_size = 64, .transform = random_shift(3, 4, 1)});
  std::map<std::pair<int, int>, int> counts;
  for (const auto& [x, y] : loader) {
    CHECK(x.shape() == Shape{y.shape(0), 2, 3, 4});
    CHECK(x.dtype() == DType::Float64);
    const std::vector<double> after = x.to_vector();
    const std::vector<std::int64_t> samples = as_indices(y);
    for (std::size_t r = 0; r < samples.size(); ++r) {
      const std::vector<double> before = d.gather({samples[r]}).inputs.to_vector();
      const std::vector<double> sample(after.begin() + 24 * r, after.begin() + 24 * (r + 1));
      ++counts[offset_of(before, sample, 1)];
    }
  }
  // All nine offsets, about 300 / 9 = 33 times each.
  REQUIRE(counts.size() == 9);
  for (const auto& [offset, count] : counts) CHECK(count > 10);

  // Float32 [N, H·W] rows too; a zero shift changes nothing.
  const Dataset flat(reshape(d.features(), {300, 24}).to(DType::Float32), d.targets());
  DataLoader still(flat, {.batch_size = 300, .transform = random_shift(3, 4, 0)});
  CHECK((*still.begin()).inputs.to_vector() == flat.features().to_vector());
  DataLoader moving(flat, {.batch_size = 300, .transform = random_shift(3, 4, 2)});
  CHECK((*moving.begin()).inputs.to_vector() != flat.features().to_vector());
}

TEST_CASE("transforms draw from the batch's own generator: seeded, per epoch, random access", "[data][transforms]") {
  const Dataset d = pictures(40, 1);
  // A transform drawing through rand() (the current generator), not the argument.
  const BatchTransform noisy = [](Batch batch, Generator&) {
    batch.inputs = batch.inputs + rand(batch.inputs.shape(), DType::Float64);
    return batch;
  };
  for (const BatchTransform& transform : {random_shift(3, 4, 1), noisy, compose({random_shift(3, 4, 1), noisy})}) {
    const DataLoaderOptions options{.batch_size = 8, .shuffle = true, .seed = 5, .transform = transform};
    DataLoader a(d, options), b(d, options);
    DataLoaderOptions other_seed = options;
    other_seed.seed = 6;
    DataLoader c(d, other_seed);
    const auto a1 = epoch_inputs(a), a2 = epoch_inputs(a);
    CHECK(a1 == epoch_inputs(b));
    CHECK(a2 == epoch_inputs(b));
    CHECK(a1 != a2);
    CHECK(a1 != epoch_inputs(c));
    // Batches read backwards, or twice, are those read in order: each batch
    // has its own stream, not the next draws of one shared sequence.
    DataLoader backwards(d, options);
    backwards.begin();
    for (std::int64_t k = backwards.num_batches() - 1; k >= 0; --k) {
      CHECK(backwards.batch(k).inputs.to_vector() == a1[static_cast<std::size_t>(k)]);
    }
    CHECK(backwards.batch(2).inputs.to_vector() == a1[2]);
    // Drawing elsewhere in between does not disturb the loader's draws.
    DataLoader interrupted(d, options);
    interrupted.begin();
    (void)randn({100});
    CHECK(interrupted.batch(0).inputs.to_vector() == a1[0]);
  }
  // Ranks draw differently for the same batch index.
  DataLoader rank0(d, {.batch_size = 4, .seed = 5, .num_replicas = 2, .transform = noisy});
  DataLoader rank1(d, {.batch_size = 4, .seed = 5, .rank = 1, .num_replicas = 2, .transform = noisy});
  rank0.begin();
  rank1.begin();
  const std::vector<std::int64_t> first0(rank0.order().begin(), rank0.order().begin() + 4);
  const std::vector<std::int64_t> first1(rank1.order().begin(), rank1.order().begin() + 4);
  const Tensor noise0 = rank0.batch(0).inputs - d.gather(first0).inputs;
  const Tensor noise1 = rank1.batch(0).inputs - d.gather(first1).inputs;
  CHECK(noise0.to_vector() != noise1.to_vector());
}

TEST_CASE("transform errors name the transform, the shapes and the sizes", "[data][transforms][errors]") {
  REQUIRE_THROWS_MESSAGE(random_shift(0, 4, 1), std::invalid_argument,
                         "random_shift: image sizes must be at least 1, got 0x4");
  REQUIRE_THROWS_MESSAGE(random_shift(3, 4, -1), std::invalid_argument,
                         "random_shift: max_shift must be non-negative, got -1");
  REQUIRE_THROWS_MESSAGE(compose({random_shift(3, 4, 1), BatchTransform{}}), std::invalid_argument,
                         "compose: transform 1 is empty");
  const Dataset d = pictures(4, 1);
  DataLoader wrong_size(d, {.batch_size = 2, .transform = random_shift(5, 5, 1)});
  wrong_size.begin();
  REQUIRE_THROWS_MESSAGE(wrong_size.batch(0), std::invalid_argument,
                         "random_shift: inputs [2x1x3x4] do not hold 5x5 images (12 values per sample)");
  DataLoader indices(Dataset(from_indices({1, 2}, Shape{2, 1}), from_indices({0, 1}, Shape{2})),
                     {.transform = random_shift(1, 1, 1)});
  REQUIRE_THROWS_MESSAGE(*indices.begin(), std::invalid_argument,
                         "random_shift: inputs must be float32 or float64, got int64");
  DataLoader halves(d, {.batch_size = 4, .transform = [](Batch batch, Generator&) {
                          batch.targets = reshape(batch.targets, {2, 2});
                          return batch;
                        }});
  REQUIRE_THROWS_MESSAGE(*halves.begin(), std::invalid_argument,
                         "DataLoader: the transform returned inputs [4x1x3x4] and targets [2x2], which need one first "
                         "extent (the batch's samples)");
  DataLoader lost(d, {.transform = [](Batch batch, Generator&) { return Batch{batch.inputs, Tensor{}}; }});
  REQUIRE_THROWS_MESSAGE(*lost.begin(), std::invalid_argument,
                         "DataLoader: the transform returned a batch with undefined targets (batch 0)");
}

// --- prefetching ---

TEST_CASE("a prefetching loader yields the batches the plain one does, made on a worker thread",
          "[data][loader][prefetch][threads]") {
  const Dataset d = pictures(50, 2);
  const auto caller = std::this_thread::get_id();
  std::atomic<int> on_worker{0};
  const BatchTransform noisy = [&](Batch batch, Generator&) {
    if (std::this_thread::get_id() != caller) ++on_worker;
    batch.inputs = batch.inputs + rand(batch.inputs.shape(), DType::Float64);
    return batch;
  };
  for (const std::int64_t depth : {1, 2, 7}) {
    DataLoaderOptions options{
        .batch_size = 8, .shuffle = true, .seed = 3, .transform = compose({random_shift(3, 4, 1), noisy})};
    DataLoader plain(d, options);
    options.prefetch = depth;
    DataLoader ahead(d, options);
    on_worker = 0;
    for (int epoch = 0; epoch < 3; ++epoch) {
      const auto expected = epoch_inputs(plain);
      CHECK(epoch_inputs(ahead) == expected);
    }
    CHECK(on_worker == 3 * ahead.num_batches());
  }
}

TEST_CASE("a prefetching worker stays at most `prefetch` batches ahead, and stops when the caller leaves",
          "[data][loader][prefetch][threads]") {
  const Dataset d = pictures(40, 1);
  std::atomic<std::int64_t> started{0};
  const BatchTransform counting = [&](Batch batch, Generator&) {
    ++started;
    return batch;
  };
  DataLoader loader(d, {.batch_size = 2, .transform = counting, .prefetch = 3});
  std::int64_t taken = 0;
  for (const Batch& batch : loader) {
    ++taken;
    CHECK(batch.inputs.shape(0) == 2);
    // The worker makes batch i only while fewer than 3 wait, and the
    // caller holds batch taken - 1: it can have started batches up to
    // taken + 2 at most.
    CHECK(started.load() <= taken + 3);
    if (taken == 5) break;
  }
  // A new epoch stops the old worker; leaving it early again, then dropping
  // the loader mid-epoch, joins the worker (the test would hang otherwise).
  started = 0;
  auto it = loader.begin();
  CHECK(it->inputs.shape(0) == 2);
  ++it;
  ++it;
  ++it;  // skipped batches are dropped, not waited for twice
  CHECK(it->inputs.to_vector() == loader.batch(3).inputs.to_vector());
  // A copy has no worker of its own and reads the same epoch.
  const DataLoader copy = loader;
  CHECK(copy.batch(3).inputs.to_vector() == it->inputs.to_vector());
}

TEST_CASE("a prefetching loader rethrows a batch's exception at that batch, and the batches before it arrive",
          "[data][loader][prefetch][threads][errors]") {
  const Dataset d = pictures(10, 1);
  const BatchTransform fails_at_three = [](Batch batch, Generator&) {
    if (batch.targets.to_vector().front() == 6) throw std::runtime_error("bad batch starting at sample 6");
    return batch;
  };
  DataLoader loader(d, {.batch_size = 2, .transform = fails_at_three, .prefetch = 2});
  std::vector<double> firsts;
  REQUIRE_THROWS_MESSAGE(
      [&] {
        for (const Batch& batch : loader) firsts.push_back(batch.targets.to_vector().front());
      }(),
      std::runtime_error, "bad batch starting at sample 6");
  CHECK(firsts == std::vector<double>{0, 2, 4});
  // Skipping the failed batch reads the ones after it, as the plain loader does.
  auto it = loader.begin();
  for (int k = 0; k < 4; ++k) ++it;
  CHECK(it->targets.to_vector().front() == 8);
  REQUIRE_THROWS_MESSAGE(DataLoader(d, {.prefetch = -1}), std::invalid_argument,
                         "DataLoader: prefetch must be non-negative (0: no worker thread), got -1");
}

TEST_CASE("batches made on the worker and freed by the caller do not pile up in the caller's cache",
          "[data][loader][prefetch][threads][memory]") {
  if (!tapegrad::detail::pool_enabled()) return;  // sanitizer builds cache nothing
  release_cached_memory();
  // 64 images of 28x28 per batch (200 KB), 100 batches an epoch, 10 epochs:
  // 200 MB made on the worker and freed here.
  const Dataset d(zeros({6400, 784}), zeros({6400}, DType::Int64));
  DataLoader loader(d, {.batch_size = 64, .shuffle = true, .prefetch = 2});
  std::size_t most_cached = 0;
  for (int epoch = 0; epoch < 10; ++epoch) {
    for (const Batch& batch : loader) {
      CHECK(batch.inputs.shape(0) == 64);
      most_cached = std::max(most_cached, cached_memory_bytes());
    }
  }
  CHECK(most_cached < std::size_t{16} << 20);
}

// --- splits ---

TEST_CASE("train/validation split: seeded, disjoint, complete, sorted", "[data][split]") {
  const train::IndexSplit s = train::train_validation_indices(10, 0.3, 5);
  CHECK(s.validation.size() == 3);
  CHECK(s.train.size() == 7);
  CHECK(std::is_sorted(s.train.begin(), s.train.end()));
  CHECK(std::is_sorted(s.validation.begin(), s.validation.end()));
  std::vector<std::int64_t> both = s.train;
  both.insert(both.end(), s.validation.begin(), s.validation.end());
  std::sort(both.begin(), both.end());
  std::vector<std::int64_t> all(10);
  std::iota(all.begin(), all.end(), 0);
  CHECK(both == all);
  CHECK(train::train_validation_indices(10, 0.3, 5).validation == s.validation);
  CHECK(train::train_validation_indices(100, 0.3, 5).validation != train::train_validation_indices(100, 0.3, 6).validation);

  const train::DatasetSplit parts = train::train_validation_split(numbered(10), 0.3, 5);
  CHECK(as_indices(parts.validation.targets()) == s.validation);
  CHECK(as_indices(parts.train.targets()) == s.train);
  check_rows_follow_targets({parts.train.features(), parts.train.targets()});

  REQUIRE_THROWS_MESSAGE(train::train_validation_indices(10, 1.0, 0), std::invalid_argument,
                         "train_validation_split: validation_fraction must lie in (0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(train::train_validation_indices(3, 0.1, 0), std::invalid_argument,
                         "train_validation_split: a fraction of 0.1 of 3 samples leaves an empty part (0 for "
                         "validation, 3 for training)");
}

TEST_CASE("K-fold: every sample validated exactly once, folds differ by at most one", "[data][split]") {
  const std::vector<train::IndexSplit> folds = train::k_fold(10, 3, 9);
  REQUIRE(folds.size() == 3);
  CHECK(folds[0].validation.size() == 4);
  CHECK(folds[1].validation.size() == 3);
  CHECK(folds[2].validation.size() == 3);
  std::vector<std::int64_t> validated;
  for (const auto& fold : folds) {
    CHECK(fold.train.size() + fold.validation.size() == 10);
    for (std::int64_t i : fold.validation) {
      CHECK(std::find(fold.train.begin(), fold.train.end(), i) == fold.train.end());
      validated.push_back(i);
    }
  }
  std::sort(validated.begin(), validated.end());
  std::vector<std::int64_t> all(10);
  std::iota(all.begin(), all.end(), 0);
  CHECK(validated == all);

  const std::vector<train::IndexSplit> runs = train::k_fold(5, 2, 0, /*shuffle=*/false);
  CHECK(runs[0].validation == std::vector<std::int64_t>{0, 1, 2});
  CHECK(runs[0].train == std::vector<std::int64_t>{3, 4});
  CHECK(runs[1].validation == std::vector<std::int64_t>{3, 4});
  REQUIRE_THROWS_MESSAGE(train::k_fold(5, 6, 0), std::invalid_argument, "k_fold: k must lie in [2, n] = [2, 5], got 6");
  REQUIRE_THROWS_MESSAGE(train::k_fold(5, 1, 0), std::invalid_argument, "k_fold: k must lie in [2, n] = [2, 5], got 1");
}

// ------------------------------------------------------------------ scalers

TEST_CASE("StandardScaler fits on train, applies to test, inverts, and survives a checkpoint", "[data][scaler]") {
  // Feature 0: mean 2, population std 1; feature 1: mean 10, std 5; feature 2 constant.
  const Tensor train = from_vector({1, 5, 7, 3, 15, 7}, {2, 3}, DType::Float64);
  data::StandardScaler scaler(3, DType::Float64);
  CHECK_FALSE(scaler.fitted());
  scaler.fit(train);
  CHECK(scaler.fitted());
  CHECK(scaler.buffer("mean").to_vector() == std::vector<double>{2, 10, 7});
  CHECK(scaler.buffer("std").to_vector() == std::vector<double>{1, 5, 1});  // constant: 1, not 0
  CHECK(scaler.buffer("samples").to_vector() == std::vector<double>{2});
  CHECK(scaler(train).to_vector() == std::vector<double>{-1, -1, 0, 1, 1, 0});
  const Tensor test = from_vector({4, 0, 8}, {1, 3}, DType::Float64);
  CHECK(scaler(test).to_vector() == std::vector<double>{2, -2, 1});  // train statistics, not the test's
  CHECK(scaler.inverse_transform(scaler(test)).to_vector() == test.to_vector());
  // [..., features]: the last axis is the feature axis.
  CHECK(scaler(reshape(train, {2, 1, 3})).shape() == Shape{2, 1, 3});

  TempDir dir;
  const std::string path = dir.file("scaler.npz");
  io::save_checkpoint(path, scaler);
  data::StandardScaler loaded(3, DType::Float64);
  io::load_checkpoint(path, loaded);
  CHECK(loaded.fitted());
  CHECK(loaded(test).to_vector() == scaler(test).to_vector());
}

TEST_CASE("MinMaxScaler maps the training range onto [low, high]", "[data][scaler]") {
  const Tensor train = from_vector({0, 10, 5, 4, 20, 5}, {2, 3});
  data::MinMaxScaler scaler(3, -1, 1);
  scaler.fit(train);
  CHECK(scaler(train).to_vector() == std::vector<double>{-1, -1, -1, 1, 1, -1});               // constant feature: low
  CHECK(scaler(from_vector({2, 25, 9}, {1, 3})).to_vector() == std::vector<double>{0, 2, 3});  // beyond: not clipped
  const Tensor y = from_vector({0.5, 0, -1}, {1, 3});
  CHECK(scaler(scaler.inverse_transform(y)).to_vector() == y.to_vector());
}

TEST_CASE("scalers: the scaled input is differentiable in x", "[data][scaler][gradcheck]") {
  manual_seed(41);
  data::StandardScaler scaler(4, DType::Float64);
  scaler.fit(random_input({6, 4}));
  require_gradcheck([&](auto& in) { return scaler(in[0]) * scaler(in[0]); }, {random_input({3, 4})});
}

TEST_CASE("scaler errors name the scaler and both feature counts", "[data][scaler][errors]") {
  data::StandardScaler scaler(3);
  REQUIRE_THROWS_MESSAGE(scaler(zeros({2, 3})), std::invalid_argument,
                         "StandardScaler(3 features): transform before fit(): fit it on the training data first");
  REQUIRE_THROWS_MESSAGE(scaler.fit(zeros({2, 5})), std::invalid_argument,
                         "StandardScaler(3 features): input [2x5] has 5 features, expected 3");
  REQUIRE_THROWS_MESSAGE(scaler.fit(zeros({0, 3})), std::invalid_argument,
                         "StandardScaler(3 features): fit() needs at least one row, got [0x3]");
  scaler.fit(ones({2, 3}));
  REQUIRE_THROWS_MESSAGE(scaler(zeros({4, 2})), std::invalid_argument,
                         "StandardScaler(3 features): input [4x2] has 2 features, expected 3");
  REQUIRE_THROWS_MESSAGE(scaler(zeros({4, 3}, DType::Float64)), std::invalid_argument,
                         "StandardScaler(3 features): input is float64 [4x3], the layer's parameters are float32 "
                         "(convert the model with to())");
  REQUIRE_THROWS_MESSAGE(data::MinMaxScaler(3, 1, 1), std::invalid_argument,
                         "MinMaxScaler: needs low < high, got low=1 high=1");
  REQUIRE_THROWS_MESSAGE(data::StandardScaler(0), std::invalid_argument,
                         "StandardScaler: needs at least one feature, got 0");
}
