// Exits 0 when tapegrad links and differentiates: d/dx Σ x² = 2x.
#include <tapegrad/tapegrad.hpp>

int main() {
  tapegrad::Tensor x({1.0, 2.0, 3.0});
  x.requires_grad_();
  tapegrad::sum(x * x).backward();
  return x.grad().to_vector() == std::vector<double>{2, 4, 6} ? 0 : 1;
}
