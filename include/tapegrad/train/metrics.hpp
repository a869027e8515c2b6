#pragma once
// Classification metrics from logits [N, C] and targets (int64 class
// indices [N], or one-hot / probability rows [N, C], whose argmax is the
// class), and a running mean for losses.
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad::train {

// The predicted class of each row: argmax over the last axis (first on ties).
std::vector<std::int64_t> predicted_classes(const Tensor& logits);
// Rows whose argmax matches the target.
std::int64_t count_correct(const Tensor& logits, const Tensor& targets);
// count_correct / N.
double accuracy(const Tensor& logits, const Tensor& targets);

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(std::int64_t num_classes);

  void add(const Tensor& logits, const Tensor& targets);
  void add(std::int64_t actual, std::int64_t predicted);
  void reset();

  std::int64_t num_classes() const { return classes_; }
  // How often class `actual` was predicted as `predicted`.
  std::int64_t count(std::int64_t actual, std::int64_t predicted) const;
  std::int64_t total() const { return total_; }
  double accuracy() const;
  // Of the samples of class c, the fraction predicted c (0 when none).
  double recall(std::int64_t c) const;
  // Of the samples predicted c, the fraction that are c (0 when none).
  double precision(std::int64_t c) const;
  // A table: rows are actual classes, columns predicted ones.
  std::string str() const;

 private:
  void check_class(std::int64_t c, const char* what) const;

  std::int64_t classes_;
  std::vector<std::int64_t> counts_;
  std::int64_t total_ = 0;
};

// Mean of values weighted by counts: add(batch_loss, batch_size) per batch
// gives the per-sample mean loss of the epoch so far.
class RunningMean {
 public:
  void add(double value, std::int64_t count = 1);
  double mean() const { return count_ > 0 ? sum_ / static_cast<double>(count_) : 0.0; }
  std::int64_t count() const { return count_; }
  void reset() { sum_ = 0, count_ = 0; }

 private:
  double sum_ = 0;
  std::int64_t count_ = 0;
};

}  // namespace tapegrad::train
