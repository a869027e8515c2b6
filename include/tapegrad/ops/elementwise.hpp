#pragma once
// Elementwise arithmetic with NumPy broadcasting. Gradients are summed back
// to each input's shape. Tensor-scalar forms treat the scalar as a constant
// of the tensor's dtype.
#include "tapegrad/tensor.hpp"

namespace tapegrad {

/// a + b; da = dy, db = dy (each summed to its input's shape).
Tensor add(const Tensor& a, const Tensor& b);
/// a - b; da = dy, db = -dy.
Tensor sub(const Tensor& a, const Tensor& b);
/// a * b; da = dy * b, db = dy * a.
Tensor mul(const Tensor& a, const Tensor& b);
/// a / b; da = dy / b, db = -dy * a / b².
Tensor div(const Tensor& a, const Tensor& b);
/// -x; dx = -dy.
Tensor neg(const Tensor& x);
/// a ^ b (elementwise); da = dy * b * a^(b-1), db = dy * a^b * ln a (0 where a = 0).
Tensor pow(const Tensor& a, const Tensor& b);
/// x ^ p for a constant exponent; dx = dy * p * x^(p-1).
Tensor pow(const Tensor& x, double exponent);
/// e^x; dx = dy * y.
Tensor exp(const Tensor& x);
/// ln x; dx = dy / x.
Tensor log(const Tensor& x);
/// √x; dx = dy / (2y).
Tensor sqrt(const Tensor& x);
/// |x|; dx = dy * sign(x) (0 at 0, as PyTorch).
Tensor abs(const Tensor& x);
/// min(max(x, low), high), NaN for NaN; dx = dy where low <= x <= high, else 0 (also at NaN).
Tensor clamp(const Tensor& x, double low, double high);
/// max(a, b) with broadcasting, NaN where either is NaN (as PyTorch); the gradient
/// goes to the larger input, split evenly on ties. A NaN counts as the larger: it
/// takes the gradient, and two NaNs split it (PyTorch gives it to both inputs).
Tensor maximum(const Tensor& a, const Tensor& b);
/// min(a, b) with broadcasting, NaN where either is NaN; the gradient goes to the
/// smaller input, split evenly on ties, a NaN counting as the smaller (as maximum).
Tensor minimum(const Tensor& a, const Tensor& b);
/// a where cond != 0, else b, the three broadcast together (cond of any
/// dtype: a 0/1 float mask or int64; a NaN in cond counts as true, as its
/// bool does in PyTorch). a and b share a dtype (int64 too). The gradient
/// goes to the selected side; the other gets an exact 0, so NaN or Inf in
/// the branch not taken stays out of it; cond gets none. Any order.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
/// x with `value` where mask != 0 (broadcast to x's shape or with it):
/// where(mask, value, x); the gradient reaches x where the mask is 0.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

}  // namespace tapegrad
