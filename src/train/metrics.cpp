#include "tapegrad/train/metrics.hpp"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "tapegrad/error.hpp"

namespace tapegrad::train {

namespace {

// Argmax of each row of a [N, C] tensor of any dtype.
std::vector<std::int64_t> row_argmax(const Tensor& t, const char* op, const char* what) {
  if (!t.defined() || t.dim() != 2 || t.shape(1) < 1) {
    throw_invalid(op, what, " must be [N, C], got ", t.defined() ? t.shape().str() : "undefined");
  }
  const std::int64_t n = t.shape(0);
  const std::int64_t c = t.shape(1);
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  auto scan = [&](const auto* data) {
    for (std::int64_t i = 0; i < n; ++i) {
      const auto* row = data + i * c;
      out[static_cast<std::size_t>(i)] = std::max_element(row, row + c) - row;
    }
  };
  switch (t.dtype()) {
    case DType::Float32: scan(t.data<float>()); break;
    case DType::Float64: scan(t.data<double>()); break;
    case DType::Int64: scan(t.data<std::int64_t>()); break;
  }
  return out;
}

// The class of each sample: int64 indices [N] checked against [0, C), or
// the argmax of [N, C] rows.
std::vector<std::int64_t> target_classes(const Tensor& targets, std::int64_t n, std::int64_t classes, const char* op) {
  if (!targets.defined()) throw_invalid(op, "targets are undefined");
  if (targets.dtype() == DType::Int64 && targets.dim() == 1) {
    if (targets.shape(0) != n) {
      throw_invalid(op, "logits [", n, "x", classes, "] and targets ", targets.shape().str(), " disagree on N");
    }
    const std::int64_t* labels = targets.data<std::int64_t>();
    for (std::int64_t i = 0; i < n; ++i) {
      if (labels[i] < 0 || labels[i] >= classes) {
        throw_out_of_range(op, "label ", labels[i], " at row ", i, " is out of range [0, ", classes, ")");
      }
    }
    return std::vector<std::int64_t>(labels, labels + n);
  }
  if (targets.dim() != 2 || targets.shape(0) != n || targets.shape(1) != classes) {
    throw_invalid(op, "targets must be int64 [", n, "] or rows [", n, "x", classes, "] like the logits, got ",
                  dtype_name(targets.dtype()), " ", targets.shape().str());
  }
  return row_argmax(targets, op, "targets");
}

}  // namespace

std::vector<std::int64_t> predicted_classes(const Tensor& logits) {
  return row_argmax(logits, "predicted_classes", "logits");
}

std::int64_t count_correct(const Tensor& logits, const Tensor& targets) {
  const std::vector<std::int64_t> predicted = row_argmax(logits, "accuracy", "logits");
  const std::vector<std::int64_t> actual = target_classes(targets, logits.shape(0), logits.shape(1), "accuracy");
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < predicted.size(); ++i) correct += predicted[i] == actual[i];
  return correct;
}

double accuracy(const Tensor& logits, const Tensor& targets) {
  const std::int64_t correct = count_correct(logits, targets);
  return logits.shape(0) > 0 ? static_cast<double>(correct) / static_cast<double>(logits.shape(0)) : 0.0;
}

ConfusionMatrix::ConfusionMatrix(std::int64_t num_classes) : classes_(num_classes) {
  if (num_classes < 1) throw_invalid("ConfusionMatrix", "num_classes must be positive, got ", num_classes);
  counts_.assign(static_cast<std::size_t>(num_classes * num_classes), 0);
}

void ConfusionMatrix::check_class(std::int64_t c, const char* what) const {
  if (c < 0 || c >= classes_) {
    throw_out_of_range("ConfusionMatrix", what, " class ", c, " is out of range [0, ", classes_, ")");
  }
}

void ConfusionMatrix::add(std::int64_t actual, std::int64_t predicted) {
  check_class(actual, "actual");
  check_class(predicted, "predicted");
  ++counts_[static_cast<std::size_t>(actual * classes_ + predicted)];
  ++total_;
}

void ConfusionMatrix::add(const Tensor& logits, const Tensor& targets) {
  const std::vector<std::int64_t> predicted = row_argmax(logits, "ConfusionMatrix", "logits");
  if (logits.shape(1) != classes_) {
    throw_invalid("ConfusionMatrix", "logits ", logits.shape().str(), " have ", logits.shape(1),
                  " classes, the matrix ", classes_);
  }
  const std::vector<std::int64_t> actual = target_classes(targets, logits.shape(0), classes_, "ConfusionMatrix");
  for (std::size_t i = 0; i < predicted.size(); ++i) add(actual[i], predicted[i]);
}

void ConfusionMatrix::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = 0;
}

std::int64_t ConfusionMatrix::count(std::int64_t actual, std::int64_t predicted) const {
  check_class(actual, "actual");
  check_class(predicted, "predicted");
  return counts_[static_cast<std::size_t>(actual * classes_ + predicted)];
}

double ConfusionMatrix::accuracy() const {
  std::int64_t diagonal = 0;
  for (std::int64_t c = 0; c < classes_; ++c) diagonal += counts_[static_cast<std::size_t>(c * classes_ + c)];
  return total_ > 0 ? static_cast<double>(diagonal) / static_cast<double>(total_) : 0.0;
}

double ConfusionMatrix::recall(std::int64_t c) const {
  check_class(c, "actual");
  std::int64_t row = 0;
  for (std::int64_t p = 0; p < classes_; ++p) row += count(c, p);
  return row > 0 ? static_cast<double>(count(c, c)) / static_cast<double>(row) : 0.0;
}

double ConfusionMatrix::precision(std::int64_t c) const {
  check_class(c, "predicted");
  std::int64_t column = 0;
  for (std::int64_t a = 0; a < classes_; ++a) column += count(a, c);
  return column > 0 ? static_cast<double>(count(c, c)) / static_cast<double>(column) : 0.0;
}

std::string ConfusionMatrix::str() const {
  std::int64_t widest = 1;
  for (std::int64_t v : counts_) widest = std::max<std::int64_t>(widest, static_cast<std::int64_t>(std::to_string(v).size()));
  const int width = static_cast<int>(std::max<std::int64_t>(widest, static_cast<std::int64_t>(std::to_string(classes_ - 1).size()))) + 1;
  std::ostringstream out;
  out << "actual \\ predicted\n" << std::setw(width + 1) << "";
  for (std::int64_t p = 0; p < classes_; ++p) out << std::setw(width) << p;
  out << "\n";
  for (std::int64_t a = 0; a < classes_; ++a) {
    out << std::setw(width) << a << ":";
    for (std::int64_t p = 0; p < classes_; ++p) out << std::setw(width) << count(a, p);
    out << "\n";
  }
  return out.str();
}

void RunningMean::add(double value, std::int64_t count) {
  if (count < 0) throw_invalid("RunningMean::add", "count must be non-negative, got ", count);
  sum_ += value * static_cast<double>(count);
  count_ += count;
}

}  // namespace tapegrad::train
