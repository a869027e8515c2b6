#include "tapegrad/optim/clip.hpp"

#include <algorithm>
#include <cmath>

#include "core/capture_hooks.hpp"
#include "core/dispatch.hpp"
#include "optim/checks.hpp"
#include "tapegrad/kernel.hpp"
#include "tapegrad/storage.hpp"

namespace tapegrad::optim {

namespace {

void check_parameter(const char* who, const std::vector<Tensor>& parameters, std::size_t k) {
  if (!parameters[k].defined()) throw_invalid(who, "parameter ", k, " is undefined");
}

// The parameter's gradient, to be written in place. Backward may hand one
// gradient tensor (or views of one buffer) to several leaves: add passes its
// output gradient to both inputs. A shared gradient is replaced by a copy
// first, so that clipping one leaf never touches another's.
Tensor writable_grad(const Tensor& parameter) {
  std::shared_ptr<TensorImpl>& grad = parameter.impl()->grad;
  if (grad.use_count() != 1 || tapegrad::detail::owners_besides_capture(grad->storage) != 1) {
    grad = Tensor(grad).clone().impl_ptr();
  }
  return Tensor(grad);
}

}  // namespace

void clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type, Tensor& norm) {
  const char* who = "clip_grad_norm_";
  detail::check_nonnegative(who, "max_norm", max_norm);
  if (!(norm_type > 0)) throw_invalid(who, "norm_type must be > 0 (or infinity), got ", norm_type);
  for (std::size_t k = 0; k < parameters.size(); ++k) check_parameter(who, parameters, k);
  // Σ |g|^p (or max |g|) accumulated in double whatever the dtype, one
  // kernel per gradient, in parameter order; then the norm itself.
  norm = empty(Shape{}, DType::Float64, who);
  launch(who, [](double* total) { total[0] = 0; }, norm);
  for (const Tensor& parameter : parameters) {
    const Tensor grad = parameter.grad();
    if (!grad.defined()) continue;
    tapegrad::detail::dispatch_float(grad.dtype(), who, [&](auto tag) {
      using T = decltype(tag);
      launch(
          who,
          [norm_type, n = grad.numel()](const T* g, double* total) {
            for (std::int64_t i = 0; i < n; ++i) {
              const double a = std::abs(static_cast<double>(g[i]));
              if (std::isinf(norm_type)) {
                if (a > total[0] || std::isnan(a)) total[0] = a;  // std::max would drop a NaN
              } else if (norm_type == 2) {
                total[0] += a * a;
              } else {
                total[0] += std::pow(a, norm_type);
              }
            }
          },
          grad, norm);
    });
  }
  launch(
      who,
      [norm_type](double* total) {
        const double t = total[0];
        total[0] = std::isinf(norm_type) ? t : norm_type == 2 ? std::sqrt(t) : std::pow(t, 1 / norm_type);
        if (!std::isfinite(total[0])) {
          throw_runtime("clip_grad_norm_", "the total ", norm_type, "-norm of the gradients is ", total[0],
                        "; scaling by it would turn every gradient into NaN");
        }
      },
      norm);
  for (const Tensor& parameter : parameters) {
    if (!parameter.grad().defined()) continue;
    Tensor grad = writable_grad(parameter);
    tapegrad::detail::dispatch_float(grad.dtype(), who, [&](auto tag) {
      using T = decltype(tag);
      launch(
          who,
          [max_norm, n = grad.numel()](const double* total, T* g) {
            // PyTorch's coefficient, 1e-6 included; at 1 or more nothing changes.
            const double coefficient = max_norm / (total[0] + 1e-6);
            if (coefficient >= 1) return;
            const T c = static_cast<T>(coefficient);
            for (std::int64_t i = 0; i < n; ++i) g[i] *= c;
          },
          norm, grad);
    });
  }
}

double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type) {
  if (capturing()) {
    throw_runtime("capture", "clip_grad_norm_ returns the norm as a number, which a replay cannot update: pass a "
                             "Tensor to receive it (clip_grad_norm_(parameters, max_norm, norm_type, norm))");
  }
  Tensor norm;
  clip_grad_norm_(parameters, max_norm, norm_type, norm);
  return *norm.data<double>();
}

void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value) {
  const char* who = "clip_grad_value_";
  detail::check_nonnegative(who, "clip_value", clip_value);
  for (std::size_t k = 0; k < parameters.size(); ++k) check_parameter(who, parameters, k);
  for (const Tensor& parameter : parameters) {
    if (!parameter.grad().defined()) continue;
    Tensor grad = writable_grad(parameter);
    tapegrad::detail::dispatch_float(grad.dtype(), who, [&](auto tag) {
      using T = decltype(tag);
      launch(
          who,
          [high = static_cast<T>(clip_value), n = grad.numel()](T* g) {
            for (std::int64_t i = 0; i < n; ++i) g[i] = std::clamp(g[i], -high, high);  // NaN stays NaN
          },
          grad);
    });
  }
}

}  // namespace tapegrad::optim
