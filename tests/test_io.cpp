// .npz files and checkpoints: bit-exact round trips, NumPy interop in both
// directions, atomic saves, and damaged or hostile files that must throw a
// clear error (never crash) and leave the model unchanged.
//
// The NumPy-written fixtures in tests/data were made by kNumpyFixtureScript
// below, run by Debian 12's python3 with numpy 1.24:
//   python3 script.py numpy_savez.npz numpy_savez_streamed.npz
//   python3 -c "import numpy as np; np.savez_compressed('numpy_savez_compressed.npz', x=np.ones(3))"
// so the NumPy-to-tapegrad direction is tested without Python; with a
// python3 that has numpy, the tests also run the script and NumPy checks
// what tapegrad writes.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <numbers>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "io/npz_detail.hpp"
#include "io/zip_format.hpp"
#include "io/zip_reader.hpp"
#include "os/process.hpp"
#include "support.hpp"
#include "tapegrad/io/checkpoint.hpp"
#include "tapegrad/io/npz.hpp"
#include "tapegrad/optim/optimizer.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;
namespace fs = std::filesystem;

namespace {

// ------------------------------------------------------------------ helpers

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::uint32_t get32(const std::string& bytes, std::size_t at) {
  std::uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes.at(at + i));
  return value;
}

void put16(std::string& bytes, std::size_t at, std::uint32_t value) {
  bytes.at(at) = static_cast<char>(value & 0xFF);
  bytes.at(at + 1) = static_cast<char>((value >> 8) & 0xFF);
}

void put32(std::string& bytes, std::size_t at, std::uint32_t value) {
  put16(bytes, at, value & 0xFFFF);
  put16(bytes, at + 2, value >> 16);
}

// Offsets in an archive without a comment: the end record is the last 22
// bytes, and it records where the central directory starts.
std::size_t end_record(const std::string& zip) { return zip.size() - 22; }
std::size_t central_directory(const std::string& zip) { return get32(zip, end_record(zip) + 16); }

// Same dtype, shape and bytes (NaN payloads and the sign of zero included).
bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const std::size_t bytes = static_cast<std::size_t>(a.numel()) * dtype_size(a.dtype());
  return std::memcmp(a.raw_data(), b.raw_data(), bytes) == 0;
}

bool bit_equal(const nn::NamedTensors& a, const nn::NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first || !bit_equal(a[i].second, b[i].second)) return false;
  }
  return true;
}

std::vector<std::string> names_of(const nn::NamedTensors& tensors) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : tensors) names.push_back(name);
  return names;
}

// Copies of a module's state, to check later that it did not change.
nn::NamedTensors snapshot(const nn::Module& module) {
  nn::NamedTensors copy;
  for (const auto& [name, tensor] : module.state_dict()) copy.emplace_back(name, tensor.detach().clone());
  return copy;
}

// A .npy member with the given header dict (padded like npy_header) and data.
std::string npy_member(const std::string& dict, const std::string& data, char major = 1) {
  std::string header = dict;
  const std::size_t prefix = major == 1 ? 10 : 12;
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY", 6);
  out += major;
  out += '\0';
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>(header.size() >> 8);
  if (major != 1) out += std::string(2, '\0');
  return out + header + data;
}

// An archive with one member "a.npy" holding `member`.
std::string one_member(const std::string& member) { return io::detail::zip_archive({{"a.npy", member}}); }

const std::string kHostile = "hostile.npz";
std::string hostile_message(const std::string& rest) { return "load_npz: '" + kHostile + "': " + rest; }

// The first python3 that imports numpy: Debian's (scripts/setup installs
// python3-numpy), then the one on PATH. Empty when there is none.
const std::string& python_with_numpy() {
  static const std::string found = [] {
    for (const std::string candidate : {"/usr/bin/python3", "python3"}) {
      const os::ProcessOptions quiet = {.out = os::Output::Discard, .err = os::Output::Discard};
      if (os::run_process({candidate, "-c", "import numpy"}, quiet).succeeded()) return candidate;
    }
    return std::string();
  }();
  return found;
}

// Catch2 v2 has no SKIP: a visible warning, then the test returns.
#define SKIP_WITHOUT_NUMPY()                                                                              \
  if (python_with_numpy().empty()) {                                                                      \
    WARN("NumPy interop not tested: no python3 with numpy found (scripts/setup installs python3-numpy)"); \
    return;                                                                                               \
  }

// Runs a Python script, fed on its standard input, with the given
// arguments; returns true on exit status 0, its output (standard output,
// then standard error) in `output`.
bool run_python(const std::string& script, const std::vector<std::string>& arguments, std::string& output) {
  std::vector<std::string> args = {python_with_numpy(), "-"};
  args.insert(args.end(), arguments.begin(), arguments.end());
  const os::ProcessResult run = os::run_process(args, {.input = script});
  output = run.out + run.err;
  return run.succeeded();
}

// Writes the NumPy fixtures: argv[1] as np.savez writes to a file, argv[2]
// (optional) as it writes to a stream that cannot seek (each member then has
// zero sizes in its local header and a data descriptor after its data).
const char* const kNumpyFixtureScript = R"PY(import sys
import numpy as np


class Unseekable:
    """A write-only stream: zipfile then follows each member with a data descriptor."""

    def __init__(self, f):
        self.f = f

    def read(self, size=-1):  # numpy.savez takes only objects with read() for files
        raise OSError("write-only")

    def write(self, data):
        return self.f.write(data)

    def flush(self):
        self.f.flush()


arrays = {
    "weight": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
    "bias": np.array([-1.5, 0.0, 2.25], dtype=np.float64),
    "labels": np.array([3, -1, 9223372036854775807], dtype=np.int64),
    "scale": np.float32(0.1),
    "empty": np.zeros((0, 4), dtype=np.float32),
    "cube": np.arange(24, dtype=np.float64).reshape(2, 3, 4),
    "model/fc.weight": np.array([[0.5, -0.25]], dtype=np.float32),
}
np.savez(sys.argv[1], **arrays)
if len(sys.argv) > 2:
    with open(sys.argv[2], "wb") as f:
        np.savez(Unseekable(f), **arrays)
)PY";

// What kNumpyFixtureScript writes, as tapegrad must read it.
void check_numpy_arrays(const nn::NamedTensors& loaded) {
  CHECK(names_of(loaded) ==
        std::vector<std::string>{"weight", "bias", "labels", "scale", "empty", "cube", "model/fc.weight"});
  std::map<std::string, Tensor> by_name(loaded.begin(), loaded.end());
  REQUIRE(by_name.size() == 7);
  const Tensor& weight = by_name["weight"];
  CHECK(weight.dtype() == DType::Float32);
  CHECK(weight.shape() == Shape{2, 3});
  CHECK(weight.to_vector() == std::vector<double>{0, 0.25, 0.5, 0.75, 1, 1.25});
  const Tensor& bias = by_name["bias"];
  CHECK(bias.dtype() == DType::Float64);
  CHECK(bias.to_vector() == std::vector<double>{-1.5, 0, 2.25});
  const Tensor& labels = by_name["labels"];
  REQUIRE(labels.dtype() == DType::Int64);
  REQUIRE(labels.shape() == Shape{3});
  CHECK(labels.data<std::int64_t>()[0] == 3);
  CHECK(labels.data<std::int64_t>()[1] == -1);
  CHECK(labels.data<std::int64_t>()[2] == std::numeric_limits<std::int64_t>::max());
  const Tensor& scale = by_name["scale"];
  REQUIRE(scale.dtype() == DType::Float32);
  REQUIRE(scale.shape() == Shape{});
  CHECK(scale.data<float>()[0] == 0.1f);
  CHECK(by_name["empty"].shape() == Shape{0, 4});
  CHECK(by_name["empty"].dtype() == DType::Float32);
  const Tensor& cube = by_name["cube"];
  CHECK(cube.dtype() == DType::Float64);
  CHECK(cube.shape() == Shape{2, 3, 4});
  CHECK(cube.at({1, 2, 3}) == 23);
  CHECK(by_name["model/fc.weight"].to_vector() == std::vector<double>{0.5, -0.25});
  for (const auto& [name, tensor] : loaded) CHECK_FALSE(tensor.requires_grad());
}

