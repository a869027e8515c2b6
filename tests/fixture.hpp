#pragma once
// Reference fixtures: tensors recorded by a committed PyTorch script
// (scripts/make_*_fixtures.py) in tests/data, so that the tests comparing
// against PyTorch need no PyTorch. One tensor per line:
//   name rank d0 .. d(rank-1) v0 v1 ...
// values row-major, floats as Python's repr() (the shortest text that reads
// back to the same double); lines starting with '#' are comments.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "support.hpp"

namespace tapegrad::testing {

// Both sides compute in float64 and the recorded values are O(1), so
// agreement is limited only by summation order and libm differences: ~1e-15.
// 1e-9 leaves six orders of margin for those while catching any wrong
// formula (a wrong term shows up at 1e-3 or above). The error is scaled by
// max(1, |reference|): absolute for values up to 1, relative beyond.
constexpr double kFixtureTolerance = 1e-9;

struct Recorded {
  Shape shape;
  std::vector<double> values;
};

// One fixture file: tensors by name.
class Fixture {
 public:
  // Reads tests/data/<file>.
  explicit Fixture(const std::string& file) : file_(file) {
    const std::string path = std::string(TAPEGRAD_TEST_DATA_DIR) + "/" + file;
    std::ifstream in(path);
    INFO("fixture " << path);
    REQUIRE(in.good());
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream fields(line);
      std::string name;
      std::size_t rank = 0;
      fields >> name >> rank;
      std::vector<std::int64_t> dims(rank);
      for (auto& d : dims) fields >> d;
      Recorded entry{Shape(dims), {}};
      std::string token;
      while (fields >> token) {
        char* end = nullptr;
        entry.values.push_back(std::strtod(token.c_str(), &end));  // correctly rounded: repr reads back exactly
        INFO("tensor " << name << ", token '" << token << "'");
        REQUIRE(*end == '\0');
      }
      INFO("tensor " << name << " of shape " << entry.shape.str());
      REQUIRE(!fields.bad());
      REQUIRE(static_cast<std::int64_t>(entry.values.size()) == entry.shape.numel());
      tensors_[name] = std::move(entry);
    }
    REQUIRE(!tensors_.empty());
  }

  const std::string& name() const { return file_; }

  bool has(const std::string& name) const { return tensors_.count(name) > 0; }

  const Recorded& get(const std::string& name) const {
    const auto found = tensors_.find(name);
    INFO("fixture " << file_ << " has no tensor '" << name << "' (rerun the script named in its header?)");
    REQUIRE(found != tensors_.end());
    return found->second;
  }

  // Every tensor whose name starts with `prefix`, in name order.
  std::vector<std::string> names_with_prefix(const std::string& prefix) const {
    std::vector<std::string> names;
    for (const auto& [name, recorded] : tensors_) {
      if (name.compare(0, prefix.size(), prefix) == 0) names.push_back(name);
    }
    return names;
  }

  // A float64 leaf requiring grad, from the recorded values.
  Tensor input(const std::string& name) const {
    Tensor t = constant(name);
    t.requires_grad_();
    return t;
  }

  // A float64 constant (no gradient).
  Tensor constant(const std::string& name) const {
    const Recorded& r = get(name);
    return from_vector(r.values, r.shape, DType::Float64);
  }

  // Int64 class indices.
  Tensor indices(const std::string& name) const {
    const Recorded& r = get(name);
    std::vector<std::int64_t> values;
    for (double v : r.values) values.push_back(static_cast<std::int64_t>(v));
    return from_indices(values, r.shape);
  }

 private:
  std::string file_;
  std::map<std::string, Recorded> tensors_;
};

// Every element of `values` within `tolerance` · max(1, |reference|) of the
// recorded tensor `name`; on failure, names the first offending element.
// Returns the largest scaled error.
inline double check_values(const Fixture& fixture, const std::string& name, const std::vector<double>& values,
                           double tolerance = kFixtureTolerance) {
  const Recorded& want = fixture.get(name);
  INFO(fixture.name() << ": " << name);
  REQUIRE(values.size() == want.values.size());
  double worst = 0;
  std::size_t bad = 0;
  std::size_t first_bad = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double error = std::abs(values[i] - want.values[i]) / std::max(1.0, std::abs(want.values[i]));
    if (!(error <= tolerance) && bad++ == 0) first_bad = i;  // a NaN counts as bad
    if (error > worst || std::isnan(error)) worst = error;
  }
  std::ostringstream detail;
  detail << std::setprecision(17);
  if (bad > 0) {
    detail << bad << " of " << values.size() << " elements differ; first at flat index " << first_bad
           << ": tapegrad " << values[first_bad] << ", PyTorch " << want.values[first_bad];
  }
  INFO(detail.str());
  CHECK(bad == 0);
  CHECK(worst <= tolerance);
  return worst;
}

// check_values for a float64 tensor of the recorded shape.
inline double check_matches(const Fixture& fixture, const std::string& name, const Tensor& got,
                            double tolerance = kFixtureTolerance) {
  INFO(fixture.name() << ": " << name);
  REQUIRE(got.defined());
  REQUIRE(got.dtype() == DType::Float64);
  REQUIRE(got.shape().str() == fixture.get(name).shape.str());
  return check_values(fixture, name, got.to_vector(), tolerance);
}

}  // namespace tapegrad::testing
