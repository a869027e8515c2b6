#pragma once
// Feature scaling fitted on training data and applied unchanged to
// validation and test data: StandardScaler ((x - mean) / std) and
// MinMaxScaler (x mapped linearly so that the training minimum and maximum
// land on [low, high]). Both scale the last axis of [..., features]
// tensors, and both are modules: their fitted statistics are buffers, so a
// checkpoint of a model that holds one (say, as the first layer of a
// Sequential) saves and restores them with the weights, and the scaled
// input is differentiable in x.
//
//   data::StandardScaler scaler(train.features());
//   scaler.fit(train.inputs());              // train statistics only
//   const Tensor x_test = scaler(test.inputs());
//
// Constant features are left unscaled rather than divided by zero: a zero
// standard deviation (or range) counts as 1, as scikit-learn does, so such
// a feature becomes 0 (StandardScaler) or `low` (MinMaxScaler). NaN in the
// training data propagates into the statistics of its feature.
#include <cstdint>
#include <string>

#include "tapegrad/nn/module.hpp"

namespace tapegrad::data {

// The shared part: y = (x - center) / scale + low per feature, the
// statistics in the buffers `center_name`, `scale_name` and "samples" (the
// rows fit() saw; 0 until fitted).
class FeatureScaler : public nn::Module {
 public:
  Tensor forward(const Tensor& x) override;
  Tensor transform(const Tensor& x) { return forward(x); }
  // x = (y - low) · scale + center: back to the data's units.
  Tensor inverse_transform(const Tensor& y);
  // Fits on the rows of x ([N x features], or [..., features]): needs at
  // least one row, and the feature count the scaler was made for.
  FeatureScaler& fit(const Tensor& x);
  bool fitted() const;
  std::int64_t features() const { return features_; }
  std::string str() const override;

 protected:
  FeatureScaler(std::string type_name, std::int64_t features, DType dtype, const char* center_name,
                const char* scale_name, double low);
  // Center and (nonzero) scale per feature from the rows of x [N x F].
  virtual std::pair<Tensor, Tensor> statistics(const Tensor& rows) const = 0;

 private:
  void check(const Tensor& x, const char* what) const;

  std::int64_t features_;
  const char* center_name_;
  const char* scale_name_;
  double low_;
};

class StandardScaler final : public FeatureScaler {
 public:
  // Buffers "mean", "std" (population standard deviation, as scikit-learn
  // and NumPy's default) and "samples".
  explicit StandardScaler(std::int64_t features, DType dtype = kDefaultDType);

 private:
  std::pair<Tensor, Tensor> statistics(const Tensor& rows) const override;
};

class MinMaxScaler final : public FeatureScaler {
 public:
  // Buffers "min", "scale" ((max - min) / (high - low)) and "samples"; the
  // training data maps onto [low, high]. Needs low < high.
  explicit MinMaxScaler(std::int64_t features, double low = 0, double high = 1, DType dtype = kDefaultDType);

 private:
  std::pair<Tensor, Tensor> statistics(const Tensor& rows) const override;
  double low_, high_;
};

}  // namespace tapegrad::data