// Tensors of every dtype and the awkward shapes, with bit patterns that a
// lossy path would change: NaN payloads, -0.0, infinities, subnormals.
nn::NamedTensors awkward_tensors() {
  Tensor f32 = empty({2, 4}, DType::Float32);
  const float f32_values[] = {std::bit_cast<float>(0x7FC12345u),        -0.0f,
                              std::numeric_limits<float>::infinity(),   -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
                              std::numeric_limits<float>::lowest(),     0.1f};
  std::memcpy(f32.raw_data(), f32_values, sizeof f32_values);
  Tensor f64 = empty({3}, DType::Float64);
  const double f64_values[] = {std::bit_cast<double>(0xFFF8000000000ABCull), std::numeric_limits<double>::denorm_min(),
                               std::numbers::pi};
  std::memcpy(f64.raw_data(), f64_values, sizeof f64_values);
  Tensor i64 =
      from_indices({std::numeric_limits<std::int64_t>::min(), -1, 0, std::numeric_limits<std::int64_t>::max()}, {2, 2});
  Tensor rank8 = arange(16, DType::Int64).detach();
  Tensor rank8_shaped = empty({1, 2, 1, 2, 1, 2, 1, 2}, DType::Int64);
  std::memcpy(rank8_shaped.raw_data(), rank8.raw_data(), 16 * sizeof(std::int64_t));
  return {{"f32", f32},
          {"f64", f64},
          {"i64", i64},
          {"scalar_f32", scalar(-2.5, DType::Float32)},
          {"scalar_f64", scalar(1e-300, DType::Float64)},
          {"scalar_i64", from_indices({-42}, Shape{})},
          {"empty", zeros({0}, DType::Float32)},
          {"empty_3d", zeros({2, 0, 3}, DType::Float64)},
          {"rank8", rank8_shaped},
          {"model/fc.weight", randn({3, 2})},
          {"\xce\xb8", full({1}, 3.0)}};  // θ: a UTF-8 name
}

// A stand-in for an optimizer with the interface of optim::Optimizer
// (state_dict / load_state_dict, which checks before it writes).
struct FakeOptimizer {
  Tensor step = from_indices({0}, Shape{});
  Tensor velocity = zeros({3, 2});

  nn::NamedTensors state_dict() const {
    return {{"state.0.step", step.clone()}, {"state.0.velocity", velocity.clone()}};
  }
  void load_state_dict(const nn::NamedTensors& state) {
    if (state.size() != 2 || state[0].first != "state.0.step" || state[1].first != "state.0.velocity" ||
        state[1].second.shape() != velocity.shape()) {
      throw std::invalid_argument("FakeOptimizer: expected state.0.step and state.0.velocity [3x2]");
    }
    step = state[0].second.clone();
    velocity = state[1].second.clone();
  }
};

static_assert(io::HasStateDict<FakeOptimizer>);
static_assert(io::HasStateDict<optim::Optimizer>);

// Tiny modules (the library's layers are tested elsewhere).
class Affine : public nn::Module {
 public:
  Affine(std::int64_t out, std::int64_t in) : Module("Affine") {
    weight = register_parameter("weight", randn({out, in}));
    bias = register_parameter("bias", randn({out}));
    steps = register_buffer("steps", from_indices({7}, Shape{}));
  }
  Tensor forward(const Tensor& x) override { return linear(x, weight, bias); }
  Tensor weight, bias, steps;
};

class Net : public nn::Module {
 public:
  explicit Net(std::int64_t hidden = 3) : Module("Net") {
    scale = register_parameter("scale", scalar(0.5));
    fc = register_module("fc", std::make_shared<Affine>(hidden, 2));
  }
  Tensor forward(const Tensor& x) override { return fc->forward(x) * scale; }
  Tensor scale;
  std::shared_ptr<Affine> fc;
};

// Sets the soft limit on file sizes for its lifetime: a write beyond it fails
// with EFBIG (SIGXFSZ is ignored meanwhile), a disk filling up mid-save.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    previous_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, previous_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  void (*previous_handler_)(int);
};

}  // namespace

// ------------------------------------------------------------- the format

TEST_CASE("crc32 gives the standard check value and chains", "[io]") {
  const std::string text = "123456789";
  CHECK(io::zip::crc32(text.data(), text.size()) == 0xCBF43926u);
  const std::uint32_t first = io::zip::crc32(text.data(), 4);
  CHECK(io::zip::crc32(text.data() + 4, text.size() - 4, first) == 0xCBF43926u);
  CHECK(io::zip::crc32(nullptr, 0) == 0u);
}

