#include "tapegrad/functional.hpp"

#include "core/dispatch.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad::functional {

namespace {

// Fresh leaves at the caller's point, so that .grad and graphs outside stay
// untouched.
std::vector<Tensor> leaves_at(const std::vector<Tensor>& inputs, const char* op) {
  if (inputs.empty()) throw_invalid(op, "needs at least one input");
  std::vector<Tensor> leaves;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    detail::check_floating(op, inputs[i]);
    leaves.push_back(inputs[i].detach().requires_grad_());
  }
  return leaves;
}

// Grad mode on for the scope: the helpers build graphs even when called
// under no_grad.
class GradOn {
 public:
  GradOn() : previous_(grad_enabled()) { set_grad_enabled(true); }
  ~GradOn() { set_grad_enabled(previous_); }

 private:
  bool previous_;
};

// Gradients with zeros where the output does not depend on an input.
std::vector<Tensor> filled(std::vector<Tensor> gradients, const std::vector<Tensor>& like) {
  for (std::size_t i = 0; i < gradients.size(); ++i) {
    if (!gradients[i].defined()) gradients[i] = zeros_like(like[i]);
  }
  return gradients;
}

void check_same_shapes(const char* op, const char* what, const std::vector<Tensor>& given,
                       const std::vector<Tensor>& inputs) {
  if (given.size() != inputs.size()) throw_invalid(op, "got ", given.size(), " ", what, " for ", inputs.size(), " inputs");
  for (std::size_t i = 0; i < given.size(); ++i) {
    if (!given[i].defined() || given[i].shape() != inputs[i].shape() || given[i].dtype() != inputs[i].dtype()) {
      throw_invalid(op, what, "[", i, "] is ", given[i].defined() ? dtype_name(given[i].dtype()) : "undefined", " ",
                    given[i].shape().str(), ", input ", i, " is ", dtype_name(inputs[i].dtype()), " ",
                    inputs[i].shape().str());
    }
  }
}

Tensor value_of(const Tensor& output, bool create_graph) { return create_graph ? output : output.detach(); }

}  // namespace

Derivative vjp(const Function& f, const std::vector<Tensor>& inputs, const Tensor& v, bool create_graph) {
  GradOn grad_on;
  const std::vector<Tensor> x = leaves_at(inputs, "vjp");
  const Tensor y = f(x);
  if (!y.requires_grad()) throw_invalid("vjp", "f's output does not depend on its inputs");
  std::vector<Tensor> seeds;
  if (v.defined()) seeds.push_back(v);
  auto gradients = grad({y}, x, seeds, {.create_graph = create_graph, .allow_unused = true});
  return {value_of(y, create_graph), filled(std::move(gradients), x)};
}

Derivative jvp(const Function& f, const std::vector<Tensor>& inputs, const std::vector<Tensor>& u, bool create_graph) {
  GradOn grad_on;
  const std::vector<Tensor> x = leaves_at(inputs, "jvp");
  check_same_shapes("jvp", "u", u, x);
  const Tensor y = f(x);
  if (!y.requires_grad()) throw_invalid("jvp", "f's output does not depend on its inputs");
  // vᵀJ is linear in v; its derivative in v along u is J u. v's value is
  // irrelevant: zeros.
  Tensor v = zeros_like(y).requires_grad_();
  const auto vjps = filled(grad({y}, x, {v}, {.create_graph = true, .allow_unused = true}), x);
  Tensor dot;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const Tensor term = sum(vjps[i] * u[i]);
    dot = dot.defined() ? dot + term : term;
  }
  std::vector<Tensor> ju = grad({dot}, {v}, {}, {.create_graph = create_graph, .allow_unused = true});
  if (!ju[0].defined()) ju[0] = zeros_like(y);
  return {value_of(y, create_graph), std::move(ju)};
}

Derivative hvp(const Function& f, const std::vector<Tensor>& inputs, const std::vector<Tensor>& v, bool create_graph) {
  GradOn grad_on;
  const std::vector<Tensor> x = leaves_at(inputs, "hvp");
  check_same_shapes("hvp", "v", v, x);
  const Tensor y = f(x);
  if (y.numel() != 1) throw_invalid("hvp", "f must return one element, got ", y.shape().str());
  if (!y.requires_grad()) throw_invalid("hvp", "f's output does not depend on its inputs");
  const auto gradients = grad({y}, x, {}, {.create_graph = true, .allow_unused = true});
  Tensor dot;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!gradients[i].defined() || !gradients[i].requires_grad()) continue;  // linear in x_i: no curvature
    const Tensor term = sum(gradients[i] * v[i]);
    dot = dot.defined() ? dot + term : term;
  }
  if (!dot.defined()) {
    std::vector<Tensor> none(x.size());
    return {value_of(y, create_graph), filled(std::move(none), x)};
  }
  auto products = grad({dot}, x, {}, {.create_graph = create_graph, .allow_unused = true});
  return {value_of(y, create_graph), filled(std::move(products), x)};
}

namespace {

// Rows ∂out[i]/∂x for every element i of `out`, one backward each,
// stacked to [out's shape..., x's shape...].
Tensor rows_of(const Tensor& out, const Tensor& x, bool create_graph) {
  std::vector<Tensor> rows;
  const std::int64_t n = out.numel();
  for (std::int64_t i = 0; i < n; ++i) {
    std::vector<double> basis(static_cast<std::size_t>(n), 0.0);
    basis[static_cast<std::size_t>(i)] = 1.0;
    const Tensor seed = from_vector(basis, out.shape(), out.dtype());
    Tensor row;
    if (out.requires_grad()) {
      row = grad({out}, {x}, {seed}, {.retain_graph = true, .create_graph = create_graph, .allow_unused = true})[0];
    }
    rows.push_back(row.defined() ? row : zeros_like(x));
  }
  Shape shape = out.shape();
  for (std::int64_t d : x.shape()) shape.push_back(d);
  return reshape(stack(rows, 0), std::vector<std::int64_t>(shape.begin(), shape.end()));
}

}  // namespace

Tensor jacobian(const std::function<Tensor(const Tensor&)>& f, const Tensor& x, bool create_graph) {
  GradOn grad_on;
  const Tensor leaf = leaves_at({x}, "jacobian")[0];
  const Tensor y = f(leaf);
  return rows_of(y, leaf, create_graph);
}

Tensor hessian(const std::function<Tensor(const Tensor&)>& f, const Tensor& x, bool create_graph) {
  GradOn grad_on;
  const Tensor leaf = leaves_at({x}, "hessian")[0];
  const Tensor y = f(leaf);
  if (y.numel() != 1) throw_invalid("hessian", "f must return one element, got ", y.shape().str());
  Tensor gradient;
  if (y.requires_grad()) gradient = grad({y}, {leaf}, {}, {.create_graph = true, .allow_unused = true})[0];
  // f constant in x: no curvature, and rows_of sees a gradient with no graph.
  return rows_of(gradient.defined() ? gradient : zeros_like(leaf), leaf, create_graph);
}

}  // namespace tapegrad::functional
