#pragma once
// Shared test helpers: float64 inputs, gradcheck and gradgradcheck assertions that print
// the checker's verdict on failure, and a scratch directory with small file
// and text helpers for the tests that write files.
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tapegrad/tapegrad.hpp>
#include <vector>

namespace tapegrad::testing {

// A float64 leaf with values uniform in [low, high), requiring grad.
inline Tensor random_input(const Shape& shape, double low = -2.0, double high = 2.0) {
  Tensor t = rand(shape, DType::Float64, low, high);
  t.requires_grad_();
  return t;
}

// A float64 leaf from literal values, requiring grad.
inline Tensor leaf(std::initializer_list<NestedList> values) {
  Tensor t(values, DType::Float64);
  t.requires_grad_();
  return t;
}

inline void require_gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                              GradcheckOptions options = {}) {
  const GradcheckResult result = gradcheck(f, inputs, options);
  INFO(result.message);
  REQUIRE(result.passed);
}

// The same for second derivatives (gradgradcheck).
inline void require_gradgradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                                  GradcheckOptions options = {}) {
  const GradcheckResult result = gradgradcheck(f, inputs, options);
  INFO(result.message);
  REQUIRE(result.passed);
}

// Asserts equal shapes and |got - want| <= tolerance · max(1, |want|)
// element by element: absolute up to 1, relative beyond.
inline void check_close(const Tensor& got, const Tensor& want, double tolerance = 1e-12) {
  REQUIRE(got.shape() == want.shape());
  const std::vector<double> a = got.to_vector(), b = want.to_vector();
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("element " << i << ": got " << a[i] << ", want " << b[i]);
    REQUIRE(std::abs(a[i] - b[i]) <= tolerance * std::max(1.0, std::abs(b[i])));
  }
}

// Asserts that `expression` throws E with exactly `message`.
#define REQUIRE_THROWS_MESSAGE(expression, exception_type, message) \
  REQUIRE_THROWS_MATCHES(expression, exception_type, Catch::Matchers::Message(message))

// A fresh directory under the system's temporary directory, removed with
// everything in it when the test ends. mkdtemp makes the name unique, so
// test binaries run in parallel (ctest -j) never share one.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tapegrad-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;  // a destructor must not throw; a leftover directory is harmless
    std::filesystem::remove_all(path_, ignored);
  }
  // Owns the directory: a copy would remove it twice.
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The full path of `name` inside the directory (which need not exist yet).
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  // The names directly inside the directory, sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(path_)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::filesystem::path path_;
};

// The whole file as bytes ("" when it cannot be opened).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Occurrences of `part` in `text`, overlapping ones included.
inline std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// The committed inputs of a fuzz target (fuzz/corpus/<reader>/ and the crash
// inputs kept in fuzz/regressions/<reader>/), sorted; dotfiles skipped.
inline std::vector<std::string> fuzz_inputs(const std::string& reader) {
  const std::filesystem::path fuzz = std::filesystem::path(TAPEGRAD_TEST_DATA_DIR).parent_path().parent_path() / "fuzz";
  std::vector<std::string> out;
  for (const char* kind : {"corpus", "regressions"}) {
    const std::filesystem::path dir = fuzz / kind / reader;
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.is_regular_file() && entry.path().filename().string()[0] != '.') out.push_back(entry.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace tapegrad::testing