TEST_CASE("npy headers follow NumPy's layout: dict, padding, 64-byte alignment", "[io]") {
  struct Case {
    DType dtype;
    Shape shape;
    std::string dict;
  };
  const std::vector<Case> cases = {
      {DType::Float32, {2, 3}, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"},
      {DType::Float64, {}, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }"},
      {DType::Int64, {5}, "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }"},
      {DType::Float32,
       {1, 2, 1, 2, 1, 2, 1, 1234567890123},
       "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 1, 2, 1, 2, 1, 1234567890123), }"},
  };
  for (const Case& c : cases) {
    INFO(c.dict);
    const std::string header = io::detail::npy_header(c.dtype, c.shape);
    CHECK(header.size() % 64 == 0);
    CHECK(header.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
    CHECK(static_cast<std::size_t>(static_cast<unsigned char>(header[8]) +
                                   256 * static_cast<unsigned char>(header[9])) == header.size() - 10);
    CHECK(header.substr(10, c.dict.size()) == c.dict);
    CHECK(header.find_first_not_of(' ', 10 + c.dict.size()) == header.size() - 1);
    CHECK(header.back() == '\n');
  }
}

TEST_CASE("save_npz lays out a stored ZIP archive, the same bytes every time", "[io]") {
  TempDir dir;
  const nn::NamedTensors tensors = {{"w", from_vector({1, 2, 3, 4, 5, 6}, {2, 3})}, {"b", zeros({3})}};
  const std::string path = dir.file("plain.npz");
  io::save_npz(path, tensors);
  const std::string bytes = read_file(path);
  CHECK(bytes == io::detail::encode_npz(tensors));
  io::save_npz(path, tensors);
  CHECK(read_file(path) == bytes);  // fixed timestamps: content alone decides
  // Local header of the first member: signature, stored (method 0), name.
  CHECK(bytes.substr(0, 4) == "PK\x03\x04");
  CHECK(bytes[8] == 0);
  CHECK(bytes.substr(30, 5) == "w.npy");
  // Its data: the .npy header, then the floats at a 64-byte boundary of the member.
  const std::string header = io::detail::npy_header(DType::Float32, {2, 3});
  CHECK(bytes.substr(35, header.size()) == header);
  float first = 0;
  std::memcpy(&first, bytes.data() + 35 + header.size(), sizeof first);
  CHECK(first == 1.0f);
  // The end record: 2 entries, no comment.
  CHECK(get32(bytes, end_record(bytes)) == 0x06054b50u);
  CHECK(bytes[end_record(bytes) + 10] == 2);
  CHECK(get32(bytes, central_directory(bytes)) == 0x02014b50u);
  CHECK(dir.entries() == std::vector<std::string>{"plain.npz"});
}

TEST_CASE("save_npz and load_npz round-trip bit-exactly: every dtype, 0-d, empty, rank 8", "[io]") {
  manual_seed(11);
  TempDir dir;
  const nn::NamedTensors tensors = awkward_tensors();
  const std::string path = dir.file("awkward.npz");
  io::save_npz(path, tensors);
  const nn::NamedTensors loaded = io::load_npz(path);
  CHECK(names_of(loaded) == names_of(tensors));
  REQUIRE(loaded.size() == tensors.size());
  for (std::size_t i = 0; i < loaded.size(); ++i) {
    INFO(tensors[i].first);
    CHECK(bit_equal(loaded[i].second, tensors[i].second));
    CHECK_FALSE(loaded[i].second.requires_grad());
  }
  // An archive of nothing is valid too.
  io::save_npz(path, {});
  CHECK(io::load_npz(path).empty());
}

TEST_CASE("load_npz reads what numpy.savez writes (committed fixtures)", "[io]") {
  const std::string data = TAPEGRAD_TEST_DATA_DIR;
  SECTION("written to a file: ZIP64 extra fields in the local headers") {
    check_numpy_arrays(io::load_npz(data + "/numpy_savez.npz"));
  }
  SECTION("written to a stream: zero sizes in local headers, data descriptors") {
    check_numpy_arrays(io::load_npz(data + "/numpy_savez_streamed.npz"));
  }
  SECTION("numpy.savez_compressed: deflated members") {
    const nn::NamedTensors loaded = io::load_npz(data + "/numpy_savez_compressed.npz");
    REQUIRE(loaded.size() == 1);
    CHECK(loaded[0].first == "x");
    CHECK(loaded[0].second.dtype() == DType::Float64);
    CHECK(loaded[0].second.shape() == Shape{3});
    CHECK(loaded[0].second.to_vector() == std::vector<double>{1, 1, 1});
  }
}

TEST_CASE("save_npz compressed: deflated members that round-trip bit-exactly and shrink", "[io]") {
  manual_seed(15);
  TempDir dir;
  const std::string path = dir.file("small.npz");
  const nn::NamedTensors tensors = {{"zeros", zeros({64, 64})},
                                    {"w", randn({3, 5}, DType::Float64)},
                                    {"n", from_indices({7, -1}, {2})},
                                    {"empty", zeros({0})}};
  io::save_npz(path, tensors, {.compressed = true});
  CHECK(bit_equal(io::load_npz(path), tensors));
  const std::string stored = io::detail::encode_npz(tensors);
  const std::string deflated = io::detail::encode_npz(tensors, {.compressed = true});
  CHECK(deflated.size() * 10 < stored.size());  // 16 KiB of zeros dominate
  CHECK(bit_equal(io::detail::decode_npz(deflated, "mem"), tensors));
  // Every central directory entry says method 8, deflate.
  const std::size_t cd = central_directory(deflated);
  CHECK(static_cast<unsigned char>(deflated[cd + 10]) == 8);
}

TEST_CASE("damaged deflated members are refused with clear messages", "[io]") {
  const std::string member = io::detail::npy_header(DType::Float32, {2}) + std::string(8, '\0');
  const std::string zip = io::detail::zip_archive({{"a.npy", member}}, true);
  const std::size_t cd = central_directory(zip);
  auto refuses = [](const std::string& bytes, const std::string& message) {
    INFO(message);
    REQUIRE_THROWS_MESSAGE(io::detail::decode_npz(bytes, kHostile), std::runtime_error, hostile_message(message));
  };
  REQUIRE(io::detail::decode_npz(zip, kHostile).size() == 1);
  const std::uint32_t stored_size = get32(zip, cd + 20);

  std::string bad = zip;
  put32(bad, cd + 24, 0x7FFFFFFF);
  refuses(bad, "member 'a.npy' claims 2147483647 bytes inflated from " + std::to_string(stored_size) +
                   ", more than deflate can give: the file is corrupt");
  bad = zip;
  put32(bad, cd + 20, 3);  // the directory keeps only the first 3 compressed bytes
  refuses(bad, "member 'a.npy' is truncated: its deflate data ends before its " + std::to_string(member.size()) +
                   " bytes do");
  bad = zip;
  bad[central_directory(zip) - 6] ^= 0x55;  // inside the compressed stream
  CHECK_THROWS_AS(io::detail::decode_npz(bad, kHostile), std::runtime_error);

  // Below the .npy layer: a member that inflates to more or fewer bytes than
  // the directory says.
  const std::string text = "the same words, the same words, the same words";
  const std::string plain = io::detail::zip_archive({{"t.bin", text}}, true);
  const std::size_t plain_cd = central_directory(plain);
  const auto read_member = [](const std::string& bytes) {
    const io::zip::MemorySource source(bytes);
    const io::zip::Archive archive(source, "load_npz", kHostile);
    io::zip::MemberReader reader(archive, archive.members().at(0));
    std::string out(static_cast<std::size_t>(reader.remaining()), '\0');
    reader.read(out.size(), out.data());
    reader.finish();
    return out;
  };
  CHECK(read_member(plain) == text);
  bad = plain;
  put32(bad, plain_cd + 24, text.size() - 1);
  REQUIRE_THROWS_MESSAGE(read_member(bad), std::runtime_error,
                         hostile_message("member 't.bin' inflates to more than the " + std::to_string(text.size() - 1) +
                                         " bytes the directory says: the file is corrupt"));
  bad = plain;
  put32(bad, plain_cd + 24, text.size() + 1);
  REQUIRE_THROWS_MESSAGE(
      read_member(bad), std::runtime_error,
      hostile_message("member 't.bin' inflates to " + std::to_string(text.size()) + " bytes, but the directory says " +
                      std::to_string(text.size() + 1) + ": the file is corrupt"));
  bad = plain;
  put32(bad, plain_cd + 16, get32(plain, plain_cd + 16) ^ 1);
  REQUIRE_THROWS_MESSAGE(read_member(bad), std::runtime_error,
                         hostile_message("member 't.bin' fails its CRC-32 check: the file is corrupt"));
}

TEST_CASE("load_npz reads what this machine's numpy.savez writes", "[io][numpy]") {
  SKIP_WITHOUT_NUMPY();
  TempDir dir;
  const std::string seekable = dir.file("numpy.npz");
  const std::string streamed = dir.file("numpy_streamed.npz");
  std::string output;
  INFO("python: " << python_with_numpy());
  REQUIRE(run_python(kNumpyFixtureScript, {seekable, streamed}, output));
  INFO(output);
  check_numpy_arrays(io::load_npz(seekable));
  check_numpy_arrays(io::load_npz(streamed));
}

TEST_CASE("numpy.load reads what save_npz writes: names, shapes, dtypes, bits", "[io][numpy]") {
  SKIP_WITHOUT_NUMPY();
  manual_seed(12);
  TempDir dir;
  const bool compressed = GENERATE(false, true);
  const std::string path = dir.file("awkward.npz");
  io::save_npz(path, awkward_tensors(), {.compressed = compressed});
  const std::string script = R"PY(import sys, zipfile
import numpy as np

path = sys.argv[1]
method = zipfile.ZIP_DEFLATED if sys.argv[2] == "deflated" else zipfile.ZIP_STORED
with zipfile.ZipFile(path) as archive:
    assert archive.testzip() is None  # every member's CRC-32 checked by Python
    assert all(info.compress_type == method for info in archive.infolist())
with np.load(path) as f:
    expected = {
        "f32": ((2, 4), np.float32),
        "f64": ((3,), np.float64),
        "i64": ((2, 2), np.int64),
        "scalar_f32": ((), np.float32),
        "scalar_f64": ((), np.float64),
        "scalar_i64": ((), np.int64),
        "empty": ((0,), np.float32),
        "empty_3d": ((2, 0, 3), np.float64),
        "rank8": ((1, 2, 1, 2, 1, 2, 1, 2), np.int64),
        "model/fc.weight": ((3, 2), np.float32),
        "\u03b8": ((1,), np.float32),
    }
    assert f.files == list(expected), f.files
    for key, (shape, dtype) in expected.items():
        a = f[key]
        assert a.shape == shape and a.dtype == dtype, (key, a.shape, a.dtype)
    f32 = f["f32"].ravel()
    assert f32.view(np.uint32)[0] == 0x7FC12345  # the NaN payload survived
    assert f32.view(np.uint32)[1] == 0x80000000  # -0.0
    assert np.isposinf(f32[2]) and np.isneginf(f32[3])
    assert f32[4] == np.finfo(np.float32).smallest_subnormal and f32[7] == np.float32(0.1)
    assert f["f64"].view(np.uint64)[0] == 0xFFF8000000000ABC and f["f64"][2] == np.pi
    assert f["i64"].tolist() == [[-2**63, -1], [0, 2**63 - 1]]
    assert f["scalar_f32"] == -2.5 and f["scalar_f64"] == 1e-300 and f["scalar_i64"] == -42
    assert f["rank8"].ravel().tolist() == list(range(16))
    assert f["\u03b8"][0] == 3
print("ok")
)PY";
  std::string output;
  INFO("python: " << python_with_numpy());
  const bool passed = run_python(script, {path, compressed ? "deflated" : "stored"}, output);
  INFO(output);
  CHECK(passed);
}

// ------------------------------------------------------------ atomic saves

TEST_CASE("a failed save leaves no temporary file and keeps the previous file", "[io]") {
  TempDir dir;
  const nn::NamedTensors good = {{"w", from_vector({1, 2, 3}, {3})}};

  SECTION("the directory does not exist") {
    const std::string path = dir.file("missing/model.npz");
    REQUIRE_THROWS_MESSAGE(
        io::save_npz(path, good), std::runtime_error,
        "save_npz: '" + path + "': cannot create a temporary file in its directory: No such file or directory");
    CHECK(dir.entries().empty());
  }
  SECTION("the target is a directory: the final rename fails") {
    const std::string path = dir.file("taken");
    fs::create_directory(path);
    REQUIRE_THROWS_MESSAGE(io::save_npz(path, good), std::runtime_error,
                           "save_npz: '" + path + "': cannot replace it with the new file: Is a directory");
    CHECK(dir.entries() == std::vector<std::string>{"taken"});
  }
  SECTION("the disk fills up mid-write: the old checkpoint survives") {
    const std::string path = dir.file("model.npz");
    io::save_npz(path, good);
    const std::string before = read_file(path);
    const nn::NamedTensors big = {{"small", zeros({4})}, {"big", zeros({1 << 18})}};  // 1 MiB
    {
      const FileSizeLimit limit(64 * 1024);
      REQUIRE_THROWS_MESSAGE(io::save_npz(path, big), std::runtime_error,
                             "save_npz: '" + path + "': write failed: File too large");
    }
    CHECK(read_file(path) == before);
    CHECK(dir.entries() == std::vector<std::string>{"model.npz"});
    CHECK(bit_equal(io::load_npz(path), good));
  }
  SECTION("bad names and undefined tensors are refused before the disk is touched") {
    const std::string path = dir.file("model.npz");
    REQUIRE_THROWS_MESSAGE(io::save_npz(path, {{"w", zeros({2})}, {"", zeros({2})}}), std::invalid_argument,
                           "save_npz: '" + path + "': tensor 1 has an empty name");
    REQUIRE_THROWS_MESSAGE(io::save_npz(path, {{"w", zeros({2})}, {"w", zeros({3})}}), std::invalid_argument,
                           "save_npz: '" + path + "': name 'w' appears twice");
    REQUIRE_THROWS_MESSAGE(io::save_npz(path, {{"g", Tensor()}}), std::invalid_argument,
                           "save_npz: '" + path + "': tensor 'g' is undefined");
    REQUIRE_THROWS_MESSAGE(io::save_npz(path, {{std::string("a\0b", 3), zeros({1})}}), std::invalid_argument,
                           "save_npz: '" + path + "': name 'a\\x00b' contains a NUL byte");
    CHECK(dir.entries().empty());
  }
}

// A file named as save_npz names its temporaries, written `age` ago.
void fake_temporary(const std::string& path, const std::string& contents, std::chrono::seconds age) {
  std::ofstream(path, std::ios::binary) << contents;
  fs::last_write_time(path, fs::file_time_type::clock::now() - age);
}

TEST_CASE("a save removes the temporaries that saves killed mid-write left, and only those", "[io]") {
  using namespace std::chrono_literals;
  TempDir dir;
  const std::string path = dir.file("model.npz");
  const nn::NamedTensors good = {{"w", from_vector({1, 2, 3}, {3})}};
  io::save_npz(path, good);

  // A pid that is surely gone: a child that has exited and been reaped.
  const pid_t dead = ::fork();
  REQUIRE(dead >= 0);
  if (dead == 0) ::_exit(0);
  REQUIRE(::waitpid(dead, nullptr, 0) == dead);
  // A pid that is surely alive while the test runs: a child waiting for a signal.
  const pid_t live = ::fork();
  REQUIRE(live >= 0);
  if (live == 0) {
    ::pause();
    ::_exit(0);
  }
  const std::string d = std::to_string(dead), l = std::to_string(live), self = std::to_string(::getpid());
  const std::string prefix = "model.npz.tmp-";

  fake_temporary(dir.file(prefix + d + "-0"), "half a checkpoint", 10min);          // writer gone: removed
  fake_temporary(dir.file(prefix + d + "-7"), "being written?", 1min);              // gone, but written recently: kept
  fake_temporary(dir.file(prefix + l + "-0"), "another process writing", 10min);    // writer alive: kept
  fake_temporary(dir.file(prefix + self + "-999"), "this process writing", 10min);  // this process: kept
  fake_temporary(dir.file(prefix + l + "-1"), "abandoned for a day", 25h);          // too old, any pid: removed
  fake_temporary(dir.file("other.npz.tmp-" + d + "-0"), "another target", 10min);   // not this path's: kept
  fake_temporary(dir.file(prefix + d + "-0.bak"), "not the pattern", 10min);
  fake_temporary(dir.file(prefix + "x-0"), "not the pattern", 10min);
  fake_temporary(dir.file(prefix + d), "not the pattern", 10min);
  fs::create_directory(dir.file(prefix + d + "-3"));  // a directory of that name is not ours
  fs::last_write_time(dir.file(prefix + d + "-3"), fs::file_time_type::clock::now() - 10min);

  io::save_npz(path, good);
  ::kill(live, SIGKILL);
  ::waitpid(live, nullptr, 0);

  std::vector<std::string> expected = {"model.npz",
                                       prefix + d,
                                       prefix + d + "-0.bak",
                                       prefix + d + "-3",
                                       prefix + d + "-7",
                                       prefix + l + "-0",
                                       prefix + self + "-999",
                                       prefix + "x-0",
                                       "other.npz.tmp-" + d + "-0"};
  std::sort(expected.begin(), expected.end());
  CHECK(dir.entries() == expected);
  CHECK(bit_equal(io::load_npz(path), good));

  // save_checkpoint saves through save_npz: the same clean-up.
  const std::string checkpoint = dir.file("ckpt.npz");
  fake_temporary(dir.file("ckpt.npz.tmp-" + d + "-4"), "killed", 10min);
  Net model;
  io::save_checkpoint(checkpoint, model);
  CHECK(!fs::exists(dir.file("ckpt.npz.tmp-" + d + "-4")));
  CHECK(fs::exists(checkpoint));
}

TEST_CASE("an archive that would need ZIP64 is refused before writing", "[io]") {
  nn::NamedTensors many;
  const Tensor nothing = zeros({0});
  for (int i = 0; i < 65535; ++i) many.emplace_back(std::string("t").append(std::to_string(i)), nothing);
  REQUIRE_THROWS_MESSAGE(io::detail::encode_npz(many), std::invalid_argument,
                         "save_npz: '<memory>': an archive of 65535 or more members needs ZIP64, which tapegrad does "
                         "not write");
  many.pop_back();
  CHECK(io::detail::decode_npz(io::detail::encode_npz(many), "many.npz").size() == 65534);
}

// ------------------------------------------------- damaged and hostile files

TEST_CASE("truncated files throw a clear error at every length", "[io]") {
  manual_seed(13);
  TempDir dir;
  const std::string path = dir.file("cut.npz");
  const nn::NamedTensors tensors = {{"w", randn({3, 4})}, {"n", from_indices({1, 2}, {2})}};
  const std::string bytes = io::detail::encode_npz(tensors);
  write_bytes(path, "");
  REQUIRE_THROWS_MESSAGE(io::load_npz(path), std::runtime_error, "load_npz: '" + path + "': the file is empty");
  write_bytes(path, bytes.substr(0, bytes.size() / 2));
  REQUIRE_THROWS_MESSAGE(
      io::load_npz(path), std::runtime_error,
      "load_npz: '" + path + "': no ZIP end-of-central-directory record: the file is truncated or not a .npz archive");
  write_bytes(path, bytes.substr(0, 3));
  REQUIRE_THROWS_MESSAGE(io::load_npz(path), std::runtime_error,
                         "load_npz: '" + path + "': not a .npz file: it does not start with a ZIP signature");
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    INFO("truncated to " << size << " of " << bytes.size() << " bytes");
    CHECK_THROWS_AS(io::detail::decode_npz(std::string_view(bytes).substr(0, size), "cut.npz"), std::runtime_error);
  }
  write_bytes(path, bytes);
  CHECK(bit_equal(io::load_npz(path), tensors));
}

