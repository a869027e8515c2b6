#include "tapegrad/data/scaler.hpp"

#include <cmath>
#include <vector>

#include "nn/checks.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad::data {

namespace {

// The per-feature scale with zeros (a constant feature) replaced by 1.
Tensor nonzero_scale(const Tensor& scale) {
  std::vector<double> values = scale.to_vector();
  for (double& v : values) v = v == 0 ? 1 : v;
  return from_vector(values, scale.shape(), scale.dtype());
}

}  // namespace

FeatureScaler::FeatureScaler(std::string type_name, std::int64_t features, DType dtype, const char* center_name,
                             const char* scale_name, double low)
    : Module(std::move(type_name)), features_(features), center_name_(center_name), scale_name_(scale_name), low_(low) {
  if (features < 1) throw_invalid(this->type_name().c_str(), "needs at least one feature, got ", features);
  register_buffer(center_name, zeros({features}, dtype));
  register_buffer(scale_name, ones({features}, dtype));
  register_buffer("samples", zeros({}, dtype));
}

std::string FeatureScaler::str() const { return type_name() + "(" + std::to_string(features_) + " features)"; }

bool FeatureScaler::fitted() const { return buffer("samples").to_vector()[0] > 0; }

void FeatureScaler::check(const Tensor& x, const char* what) const {
  detail::check_input_dtype(*this, x, buffer(center_name_).dtype());
  detail::check_last_axis_features(*this, x, features_);
  if (what != nullptr && !fitted())
    detail::throw_layer(*this, what, " before fit(): fit it on the training data first");
}

FeatureScaler& FeatureScaler::fit(const Tensor& x) {
  check(x, nullptr);
  const std::int64_t rows = x.numel() / features_;
  if (rows == 0) detail::throw_layer(*this, "fit() needs at least one row, got ", x.shape().str());
  const Tensor flat = reshape(x.detach(), {rows, features_});
  const auto [center, scale] = statistics(flat);
  load_state_dict({{center_name_, center},
                   {scale_name_, nonzero_scale(scale)},
                   {"samples", scalar(static_cast<double>(rows), x.dtype())}});
  return *this;
}

Tensor FeatureScaler::forward(const Tensor& x) {
  check(x, "transform");
  const Tensor y = (x - buffer(center_name_)) / buffer(scale_name_);
  return low_ == 0 ? y : y + low_;
}

Tensor FeatureScaler::inverse_transform(const Tensor& y) {
  check(y, "inverse_transform");
  const Tensor shifted = low_ == 0 ? y : y - low_;
  return shifted * buffer(scale_name_) + buffer(center_name_);
}

StandardScaler::StandardScaler(std::int64_t features, DType dtype)
    : FeatureScaler("StandardScaler", features, dtype, "mean", "std", 0) {}

std::pair<Tensor, Tensor> StandardScaler::statistics(const Tensor& rows) const {
  return {mean(rows, {0}), sqrt(var(rows, {0}, /*unbiased=*/false))};
}

MinMaxScaler::MinMaxScaler(std::int64_t features, double low, double high, DType dtype)
    : FeatureScaler("MinMaxScaler", features, dtype, "min", "scale", low), low_(low), high_(high) {
  if (!(low < high)) throw_invalid("MinMaxScaler", "needs low < high, got low=", low, " high=", high);
}

std::pair<Tensor, Tensor> MinMaxScaler::statistics(const Tensor& rows) const {
  const Tensor lowest = min(rows, {0});
  return {lowest, (max(rows, {0}) - lowest) / (high_ - low_)};
}

}  // namespace tapegrad::data