TEST_CASE("corrupt files and non-archives throw errors naming the file and the member", "[io]") {
  TempDir dir;
  const std::string path = dir.file("damaged.npz");
  const nn::NamedTensors tensors = {{"b", zeros({2})}, {"w", from_vector({1, 2, 3, 4, 5, 6}, {2, 3})}};
  const std::string bytes = io::detail::encode_npz(tensors);
  const std::string crc_message =
      "load_npz: '" + path + "': member 'w.npy' fails its CRC-32 check: the file is corrupt";

  SECTION("a flipped bit in the data") {
    std::string damaged = bytes;
    damaged[central_directory(bytes) - 1] ^= 0x10;  // the last byte of w's data
    write_bytes(path, damaged);
    REQUIRE_THROWS_MESSAGE(io::load_npz(path), std::runtime_error, crc_message);
  }
  SECTION("a changed byte in a .npy header is reported as corruption, not as a bad header") {
    std::string damaged = bytes;
    const std::size_t w_header = bytes.find("w.npy") + 5;
    const std::size_t descr = bytes.find("<f4", w_header);
    damaged[descr + 1] = 'u';  // '<u4': an unsupported dtype, were the checksum not checked first
    write_bytes(path, damaged);
    REQUIRE_THROWS_MESSAGE(io::load_npz(path), std::runtime_error, crc_message);
  }
  SECTION("not an archive at all") {
    write_bytes(path, "name,value\nw,1\n");
    REQUIRE_THROWS_MESSAGE(io::load_npz(path), std::runtime_error,
                           "load_npz: '" + path + "': not a .npz file: it does not start with a ZIP signature");
  }
  SECTION("a .npy file") {
    write_bytes(path, io::detail::npy_header(DType::Float32, {2}) + std::string(8, '\0'));
    REQUIRE_THROWS_MESSAGE(io::load_npz(path), std::runtime_error,
                           "load_npz: '" + path + "': this is a .npy file (one array), not a .npz archive");
  }
  SECTION("a missing file, a directory") {
    REQUIRE_THROWS_MESSAGE(io::load_npz(dir.file("nothing.npz")), std::runtime_error,
                           "load_npz: '" + dir.file("nothing.npz") + "': cannot open it: No such file or directory");
    fs::create_directory(dir.file("folder.npz"));
    REQUIRE_THROWS_MESSAGE(io::load_npz(dir.file("folder.npz")), std::runtime_error,
                           "load_npz: '" + dir.file("folder.npz") + "': not a regular file");
  }
  SECTION("a damaged central directory") {
    std::string damaged = bytes;
    damaged[central_directory(bytes)] = 'X';
    write_bytes(path, damaged);
    REQUIRE_THROWS_MESSAGE(io::load_npz(path), std::runtime_error,
                           "load_npz: '" + path + "': central directory entry 0 is damaged: the file is corrupt");
  }
}

TEST_CASE("hostile ZIP structures are refused with clear messages", "[io]") {
  const std::string member = io::detail::npy_header(DType::Float32, {2}) + std::string(8, '\0');
  const std::string zip = one_member(member);
  const std::size_t cd = central_directory(zip);
  auto refuses = [](const std::string& bytes, const std::string& message) {
    INFO(message);
    REQUIRE_THROWS_MESSAGE(io::detail::decode_npz(bytes, kHostile), std::runtime_error, hostile_message(message));
  };
  REQUIRE(io::detail::decode_npz(zip, kHostile).size() == 1);

  std::string bad = zip;
  put16(bad, cd + 10, 12);
  refuses(bad, "member 'a.npy' uses ZIP compression method 12; tapegrad reads only stored and deflated members");
  bad = zip;
  put16(bad, cd + 8, 1);
  refuses(bad, "member 'a.npy' is encrypted, which tapegrad does not read");
  bad = zip;
  put32(bad, cd + 20, 0xFFFFFFFF);
  refuses(bad, "ZIP64 archives (4 GiB or more, or 65535 or more members) are not supported");
  bad = zip;
  put16(bad, end_record(zip) + 8, 0xFFFF);
  put16(bad, end_record(zip) + 10, 0xFFFF);
  refuses(bad, "ZIP64 archives (4 GiB or more, or 65535 or more members) are not supported");
  bad = zip;
  put16(bad, end_record(zip) + 4, 1);
  refuses(bad, "multi-part (split) ZIP archives are not supported");
  bad = zip;
  put32(bad, cd + 24, 9);
  refuses(bad, "member 'a.npy' records a stored size of " + std::to_string(member.size()) +
                   " bytes but an uncompressed size of 9: the file is corrupt");
  bad = zip;
  put32(bad, cd + 20, member.size() + 1000);
  put32(bad, cd + 24, member.size() + 1000);
  refuses(bad, "member 'a.npy' runs past the end of the archive's data: the file is truncated or corrupt");
  bad = zip;
  put32(bad, cd + 42, 1000000);
  refuses(bad, "member 'a.npy' has its local header outside the archive's data (offset 1000000): the file is corrupt");
  bad = zip;
  bad[0] = 'Q';
  refuses(bad, "not a .npz file: it does not start with a ZIP signature");
  bad = zip;
  bad[30] = 'b';  // the name in the local header
  refuses(bad, "member 'a.npy' is named 'b.npy' in its local header: the file is corrupt");
  bad = zip;
  put32(bad, end_record(zip) + 16, cd - 1);
  refuses(bad, "the central directory (51 bytes at offset " + std::to_string(cd - 1) +
                   ") does not end where the end record starts (offset " + std::to_string(end_record(zip)) +
                   "): the file is truncated or corrupt");
  bad = zip;
  put16(bad, end_record(zip) + 8, 2);
  put16(bad, end_record(zip) + 10, 2);
  refuses(bad, "central directory entry 1 is damaged: the file is corrupt");
  bad = zip;
  put16(bad, end_record(zip) + 8, 0);
  put16(bad, end_record(zip) + 10, 0);
  refuses(bad, "the central directory holds 51 bytes beyond its 0 entries: the file is corrupt");
  // A name with control bytes is shown escaped.
  refuses(io::detail::zip_archive({{"evil\n\x01", "x"}}),
          "member 'evil\\x0a\\x01' is not a .npy array (its name does not end in .npy)");
  refuses(io::detail::zip_archive({{"a.npy", member}, {"a.npy", member}}), "member 'a.npy' appears twice");
  // Members sharing bytes would let a small file make us allocate much more
  // than its size: a.npy here claims b.npy's local header and data as its own.
  bad = io::detail::zip_archive({{"a.npy", member}, {"b.npy", member}});
  const std::size_t claimed = member.size() + 35 + member.size();
  put32(bad, central_directory(bad) + 20, claimed);
  put32(bad, central_directory(bad) + 24, claimed);
  refuses(bad, "members 'a.npy' and 'b.npy' overlap: the file is corrupt");

  // An archive comment is allowed: the end record is found behind it.
  std::string commented = zip + "saved by hand";
  put16(commented, end_record(zip) + 20, 13);
  CHECK(io::detail::decode_npz(commented, kHostile).size() == 1);
  CHECK(io::detail::decode_npz(io::detail::zip_archive({}), kHostile).empty());
}

TEST_CASE("hostile .npy headers are refused with clear messages", "[io]") {
  auto refuses = [](const std::string& npy, const std::string& message) {
    INFO(message);
    REQUIRE_THROWS_MESSAGE(io::detail::decode_npz(one_member(npy), kHostile), std::runtime_error,
                           hostile_message("member 'a.npy' " + message));
  };
  const std::string eight(8, '\0');
  const std::string f4_2 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  REQUIRE(io::detail::decode_npz(one_member(npy_member(f4_2, eight)), kHostile).size() == 1);
  // Versions 2.0 and 3.0 differ only in a 4-byte header length.
  CHECK(io::detail::decode_npz(one_member(npy_member(f4_2, eight, 2)), kHostile).size() == 1);
  CHECK(io::detail::decode_npz(one_member(npy_member(f4_2, eight, 3)), kHostile).size() == 1);
  // Any spacing, either quote, any key order.
  CHECK(io::detail::decode_npz(one_member(npy_member("{\"shape\":(2 ,),'fortran_order':False,\"descr\":'<f4'}", eight)),
                               kHostile)[0]
            .second.shape() == Shape{2});

  refuses("tiny", "is too short for a .npy array (4 bytes)");
  refuses("this is not a .npy array", "is not a .npy array (bad magic)");
  std::string version = npy_member(f4_2, eight);
  version[6] = 9;
  refuses(version, "has .npy format version 9.0, which tapegrad does not read (it reads 1.0, 2.0 and 3.0)");
  std::string long_header = npy_member(f4_2, eight);
  long_header[8] = static_cast<char>(0xE8);  // 1000
  long_header[9] = 0x03;
  refuses(long_header,
          "has a .npy header of 1000 bytes but only " + std::to_string(long_header.size() - 10) + " bytes follow");
  refuses(npy_member("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", eight),
          "has dtype '<i4', which tapegrad does not read (it reads '<f4' float32, '<f8' float64 and '<i8' int64)");
  refuses(npy_member("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", eight),
          "has dtype '>f4', which tapegrad does not read (it reads '<f4' float32, '<f8' float64 and '<i8' int64)");
  refuses(npy_member("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }", eight),
          "is stored in Fortran (column-major) order, which tapegrad does not read: save numpy.ascontiguousarray(a) "
          "instead");
  refuses(npy_member("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 2), }", eight),
          "has 9 dimensions, more than tapegrad's maximum of 8");
  refuses(npy_member("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", ""),
          "has shape [4611686018427387904x4], too large to hold");
  refuses(npy_member("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, 4), }", ""),
          "has shape [0x4611686018427387904x4], too large to hold");
  refuses(npy_member("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", std::string(20, '\0')),
          "holds 20 bytes of data, but float32 [2x3] needs 24");
  refuses(npy_member("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", eight),
          "has a malformed .npy header: an extent in 'shape' is too large");

  const std::vector<std::pair<std::string, std::string>> malformed = {
      {"{'descr': '<f4', 'shape': (2,), }", "missing key 'fortran_order'"},
      {"{'fortran_order': False, 'shape': (2,), }", "missing key 'descr'"},
      {"{'descr': '<f4', 'fortran_order': False, }", "missing key 'shape'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1, }", "unexpected key 'extra'"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", "key 'descr' appears twice"},
      {"{'descr' '<f4'}", "expected ':' at character 9"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", "'shape' is not a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", "expected a non-negative integer at character 51"},
      {"{'descr': '<f4', 'fortran_order': false, 'shape': (2,), }", "expected True or False at character 34"},
      {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
       "'descr' is not a string (structured dtypes are not supported)"},
      {"{'descr': '<f4, 'fortran_order': False, 'shape': (2,), }", "expected ',' or '}' at character 17"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,) ", "expected ',' or '}' at the end of the header"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x",
       "unexpected characters after the dictionary at character 58"},
      {"{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2,), }",
       "escape sequences in strings are not supported"},
      {"['descr', '<f4']", "expected '{' at character 0"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,, 3), }",
       "expected a non-negative integer at character 53"},
  };
  for (const auto& [dict, problem] : malformed)
    refuses(npy_member(dict, eight), "has a malformed .npy header: " + problem);
  std::string rank_bomb = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (int i = 0; i < 1000; ++i) rank_bomb += "1, ";
  refuses(npy_member(rank_bomb + "), }", eight), "has a malformed .npy header: 'shape' has more than 64 dimensions");
}

TEST_CASE("fuzzing: random byte flips and truncations throw, never crash", "[io][fuzz]") {
  manual_seed(14);
  std::mt19937_64 rng(20240611);
  const nn::NamedTensors tensors = {{"w", randn({4, 3})},
                                    {"b", from_vector({1, 2}, {2}, DType::Float64)},
                                    {"n", from_indices({5}, Shape{})},
                                    {"e", zeros({0, 2})}};
  const bool compressed = GENERATE(false, true);
  INFO((compressed ? "deflated" : "stored") << " members");
  const std::string bytes = io::detail::encode_npz(tensors, {.compressed = compressed});

  SECTION("damaged archives") {
    int refused = 0;
    for (int trial = 0; trial < 6000; ++trial) {
      std::string damaged = bytes;
      const int mode = trial % 3;  // flips, a truncation, or both
      if (mode != 1) {
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) damaged[rng() % damaged.size()] ^= static_cast<char>(1 + rng() % 255);
      }
      if (mode != 0) damaged.resize(rng() % damaged.size());
      try {
        const nn::NamedTensors loaded = io::detail::decode_npz(damaged, "fuzz.npz");
        // Only bytes the reader ignores were hit (timestamps, attributes,
        // local-header copies of sizes): the content must be intact.
        INFO("trial " << trial);
        REQUIRE(bit_equal(loaded, tensors));
      } catch (const std::runtime_error&) {
        ++refused;
      }
    }
    CHECK(refused > 5000);
  }
  SECTION("damaged .npy headers behind a valid checksum") {
    const std::string member = io::detail::npy_header(DType::Float32, {4, 3}) + std::string(48, '\0');
    const std::string alphabet = "{}()[]',:\" 0123456789TrueFalse<>fi8\n\\";
    for (int trial = 0; trial < 6000; ++trial) {
      std::string damaged = member;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        const std::size_t at = rng() % 64;  // preamble and header
        if (rng() % 2) {
          damaged[at] ^= static_cast<char>(1 + rng() % 255);
        } else {
          damaged[at] = alphabet[rng() % alphabet.size()];
        }
      }
      if (trial % 5 == 0) damaged.resize(rng() % (damaged.size() + 1));
      try {
        const nn::NamedTensors loaded = io::detail::decode_npz(one_member(damaged), "fuzz.npz");
        REQUIRE(loaded.size() == 1);
        const Tensor& t = loaded[0].second;
        CHECK(static_cast<std::size_t>(t.numel()) * dtype_size(t.dtype()) <= damaged.size());
      } catch (const std::runtime_error&) {
      }
    }
  }
}

// -------------------------------------------------------------- checkpoints

TEST_CASE("fuzz inputs: every .npz and checkpoint seed and kept crash is read or refused cleanly", "[io][fuzz]") {
  // scripts/fuzz adds each input that crashed a reader to fuzz/regressions/;
  // here they are replayed through the public API, with the seeds.
  const std::vector<std::string> npz = fuzz_inputs("npz");
  REQUIRE(npz.size() >= 6);
  for (const std::string& path : npz) {
    INFO(path);
    bool from_file = false, from_memory = false;
    try {
      io::load_npz(path);
      from_file = true;
    } catch (const std::runtime_error&) {
    }
    try {
      io::detail::decode_npz(read_file(path), path);
      from_memory = true;
    } catch (const std::runtime_error&) {
    }
    CHECK(from_file == from_memory);
  }
  const std::vector<std::string> checkpoints = fuzz_inputs("checkpoint");
  REQUIRE(checkpoints.size() >= 3);
  int loaded_with_optimizer = 0, loaded_model = 0;
  for (const std::string& path : checkpoints) {
    INFO(path);
    // The model of fuzz/fuzz_checkpoint.cpp; a refused load leaves it as it was.
    nn::Linear model(3, 2);
    optim::Adam optimizer(model.parameters(), {.lr = 1e-2});
    const nn::NamedTensors state = model.state_dict();  // shares the model's storage
    std::vector<std::vector<double>> before;
    for (const auto& [name, tensor] : state) before.push_back(tensor.to_vector());
    auto unchanged = [&] {
      for (std::size_t i = 0; i < state.size(); ++i) {
        if (state[i].second.to_vector() != before[i]) return false;
      }
      return true;
    };
    try {
      io::load_checkpoint(path, model, optimizer);
      ++loaded_with_optimizer;
    } catch (const std::runtime_error&) {
      CHECK(unchanged());
    } catch (const std::invalid_argument&) {
      CHECK(unchanged());
    }
    nn::Linear fresh(3, 2);
    try {
      io::load_checkpoint(path, fresh);
      ++loaded_model;
    } catch (const std::runtime_error&) {
    } catch (const std::invalid_argument&) {
    }
  }
  CHECK(loaded_with_optimizer >= 1);  // model_and_adam.npz
  CHECK(loaded_model >= 2);           // and model_only.npz
}

TEST_CASE("a checkpoint round-trips a model and an optimizer's state bit-exactly", "[io][checkpoint]") {
  manual_seed(15);
  TempDir dir;
  const std::string path = dir.file("checkpoint.npz");
  Net saved;
  FakeOptimizer optimizer;
  optimizer.step = from_indices({3}, Shape{});
  optimizer.velocity = randn({3, 2});
  io::save_checkpoint(path, saved, optimizer);

  // The names in the file.
  CHECK(names_of(io::load_npz(path)) ==
        std::vector<std::string>{"tapegrad/checkpoint_version", "model/scale", "model/fc.weight", "model/fc.bias",
                                 "model/fc.steps", "optimizer/state.0.step", "optimizer/state.0.velocity"});

  SECTION("into a model and an optimizer object") {
    Net restored;                               // other random values
    const Tensor weight = restored.fc->weight;  // a handle held elsewhere, say by an optimizer
    restored.fc->steps.data<std::int64_t>()[0] = 0;
    FakeOptimizer restored_optimizer;
    io::load_checkpoint(path, restored, restored_optimizer);
    CHECK(bit_equal(restored.state_dict(), saved.state_dict()));
    CHECK(bit_equal(weight, saved.fc->weight));
    CHECK(bit_equal(restored_optimizer.velocity, optimizer.velocity));
    CHECK(restored_optimizer.step.item() == 3);
  }
  SECTION("returning the optimizer's entries") {
    Net restored;
    const nn::NamedTensors optimizer_state = io::load_checkpoint(path, restored);
    CHECK(bit_equal(restored.state_dict(), saved.state_dict()));
    CHECK(bit_equal(optimizer_state, optimizer.state_dict()));
  }
  SECTION("without an optimizer") {
    io::save_checkpoint(path, saved);
    CHECK(io::load_npz(path).size() == 5);
    Net restored;
    CHECK(io::load_checkpoint(path, restored).empty());
    CHECK(bit_equal(restored.state_dict(), saved.state_dict()));
  }
}

TEST_CASE("numpy.load reads a checkpoint: names, shapes, dtypes, values", "[io][checkpoint][numpy]") {
  SKIP_WITHOUT_NUMPY();
  TempDir dir;
  const std::string path = dir.file("checkpoint.npz");
  Net model;
  for (int i = 0; i < 6; ++i) model.fc->weight.data<float>()[i] = static_cast<float>(i) / 8;
  model.fc->bias.data<float>()[0] = -1;
  model.fc->bias.data<float>()[1] = 0;
  model.fc->bias.data<float>()[2] = 0.1f;
  FakeOptimizer optimizer;
  optimizer.step = from_indices({3}, Shape{});
  io::save_checkpoint(path, model, optimizer);
  const std::string script = R"PY(import sys
import numpy as np

with np.load(sys.argv[1]) as f:
    expected = {
        "tapegrad/checkpoint_version": ((), np.int64),
        "model/scale": ((), np.float32),
        "model/fc.weight": ((3, 2), np.float32),
        "model/fc.bias": ((3,), np.float32),
        "model/fc.steps": ((), np.int64),
        "optimizer/state.0.step": ((), np.int64),
        "optimizer/state.0.velocity": ((3, 2), np.float32),
    }
    assert f.files == list(expected), f.files
    for key, (shape, dtype) in expected.items():
        assert f[key].shape == shape and f[key].dtype == dtype, (key, f[key].shape, f[key].dtype)
    assert f["tapegrad/checkpoint_version"] == 1
    assert np.array_equal(f["model/fc.weight"], np.arange(6, dtype=np.float32).reshape(3, 2) / 8)
    assert np.array_equal(f["model/fc.bias"], np.array([-1, 0, 0.1], dtype=np.float32))
    assert f["model/scale"] == 0.5 and f["model/fc.steps"] == 7 and f["optimizer/state.0.step"] == 3
    assert not f["optimizer/state.0.velocity"].any()
print("ok")
)PY";
  std::string output;
  INFO("python: " << python_with_numpy());
  const bool passed = run_python(script, {path}, output);
  INFO(output);
  CHECK(passed);
}

TEST_CASE("a bad checkpoint throws a clear error and leaves the model unchanged", "[io][checkpoint]") {
  manual_seed(16);
  TempDir dir;
  const std::string path = dir.file("checkpoint.npz");
  const std::string where = "load_checkpoint: '" + path + "': ";
  Net model;
  model.fc->steps.data<std::int64_t>()[0] = 99;
  const nn::NamedTensors before = snapshot(model);
  const nn::NamedTensors version = {{"tapegrad/checkpoint_version", from_indices({1}, Shape{})}};

  SECTION("wrong names") {
    class Other : public nn::Module {
     public:
      Other() : Module("Other") {
        register_parameter("scale", scalar(1.0));
        register_module("head", std::make_shared<Affine>(3, 2));
      }
      Tensor forward(const Tensor& x) override { return x; }
    } other;
    io::save_checkpoint(path, other);
    REQUIRE_THROWS_MESSAGE(io::load_checkpoint(path, model), std::invalid_argument,
                           where + "load_state_dict: missing 'fc.weight' [3x2]");
  }
  SECTION("an extra name") {
    nn::NamedTensors entries = version;
    for (const auto& [name, tensor] : Net().state_dict()) entries.emplace_back("model/" + name, tensor);
    entries.emplace_back("model/fc.extra", zeros({1}));
    io::save_npz(path, entries);
    REQUIRE_THROWS_MESSAGE(io::load_checkpoint(path, model), std::invalid_argument,
                           where + "load_state_dict: unexpected 'fc.extra'");
  }
  SECTION("wrong shapes") {
    io::save_checkpoint(path, Net(4));
    REQUIRE_THROWS_MESSAGE(io::load_checkpoint(path, model), std::invalid_argument,
                           where + "load_state_dict: 'fc.weight' is float32 [4x2], the module expects float32 [3x2]");
  }
  SECTION("wrong dtypes") {
    Net wide;
    wide.to(DType::Float64);
    io::save_checkpoint(path, wide);
    REQUIRE_THROWS_MESSAGE(io::load_checkpoint(path, model), std::invalid_argument,
                           where + "load_state_dict: 'scale' is float64 [], the module expects float32 []");
  }
  SECTION("a corrupt file") {
    io::save_checkpoint(path, Net());
    std::string bytes = read_file(path);
    bytes[central_directory(bytes) - 1] ^= 1;  // the last byte of the last member, model/fc.steps
    write_bytes(path, bytes);
    REQUIRE_THROWS_MESSAGE(io::load_checkpoint(path, model), std::runtime_error,
                           "load_npz: '" + path +
                               "': member 'model/fc.steps.npy' fails its CRC-32 check: the file is "
                               "corrupt");
  }
  SECTION("a truncated file") {
    io::save_checkpoint(path, Net());
    const std::string bytes = read_file(path);
    write_bytes(path, bytes.substr(0, bytes.size() - 1));
    REQUIRE_THROWS_MESSAGE(
        io::load_checkpoint(path, model), std::runtime_error,
        "load_npz: '" + path +
            "': no ZIP end-of-central-directory record: the file is truncated or not a .npz archive");
  }
  SECTION("a plain .npz, not a checkpoint") {
    io::save_npz(path, Net().state_dict());
    REQUIRE_THROWS_MESSAGE(io::load_checkpoint(path, model), std::runtime_error,
                           where +
                               "not a tapegrad checkpoint (it has no 'tapegrad/checkpoint_version' entry); a plain "
                               ".npz of tensors loads with load_npz");
  }
  SECTION("a newer checkpoint version") {
    io::save_npz(path, {{"tapegrad/checkpoint_version", from_indices({2}, Shape{})}});
    REQUIRE_THROWS_MESSAGE(io::load_checkpoint(path, model), std::runtime_error,
                           where + "checkpoint version 2 is not supported (this tapegrad reads version 1)");
    io::save_npz(path, {{"tapegrad/checkpoint_version", zeros({1})}});
    REQUIRE_THROWS_MESSAGE(io::load_checkpoint(path, model), std::runtime_error,
                           where + "'tapegrad/checkpoint_version' is float32 [1], expected an int64 scalar");
  }
  SECTION("an entry outside model/ and optimizer/") {
    nn::NamedTensors entries = version;
    entries.emplace_back("notes", zeros({1}));
    io::save_npz(path, entries);
    REQUIRE_THROWS_MESSAGE(io::load_checkpoint(path, model), std::runtime_error,
                           where +
                               "unexpected entry 'notes' (a checkpoint holds 'tapegrad/checkpoint_version', "
                               "'model/<name>' and 'optimizer/<name>')");
  }
  SECTION("the optimizer refuses its part: the model, already loaded, is restored") {
    io::save_checkpoint(path, Net(), nn::NamedTensors{{"state.0.step", from_indices({1}, Shape{})}});
    FakeOptimizer optimizer;
    REQUIRE_THROWS_MESSAGE(io::load_checkpoint(path, model, optimizer), std::invalid_argument,
                           where + "optimizer state: FakeOptimizer: expected state.0.step and state.0.velocity [3x2]");
    CHECK(optimizer.step.item() == 0);
  }
  CHECK(bit_equal(model.state_dict(), before));
}
