// Captured steps (capture.hpp): bit-identical to eager, no allocation per
// replay, and the guards' messages.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <vector>

#include "support.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tapegrad;
using Catch::Matchers::Contains;

#include "allocation_counter.hpp"

namespace {

struct Batch {
  Tensor x, y;
};

std::vector<Batch> make_batches(int count, std::int64_t rows, std::int64_t features, std::int64_t classes,
                                DType dtype) {
  Generator data(7);
  std::vector<Batch> batches;
  for (int i = 0; i < count; ++i) {
    Tensor x = randn({rows, features}, dtype, 0, 1, &data);
    // A learnable rule: the class is the largest of the first `classes` features.
    const std::vector<double> v = x.to_vector();
    std::vector<std::int64_t> labels(static_cast<std::size_t>(rows));
    for (std::int64_t r = 0; r < rows; ++r) {
      const auto row = v.begin() + r * features;
      labels[static_cast<std::size_t>(r)] = std::max_element(row, row + classes) - row;
    }
    batches.push_back({x, from_indices(labels, Shape{rows})});
  }
  return batches;
}

// Captures `step` on inputs[0], replays it once on inputs[1] (the first
// replay may fault in lazily made library state), then checks that every
// further replay allocates nothing: no malloc where they are counted (not
// under sanitizers, whose runtimes own malloc), and no tensor memory.
void check_replays_allocate_nothing(CapturedStep& step, const std::vector<std::vector<Tensor>>& inputs) {
  step(inputs[0]);
  step(inputs[1]);
  for (std::size_t k = 2; k < inputs.size(); ++k) {
    const std::int64_t tensor_bytes = allocated_memory_bytes();
#if TAPEGRAD_COUNTS_ALLOCATIONS
    const long before = allocation_count();
    step(inputs[k]);
    CHECK(allocation_count() - before == 0);
#else
    step(inputs[k]);
#endif
    CHECK(allocated_memory_bytes() == tensor_bytes);
  }
}

std::vector<std::vector<Tensor>> as_inputs(const std::vector<Batch>& batches) {
  std::vector<std::vector<Tensor>> inputs;
  for (const Batch& b : batches) inputs.push_back({b.x, b.y});
  return inputs;
}

enum class OptimizerKind { Adam, AdamW, SGDMomentum, Nesterov, Adagrad, RMSpropCentered };
enum class Clip { None, Norm, Value };

struct Trainer {
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<optim::Optimizer> optimizer;

  Clip clip = Clip::None;
  Tensor norm;  // the last clip_grad_norm_'s

  Trainer(OptimizerKind kind, double dropout, DType dtype, Clip clipping = Clip::None) : clip(clipping) {
    manual_seed(11);
    model = nn::mlp({12, 32, 16, 3}, {.dropout = dropout});
    model->to(dtype);
    model->train();
    switch (kind) {
      case OptimizerKind::Adam:
        optimizer = std::make_unique<optim::Adam>(model->parameters(), optim::AdamOptions{.lr = 1e-2});
        break;
      case OptimizerKind::AdamW:
        optimizer =
            std::make_unique<optim::AdamW>(model->parameters(), optim::AdamWOptions{.lr = 1e-2, .weight_decay = 0.1});
        break;
      case OptimizerKind::SGDMomentum:
        optimizer = std::make_unique<optim::SGD>(model->parameters(),
                                                 optim::SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3});
        break;
      case OptimizerKind::Adagrad:
        optimizer = std::make_unique<optim::Adagrad>(
            model->parameters(), optim::AdagradOptions{.lr = 0.05, .lr_decay = 1e-3, .weight_decay = 1e-3});
        break;
      case OptimizerKind::RMSpropCentered:
        optimizer = std::make_unique<optim::RMSprop>(
            model->parameters(),
            optim::RMSpropOptions{
                .lr = 1e-3, .alpha = 0.9, .eps = 1e-8, .weight_decay = 0, .momentum = 0.5, .centered = true});
        break;
      case OptimizerKind::Nesterov:
        optimizer = std::make_unique<optim::SGD>(
            model->parameters(),
            optim::SGDOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0, .weight_decay = 0, .nesterov = true});
        break;
    }
  }

  std::vector<Tensor> step(const std::vector<Tensor>& in) {
    Tensor loss = cross_entropy((*model)(in[0]), in[1]);
    optimizer->zero_grad();
    loss.backward();
    if (clip == Clip::Norm) optim::clip_grad_norm_(model->parameters(), 0.5, 2.0, norm);
    if (clip == Clip::Value) optim::clip_grad_value_(model->parameters(), 0.01);
    optimizer->step();
    return {loss};
  }

  std::vector<double> weights() const {
    std::vector<double> all;
    for (const Tensor& p : model->parameters()) {
      const std::vector<double> v = p.to_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  }
};

}  // namespace

TEST_CASE("a captured MLP step gives bit-identical losses and weights to eager over 100 steps", "[capture]") {
  struct Case {
    OptimizerKind kind;
    double dropout;
    DType dtype;
    Clip clip = Clip::None;
  };
  for (const Case c :
       {Case{OptimizerKind::Adam, 0.0, DType::Float32}, Case{OptimizerKind::Adam, 0.3, DType::Float32},
        Case{OptimizerKind::AdamW, 0.0, DType::Float64}, Case{OptimizerKind::SGDMomentum, 0.2, DType::Float64},
        Case{OptimizerKind::Nesterov, 0.0, DType::Float32}, Case{OptimizerKind::Adagrad, 0.0, DType::Float64},
        Case{OptimizerKind::Adam, 0.0, DType::Float64, Clip::Norm},
        Case{OptimizerKind::RMSpropCentered, 0.1, DType::Float32, Clip::Value}}) {
    CAPTURE(static_cast<int>(c.kind), c.dropout, dtype_name(c.dtype), static_cast<int>(c.clip));
    const std::vector<Batch> batches = make_batches(100, 16, 12, 3, c.dtype);

    Trainer eager(c.kind, c.dropout, c.dtype, c.clip);
    std::vector<double> eager_losses;
    for (const Batch& b : batches) eager_losses.push_back(eager.step({b.x, b.y})[0].item());

    Trainer captured(c.kind, c.dropout, c.dtype, c.clip);
    CapturedStep step([&](const std::vector<Tensor>& in) { return captured.step(in); });
    std::vector<double> captured_losses;
    for (const Batch& b : batches) captured_losses.push_back(step({b.x, b.y})[0].item());
    if (c.clip == Clip::Norm) {  // each replay wrote its own norm
      CHECK(captured.norm.item() == eager.norm.item());
      CHECK(captured.norm.item() > 0);
    }

    REQUIRE(step.num_programs() == 1);
    CHECK(step.num_kernels() > 20);
    CHECK(captured_losses == eager_losses);
    CHECK(captured.weights() == eager.weights());
    CHECK(eager_losses.back() < eager_losses.front());
  }
}

TEST_CASE("captured regression and binary losses match eager", "[capture]") {
  Generator data(3);
  std::vector<std::vector<Tensor>> batches;
  for (int i = 0; i < 40; ++i) {
    const Tensor x = randn({10, 5}, DType::Float64, 0, 1, &data);
    // A learnable target: half the row sum, and whether it is positive.
    const std::vector<double> v = x.to_vector();
    std::vector<double> target(10), positive(10);
    for (std::size_t r = 0; r < 10; ++r) {
      for (std::size_t c = 0; c < 5; ++c) target[r] += 0.5 * v[r * 5 + c];
      positive[r] = target[r] > 0 ? 1 : 0;
    }
    const Tensor y = from_vector(target, {10, 1}, DType::Float64);
    batches.push_back({x, y, from_vector(positive, {10, 1}, DType::Float64)});
  }
  auto run = [&](bool capture) {
    manual_seed(5);
    auto model = nn::mlp({5, 8, 1});
    model->to(DType::Float64);
    optim::SGD optimizer(model->parameters(), {.lr = 0.02, .momentum = 0.5});
    auto fn = [&](const std::vector<Tensor>& in) {
      const Tensor out = (*model)(in[0]);
      const Tensor loss = mse_loss(out, in[1]) + 0.1 * sse_loss(out, in[1]) + bce_with_logits(out, in[2]) +
                          binary_cross_entropy(sigmoid(out), in[2], Reduction::Sum);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      return std::vector<Tensor>{loss};
    };
    CapturedStep step(fn);
    std::vector<double> losses;
    for (const auto& batch : batches) losses.push_back(capture ? step(batch)[0].item() : fn(batch)[0].item());
    return losses;
  };
  const std::vector<double> eager = run(false);
  CHECK(run(true) == eager);
  CHECK(eager.back() < eager.front());
}

TEST_CASE("a parameter first seen through a saved copy is checked as itself", "[capture]") {
  // The saved copy dies with the graph; the replay must check the parameter.
  Tensor w = full({4}, 0.5).requires_grad_();
  w.set_name("w");
  optim::SGD optimizer({w}, {.lr = 0.1});
  CapturedStep step([&](const std::vector<Tensor>& in) {
    const Tensor copy = saved(w);
    Tensor doubled = empty({4});
    launch(
        "double",
        [](const float* a, float* out) {
          for (int i = 0; i < 4; ++i) out[i] = 2 * a[i];
        },
        copy, doubled);
    const Tensor loss = sum(w * in[0]) + sum(doubled);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    return std::vector<Tensor>{loss};
  });
  const Tensor x = full({4}, 1.0);
  step({x});
  const double second = step({x})[0].item();
  CHECK(second == Approx(12 * 0.4));  // w · 1 + 2w after one step of 0.1 · 1
  w.requires_grad_(false);
  CHECK_NOTHROW(step({x}));  // the parameter is still there, same buffer and shape
}

TEST_CASE("a replay reads inputs in place, except those the step writes, returns or feeds back", "[capture]") {
  // in[0] is only read: a replay points the kernels at the caller's tensor.
  // in[1] is written by the step (it doubles it in place): a replay copies
  // it first, and the caller's tensor stays as it was.
  CapturedStep step([](const std::vector<Tensor>& in) {
    launch(
        "double in place",
        [n = in[1].numel()](float* v) {
          for (std::int64_t i = 0; i < n; ++i) v[i] *= 2;
        },
        in[1]);
    return std::vector<Tensor>{in[0] + in[1], in[0]};
  });
  const Tensor a = full({3}, 1.0), b = full({3}, 10.0);
  step({a, b});
  const Tensor c = full({3}, 2.0), d = full({3}, 20.0);
  const std::vector<Tensor>& out = step({c, d});
  CHECK(out[0].to_vector() == std::vector<double>{42, 42, 42});
  CHECK(out[1].to_vector() == std::vector<double>{2, 2, 2});  // returned: copied, not the caller's tensor
  CHECK(!out[1].same(c));
  CHECK(d.to_vector() == std::vector<double>{20, 20, 20});
  // An output fed back as the next input (carried state) is copied in
  // before the step overwrites it.
  CapturedStep accumulate([](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0] + 1.0}; });
  Tensor state = zeros({2});
  for (int i = 0; i < 5; ++i) state = accumulate({state})[0];
  CHECK(state.to_vector() == std::vector<double>{5, 5});
}

TEST_CASE("a replayed step allocates nothing", "[capture]") {
  const std::vector<Batch> batches = make_batches(8, 16, 12, 3, DType::Float32);
  Trainer trainer(OptimizerKind::Adam, 0.25, DType::Float32);
  CapturedStep step([&](const std::vector<Tensor>& in) { return trainer.step(in); });
  check_replays_allocate_nothing(step, as_inputs(batches));
#if TAPEGRAD_COUNTS_ALLOCATIONS
  // The count itself works: an eager step allocates.
  const long before = allocation_count();
  trainer.step({batches[1].x, batches[1].y});
  CHECK(allocation_count() - before > 10);
#endif
}

TEST_CASE("a replay follows a learning rate changed between calls", "[capture]") {
  const std::vector<Batch> batches = make_batches(30, 16, 12, 3, DType::Float64);
  auto run = [&](bool capture) {
    Trainer t(OptimizerKind::Adam, 0.0, DType::Float64);
    optim::StepLR schedule(*t.optimizer, 10, 0.5);
    CapturedStep step([&](const std::vector<Tensor>& in) { return t.step(in); });
    std::vector<double> losses;
    for (std::size_t i = 0; i < batches.size(); ++i) {
      const std::vector<Tensor> in{batches[i].x, batches[i].y};
      losses.push_back(capture ? step(in)[0].item() : t.step(in)[0].item());
      schedule.step();
    }
    return std::pair{losses, t.weights()};
  };
  const auto eager = run(false);
  const auto captured = run(true);
  CHECK(captured.first == eager.first);
  CHECK(captured.second == eager.second);
}

TEST_CASE("new input shapes are refused, or captured again when asked", "[capture]") {
  Trainer trainer(OptimizerKind::Adam, 0.0, DType::Float32);
  const std::vector<Batch> full = make_batches(2, 16, 12, 3, DType::Float32);
  const std::vector<Batch> last = make_batches(1, 5, 12, 3, DType::Float32);
  auto fn = [&](const std::vector<Tensor>& in) { return trainer.step(in); };

  CapturedStep strict(fn);
  CHECK_THROWS_WITH(strict.replay({full[0].x, full[0].y}), Contains("nothing has been captured yet"));
  strict({full[0].x, full[0].y});
  CHECK_THROWS_WITH(strict({last[0].x, last[0].y}),
                    Contains("input 0 is float32 [5x12], the step was captured with float32 [16x12]"));
  CHECK_THROWS_WITH(strict({full[1].x.to(DType::Float64), full[1].y}),
                    Contains("input 0 is float64 [16x12], the step was captured with float32 [16x12]"));
  CHECK_THROWS_WITH(strict({full[1].x}), Contains("the step was captured with 2 inputs, got 1"));

  CapturedStep flexible(fn, {.recapture_on_new_shapes = true});
  flexible({full[0].x, full[0].y});
  const double small_loss = flexible({last[0].x, last[0].y})[0].item();
  CHECK(flexible.num_programs() == 2);
  flexible({full[1].x, full[1].y});
  CHECK(flexible.num_programs() == 2);
  CHECK(std::isfinite(small_loss));
}

TEST_CASE("capture refuses value reads and ops it cannot replay, naming them", "[capture]") {
  Trainer trainer(OptimizerKind::Adam, 0.0, DType::Float32);
  const std::vector<Batch> b = make_batches(1, 16, 12, 3, DType::Float32);
  CapturedStep reads([&](const std::vector<Tensor>& in) {
    std::vector<Tensor> out = trainer.step(in);
    if (out[0].item() > 100) out[0] = out[0] * 2.0;
    return out;
  });
  CHECK_THROWS_WITH(reads({b[0].x, b[0].y}), Contains("capture: item() reads a tensor's value while the step is "
                                                      "being captured"));
  CapturedStep nested([&](const std::vector<Tensor>& in) {
    CapturedStep inner([](const std::vector<Tensor>& x) { return x; });
    inner(in);
    return in;
  });
  CHECK_THROWS_WITH(nested({b[0].x}), Contains("a step is already being captured on this thread"));
  {
    Tensor w = full({3}, 1.0).requires_grad_();
    w.set_name("w");
    int calls = 0;
    w.register_post_accumulate_grad_hook([&](Tensor&) { ++calls; });
    CapturedStep hooked([&](const std::vector<Tensor>& in) {
      Tensor loss = sum(w * in[0]);
      w.zero_grad();
      loss.backward();
      return std::vector<Tensor>{loss};
    });
    CHECK_THROWS_WITH(hooked({full({3}, 2.0)}),
                      Contains("capture: a post-accumulate-grad hook on 'w' runs host code, which a replay would not "
                               "run again"));
    CHECK(calls == 0);
  }
  CapturedStep clipped([&](const std::vector<Tensor>& in) {
    std::vector<Tensor> out = trainer.step(in);
    optim::clip_grad_norm_(trainer.model->parameters(), 1.0);
    return out;
  });
  CHECK_THROWS_WITH(clipped({b[0].x, b[0].y}), Contains("clip_grad_norm_ returns the norm as a number, which a "
                                                        "replay cannot update"));
  CapturedStep custom([](const std::vector<Tensor>& in) {
    Tensor y = empty(in[0].shape());
    float* out = y.data<float>();
    const float* x = in[0].data<float>();
    for (std::int64_t i = 0; i < y.numel(); ++i) out[i] = 2 * x[i];
    return std::vector<Tensor>{in[0] + y};
  });
  CHECK_THROWS_WITH(custom({b[0].x}), Contains("'add' reads a tensor float32 [16x12] that 'empty' computed outside "
                                               "any replayable kernel"));
  // The same op written with launch is captured.
  CapturedStep launched([](const std::vector<Tensor>& in) {
    Tensor y = empty(in[0].shape());
    launch(
        "double",
        [n = in[0].numel()](const float* x, float* out) {
          for (std::int64_t i = 0; i < n; ++i) out[i] = 2 * x[i];
        },
        in[0], y);
    return std::vector<Tensor>{in[0] + y};
  });
  launched({b[0].x});
  const Tensor x2 = full({16, 12}, 1.5);
  CHECK(launched({x2})[0].to_vector() == std::vector<double>(16 * 12, 4.5));
}

TEST_CASE("a replay after the model or optimizer changed under it throws", "[capture]") {
  const std::vector<Batch> b = make_batches(2, 16, 12, 3, DType::Float32);
  {
    Trainer trainer(OptimizerKind::Adam, 0.0, DType::Float32);
    CapturedStep step([&](const std::vector<Tensor>& in) { return trainer.step(in); });
    step({b[0].x, b[0].y});
    trainer.model->to(DType::Float64);
    CHECK_THROWS_WITH(step({b[1].x, b[1].y}),
                      Contains("'0.weight' was replaced or resized after capture (float32 [32x12] when captured, "
                               "now float64 [32x12] in a new buffer)"));
  }
  {
    Trainer trainer(OptimizerKind::Adam, 0.0, DType::Float32);
    CapturedStep step([&](const std::vector<Tensor>& in) { return trainer.step(in); });
    step({b[0].x, b[0].y});
    trainer.optimizer->load_state_dict(trainer.optimizer->state_dict());
    CHECK_THROWS_WITH(step({b[1].x, b[1].y}), Contains("Adam's groups or state were replaced after capture"));
  }
  {
    // A step that never resets its gradients adds to them when eager; the
    // program would replace them, so it refuses to.
    Trainer trainer(OptimizerKind::Adam, 0.0, DType::Float32);
    CapturedStep step([&](const std::vector<Tensor>& in) {
      Tensor loss = cross_entropy((*trainer.model)(in[0]), in[1]);
      loss.backward();
      return std::vector<Tensor>{loss};
    });
    step({b[0].x, b[0].y});
    CHECK_THROWS_WITH(step({b[1].x, b[1].y}), Contains("holds a gradient, and the captured step would replace it"));
    trainer.optimizer->zero_grad();
    step({b[1].x, b[1].y});
    CHECK(trainer.model->parameters()[0].grad().defined());
  }
}

namespace {

// A small CNN of examples/mnist_cnn.cpp's shape on 12x12 images of 3
// classes: the class is the band (top, middle, bottom) with the largest sum.
struct CnnCase {
  bool batch_norm = false;
  double dropout = 0;
  bool channel_dropout = false;  // Dropout2d after the first block
  bool average_pool = false;     // AvgPool2d instead of MaxPool2d
  DType dtype = DType::Float32;
};

std::vector<Batch> make_image_batches(int count, DType dtype) {
  Generator data(5);
  std::vector<Batch> batches;
  for (int i = 0; i < count; ++i) {
    Tensor x = randn({8, 1, 12, 12}, dtype, 0, 1, &data);
    const std::vector<double> v = x.to_vector();
    std::vector<std::int64_t> labels(8);
    for (std::size_t n = 0; n < labels.size(); ++n) {
      double bands[3] = {0, 0, 0};
      for (std::size_t p = 0; p < 144; ++p) bands[p / 48] += v[n * 144 + p];
      labels[n] = std::max_element(bands, bands + 3) - bands;
    }
    batches.push_back({x, from_indices(labels, Shape{8})});
  }
  return batches;
}

struct CnnTrainer {
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<optim::Adam> optimizer;

  explicit CnnTrainer(const CnnCase& c) {
    manual_seed(13);
    model = std::make_shared<nn::Sequential>();
    auto block = [&](std::int64_t in, std::int64_t out) {
      model->add(std::make_shared<nn::Conv2d>(in, out, 3, Conv2dOptions{.padding = 1}));
      if (c.batch_norm) model->add(std::make_shared<nn::BatchNorm2d>(out));
      model->add(std::make_shared<nn::ReLU>());
      if (c.average_pool) {
        model->add(std::make_shared<nn::AvgPool2d>(2));
      } else {
        model->add(std::make_shared<nn::MaxPool2d>(2));
      }
    };
    block(1, 4);
    if (c.channel_dropout) model->add(std::make_shared<nn::Dropout2d>(0.2));
    block(4, 8);
    model->add(std::make_shared<nn::Flatten>());
    model->add(std::make_shared<nn::Linear>(8 * 3 * 3, 16));
    model->add(std::make_shared<nn::ReLU>());
    if (c.dropout > 0) model->add(std::make_shared<nn::Dropout>(c.dropout));
    model->add(std::make_shared<nn::Linear>(16, 3));
    model->to(c.dtype);
    model->train();
    optimizer = std::make_unique<optim::Adam>(model->parameters(), optim::AdamOptions{.lr = 1e-2});
  }

  std::vector<Tensor> step(const std::vector<Tensor>& in) {
    Tensor loss = cross_entropy((*model)(in[0]), in[1]);
    optimizer->zero_grad();
    loss.backward();
    optimizer->step();
    return {loss};
  }

  // Parameters and buffers (BatchNorm's running statistics).
  std::vector<double> state() const {
    std::vector<double> all;
    for (const auto& [name, t] : model->state_dict()) {
      const std::vector<double> v = t.to_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  }
};

// Runs a test with the convolution backend set, and puts the previous one back.
struct ConvBackendScope {
  ConvBackend previous = conv_backend();
  explicit ConvBackendScope(ConvBackend backend) { set_conv_backend(backend); }
  ~ConvBackendScope() { set_conv_backend(previous); }
};

}  // namespace

TEST_CASE("a captured CNN step is bit-identical to eager over 100 steps", "[capture]") {
  const ConvBackendScope im2col(ConvBackend::Im2col);
  for (const CnnCase c : {CnnCase{.dtype = DType::Float32}, CnnCase{.batch_norm = true, .dtype = DType::Float32},
                          CnnCase{.batch_norm = true, .dropout = 0.3, .dtype = DType::Float32},
                          CnnCase{.dropout = 0.25, .channel_dropout = true, .dtype = DType::Float64},
                          CnnCase{.batch_norm = true, .dtype = DType::Float64},
                          CnnCase{.batch_norm = true, .dropout = 0.2, .average_pool = true, .dtype = DType::Float32}}) {
    CAPTURE(c.batch_norm, c.dropout, c.channel_dropout, c.average_pool, dtype_name(c.dtype));
    const std::vector<Batch> batches = make_image_batches(100, c.dtype);

    CnnTrainer eager(c);
    std::vector<double> eager_losses;
    for (const Batch& b : batches) eager_losses.push_back(eager.step({b.x, b.y})[0].item());

    CnnTrainer captured(c);
    CapturedStep step([&](const std::vector<Tensor>& in) { return captured.step(in); });
    std::vector<double> captured_losses;
    for (const Batch& b : batches) captured_losses.push_back(step({b.x, b.y})[0].item());

    REQUIRE(step.num_programs() == 1);
    CHECK(step.num_kernels() > 30);
    CHECK(captured_losses == eager_losses);
    CHECK(captured.state() == eager.state());
    CHECK(eager_losses.back() < eager_losses.front());
  }
}

TEST_CASE("a replayed CNN step allocates nothing", "[capture]") {
  const ConvBackendScope im2col(ConvBackend::Im2col);
  const std::vector<Batch> batches = make_image_batches(8, DType::Float32);
  CnnTrainer trainer(CnnCase{.batch_norm = true, .dropout = 0.25, .channel_dropout = true});
  CapturedStep step([&](const std::vector<Tensor>& in) { return trainer.step(in); });
  check_replays_allocate_nothing(step, as_inputs(batches));
}

TEST_CASE("capture refuses the oneDNN convolution backend, whose primitives allocate when they run", "[capture]") {
  if (!onednn_available()) return;  // built without oneDNN: nothing to refuse
  const ConvBackendScope onednn(ConvBackend::OneDnn);
  const std::vector<Batch> batches = make_image_batches(2, DType::Float32);
#if TAPEGRAD_COUNTS_ALLOCATIONS
  // The measurement behind the refusal: with its primitives cached (the
  // first call builds them), a oneDNN convolution still allocates.
  {
    const Tensor w = randn({4, 1, 3, 3});
    const NoGradGuard no_grad;
    conv2d(batches[0].x, w, Tensor(), {.padding = 1});
    const long before = allocation_count();
    const Tensor y = conv2d(batches[1].x, w, Tensor(), {.padding = 1});
    const long during = allocation_count() - before;
    CAPTURE(during);
    CHECK(during > 1);  // more than the output tensor's
  }
#endif
  CnnTrainer trainer(CnnCase{});
  CapturedStep step([&](const std::vector<Tensor>& in) { return trainer.step(in); });
  CHECK_THROWS_WITH(step({batches[0].x, batches[0].y}),
                    Contains("capture: 'conv2d' runs on the oneDNN backend, whose primitives allocate every time they "
                             "run") &&
                        Contains("set_conv_backend(ConvBackend::Im2col)"));
}

TEST_CASE("captured transposed and 1-D convolutions with bias are bit-identical to eager", "[capture]") {
  const ConvBackendScope im2col(ConvBackend::Im2col);
  // Images [8, 4, 5, 5] through a strided transposed convolution with bias
  // (the input-gradient kernel forward, conv2d and the weight gradient
  // backward), and sequences [8, 3, 12] through conv1d, each to the same
  // 3 classes.
  Generator data(3);
  std::vector<std::vector<Tensor>> batches;
  for (int i = 0; i < 20; ++i) {
    std::vector<std::int64_t> labels(8);
    for (std::size_t n = 0; n < labels.size(); ++n) labels[n] = static_cast<std::int64_t>((n + i) % 3);
    batches.push_back({randn({8, 4, 5, 5}, DType::Float64, 0, 1, &data), randn({8, 3, 12}, DType::Float64, 0, 1, &data),
                       from_indices(labels, Shape{8})});
  }
  auto run = [&](bool capture) {
    Generator init(17);
    std::vector<Tensor> p{randn({4, 2, 3, 3}, DType::Float64, 0, 0.3, &init),
                          randn({2}, DType::Float64, 0, 0.1, &init),
                          randn({3, 2 * 11 * 11}, DType::Float64, 0, 0.1, &init),
                          randn({5, 3, 3}, DType::Float64, 0, 0.3, &init),
                          randn({5}, DType::Float64, 0, 0.1, &init),
                          randn({3, 5 * 12}, DType::Float64, 0, 0.1, &init)};
    for (Tensor& t : p) t.requires_grad_();
    optim::Adam adam(p, {.lr = 1e-2});
    auto step_fn = [&](const std::vector<Tensor>& in) {
      const Tensor images = relu(conv_transpose2d(in[0], p[0], p[1], {.stride = 2}));
      const Tensor sequences = relu(conv1d(in[1], p[3], p[4], {.padding = 1}));
      Tensor loss = cross_entropy(linear(flatten(images, 1), p[2]), in[2]) +
                    cross_entropy(linear(flatten(sequences, 1), p[5]), in[2]);
      adam.zero_grad();
      loss.backward();
      adam.step();
      return std::vector<Tensor>{loss};
    };
    CapturedStep step(step_fn);
    std::vector<double> losses;
    for (const auto& b : batches) losses.push_back(capture ? step(b)[0].item() : step_fn(b)[0].item());
    std::vector<double> weights;
    for (const Tensor& t : p) {
      const std::vector<double> v = t.to_vector();
      weights.insert(weights.end(), v.begin(), v.end());
    }
    return std::pair{losses, weights};
  };
  const auto eager = run(false);
  const auto captured = run(true);
  CHECK(captured.first == eager.first);
  CHECK(captured.second == eager.second);
}

TEST_CASE("a captured CNN inference step in evaluation mode matches eager", "[capture]") {
  const ConvBackendScope im2col(ConvBackend::Im2col);
  // Evaluation reads BatchNorm's running statistics, and without gradients
  // max pooling keeps no argmax indices: the other branches of those kernels.
  const std::vector<Batch> batches = make_image_batches(6, DType::Float32);
  CnnTrainer trainer(CnnCase{.batch_norm = true, .dropout = 0.3});
  for (int i = 0; i < 3; ++i) trainer.step({batches[i].x, batches[i].y});  // running statistics away from 0 and 1
  trainer.model->eval();
  auto infer = [&](const std::vector<Tensor>& in) {
    const NoGradGuard no_grad;
    return std::vector<Tensor>{(*trainer.model)(in[0])};
  };
  CapturedStep step(infer);
  for (const Batch& b : batches) {
    const std::vector<double> eager = infer({b.x})[0].to_vector();
    CHECK(step({b.x})[0].to_vector() == eager);
  }
}

namespace {

// Embedding -> LSTM -> Linear over character ids, trained like
// examples/char_lstm.cpp: the state the LSTM ends a chunk in, detached,
// starts the next chunk, as extra inputs and outputs of the step.
struct LstmTrainer {
  static constexpr std::int64_t kVocab = 11, kEmbedding = 6, kHidden = 8;
  std::shared_ptr<nn::Embedding> embedding;
  std::shared_ptr<nn::LSTM> lstm;
  std::shared_ptr<nn::Linear> head;
  std::unique_ptr<optim::Adam> optimizer;
  std::vector<Tensor> parameters;

  LstmTrainer(std::int64_t layers, DType dtype) {
    manual_seed(5);
    embedding = std::make_shared<nn::Embedding>(kVocab, kEmbedding);
    lstm = std::make_shared<nn::LSTM>(kEmbedding, kHidden, nn::RecurrentOptions{.num_layers = layers});
    head = std::make_shared<nn::Linear>(kHidden, kVocab);
    for (nn::Module* m : std::initializer_list<nn::Module*>{embedding.get(), lstm.get(), head.get()}) {
      m->to(dtype);
      for (const Tensor& p : m->parameters()) parameters.push_back(p);
    }
    optimizer = std::make_unique<optim::Adam>(parameters, optim::AdamOptions{.lr = 1e-2});
  }

  // in: ids [T, B], targets [T·B], h and c [layers, B, hidden]; out: the
  // loss and the new, detached h and c.
  std::vector<Tensor> step(const std::vector<Tensor>& in) {
    const nn::RecurrentOutput out = lstm->forward((*embedding)(in[0]), {in[2], in[3]});
    Tensor loss = cross_entropy((*head)(reshape(out.output, {-1, kHidden})), in[1]);
    optimizer->zero_grad();
    loss.backward();
    optimizer->step();
    return {loss, out.state.h.detach(), out.state.c.detach()};
  }

  std::vector<double> weights() const {
    std::vector<double> all;
    for (const Tensor& p : parameters) {
      const std::vector<double> v = p.to_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  }
};

// Chunk k of B streams over a learnable text (each stream counts up
// through the vocabulary from its own start, with a hiccup every 7th
// character): inputs [T, B] and the following characters [T·B].
std::pair<Tensor, Tensor> text_chunk(std::int64_t k, std::int64_t steps, std::int64_t streams) {
  auto id = [](std::int64_t b, std::int64_t p) { return (3 * b + p + p / 7) % LstmTrainer::kVocab; };
  std::vector<std::int64_t> inputs, targets;
  for (std::int64_t t = 0; t < steps; ++t) {
    for (std::int64_t b = 0; b < streams; ++b) {
      inputs.push_back(id(b, k * steps + t));
      targets.push_back(id(b, k * steps + t + 1));
    }
  }
  return {from_indices(inputs, {steps, streams}), from_indices(targets, {steps * streams})};
}

}  // namespace

TEST_CASE("a captured LSTM step is bit-identical to eager over 100 steps", "[capture]") {
  constexpr std::int64_t kSteps = 5, kBatch = 3;
  for (const std::int64_t layers : {1, 2}) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      CAPTURE(layers, dtype_name(dtype));
      auto run = [&](bool capture) {
        LstmTrainer trainer(layers, dtype);
        CapturedStep step([&](const std::vector<Tensor>& in) { return trainer.step(in); });
        Tensor h = zeros({layers, kBatch, LstmTrainer::kHidden}, dtype);
        Tensor c = zeros({layers, kBatch, LstmTrainer::kHidden}, dtype);
        std::vector<double> losses;
        for (std::int64_t k = 0; k < 100; ++k) {
          const auto [x, y] = text_chunk(k, kSteps, kBatch);
          const std::vector<Tensor> in{x, y, h, c};
          const std::vector<Tensor> out = capture ? step(in) : trainer.step(in);
          losses.push_back(out[0].item());
          // Clones: a replay's outputs are its own buffers, reused by the next call.
          h = out[1].clone();
          c = out[2].clone();
        }
        if (capture) {
          CHECK(step.num_programs() == 1);
          CHECK(step.num_kernels() > 20);
        }
        return std::tuple{losses, trainer.weights(), h.to_vector(), c.to_vector()};
      };
      const auto [eager_losses, eager_weights, eager_h, eager_c] = run(false);
      const auto [captured_losses, captured_weights, captured_h, captured_c] = run(true);
      CHECK(captured_losses == eager_losses);
      CHECK(captured_weights == eager_weights);
      CHECK(captured_h == eager_h);
      CHECK(captured_c == eager_c);
      CHECK(eager_losses.back() < 0.5 * eager_losses.front());
    }
  }
}

TEST_CASE("a replayed LSTM step allocates nothing", "[capture]") {
  constexpr std::int64_t kSteps = 5, kBatch = 3, kLayers = 2;
  LstmTrainer trainer(kLayers, DType::Float32);
  CapturedStep step([&](const std::vector<Tensor>& in) { return trainer.step(in); });
  const Tensor h = zeros({kLayers, kBatch, LstmTrainer::kHidden});
  const Tensor c = zeros({kLayers, kBatch, LstmTrainer::kHidden});
  std::vector<std::vector<Tensor>> inputs;
  for (std::int64_t k = 0; k < 8; ++k) {
    const auto [x, y] = text_chunk(k, kSteps, kBatch);
    inputs.push_back({x, y, h, c});
  }
  check_replays_allocate_nothing(step, inputs);
}

TEST_CASE("a replayed lookup checks the indices it is given", "[capture]") {
  LstmTrainer trainer(1, DType::Float32);
  CapturedStep step([&](const std::vector<Tensor>& in) { return trainer.step(in); });
  const Tensor h = zeros({1, 3, LstmTrainer::kHidden});
  const auto [x, y] = text_chunk(0, 5, 3);
  step({x, y, h, h});
  const Tensor bad = from_indices({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2}, {5, 3});
  CHECK_THROWS_WITH(step({bad, y, h, h}),
                    Contains("embedding: index 11 at indices[3,2] is out of range for a table of 11 rows"));
}

TEST_CASE("capture refuses sequence lengths, which a replay would not see", "[capture]") {
  LstmTrainer trainer(1, DType::Float32);
  CapturedStep step([&](const std::vector<Tensor>& in) {
    const nn::RecurrentOutput out = trainer.lstm->forward((*trainer.embedding)(in[0]), {}, {5, 3, 2});
    return std::vector<Tensor>{sum(out.output)};
  });
  const auto [x, y] = text_chunk(0, 5, 3);
  CHECK_THROWS_WITH(step({x}), Contains("sequence lengths cannot be captured"));
  CapturedStep direct([&](const std::vector<Tensor>& in) {
    const Tensor e = (*trainer.embedding)(in[0]);
    const Tensor zero = zeros({3, LstmTrainer::kHidden});
    const Tensor w_ih = trainer.lstm->parameter("weight_ih_l0"), w_hh = trainer.lstm->parameter("weight_hh_l0");
    return std::vector<Tensor>{
        lstm_sequence(e, {zero, zero}, w_ih, w_hh, Tensor(), Tensor(), {{3, 3, 2, 1, 1}}).output};
  });
  CHECK_THROWS_WITH(direct({x}), Contains("lstm_sequence: per-step batch sizes (sequences of different lengths) "
                                          "cannot be captured"));
}

TEST_CASE("a captured step of shape, reduction and softmax ops matches eager", "[capture]") {
  struct Model {
    Tensor w;
    std::unique_ptr<optim::SGD> optimizer;
    Model() {
      manual_seed(3);
      w = randn({5, 6}, DType::Float64);
      w.requires_grad_();
      optimizer = std::make_unique<optim::SGD>(std::vector<Tensor>{w}, optim::SGDOptions{.lr = 0.1});
    }
    // in: x [4, 5], idx [3] (rows), gidx [3, 2] (per-row columns).
    std::vector<Tensor> step(const std::vector<Tensor>& in) {
      const Tensor z = matmul(in[0], w);  // [4, 6]
      const Tensor p = softmax(z, 1), lp = log_softmax(z, 0);
      const Tensor joined = concat({p, lp}, 1);                   // [4, 12]
      const Tensor every_other = slice(joined, 1, 1, 11, 2);      // [4, 5]
      const Tensor picked = index_select(every_other, 0, in[1]);  // [3, 5]
      const Tensor gathered = gather(picked, 1, in[2]);           // [3, 2]
      const std::vector<Tensor> halves = chunk(joined, 2, 1);
      const Tensor restacked = stack(unbind(halves[1], 0), 1);  // [6, 4]
      Tensor loss = sum(gathered) + mean(joined * joined) + sum(max(restacked, {0})) + mean(var(z, {1}));
      optimizer->zero_grad();
      loss.backward();
      optimizer->step();
      return {loss, p, lp, picked, gathered, sum(z, {0}), argmax(z, 1)};
    }
  };
  Model eager, captured;
  CapturedStep step([&](const std::vector<Tensor>& in) { return captured.step(in); });
  Generator data(17);
  for (int k = 0; k < 12; ++k) {
    CAPTURE(k);
    const Tensor x = randn({4, 5}, DType::Float64, 0, 1, &data);
    const Tensor idx = from_indices({k % 4, (k + 1) % 4, (k * 3) % 4}, {3});
    const Tensor gidx = from_indices({k % 5, 4 - k % 5, (k + 2) % 5, 0, (k * 2) % 5, 1}, {3, 2});
    const std::vector<Tensor> expected = eager.step({x, idx, gidx});
    const std::vector<Tensor>& got = step({x, idx, gidx});
    REQUIRE(got.size() == expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      CAPTURE(i);
      CHECK(got[i].to_vector() == expected[i].to_vector());
    }
    CHECK(captured.w.to_vector() == eager.w.to_vector());
  }
  CHECK(step.num_programs() == 1);
}

TEST_CASE("captured recurrent cells, GRU and RNN sequences and the scatter ops match eager", "[capture]") {
  // Every parameter trained by SGD, every op's first-order backward replayed.
  struct Model {
    std::vector<Tensor> params;
    std::unique_ptr<optim::SGD> optimizer;
    Model() {
      manual_seed(9);
      for (const Shape& s : {Shape{12, 3}, Shape{12, 4}, Shape{12}, Shape{12}, Shape{16, 3}, Shape{16, 4}, Shape{4, 3},
                             Shape{4, 4}, Shape{1}}) {
        // α of soft_exponential at 0.3: a negative one takes a log that is NaN past -1/α.
        Tensor p = s == Shape{1} ? full(s, 0.3, DType::Float64) : randn(s, DType::Float64, 0, 0.5);
        p.requires_grad_();
        params.push_back(p);
      }
      optimizer = std::make_unique<optim::SGD>(params, optim::SGDOptions{.lr = 0.01});
    }
    // in: x [T=4, B=2, 3], h [2, 4], idx [2], index [2, 4].
    std::vector<Tensor> step(const std::vector<Tensor>& in) {
      const Tensor& x = in[0];
      const Tensor& h = in[1];
      const Tensor gru = gru_sequence(x, h, params[0], params[1], params[2], params[3]).output;  // [4, 2, 4]
      const Tensor rnn = rnn_sequence(x, h, params[6], params[7], Tensor(), Tensor(), RnnActivation::Relu,
                                      {.batch_sizes = {}, .reverse = true})
                             .output;
      const Tensor x0 = squeeze(slice(x, 0, 0, 1), 0);
      const LstmState cell = lstm_cell(x0, {h, h}, params[4], params[5]);
      const Tensor g = gru_cell(x0, cell.h, params[0], params[1], params[2], params[3]);
      const Tensor r = rnn_cell(x0, g, params[6], params[7]);
      const Tensor added = index_add(r, 0, in[2], cell.c);
      const Tensor scattered = scatter_add(added, 1, in[3], soft_exponential(g, params[8]));
      Tensor loss = mean(gru * gru) + sum(rnn) + sum(scattered * scattered) + sum(min(added, {1}));
      optimizer->zero_grad();
      loss.backward();
      optimizer->step();
      return {loss, gru, rnn, scattered};
    }
  };
  Model eager, captured;
  CapturedStep step([&](const std::vector<Tensor>& in) { return captured.step(in); });
  Generator data(23);
  for (int k = 0; k < 10; ++k) {
    CAPTURE(k);
    const Tensor x = randn({4, 2, 3}, DType::Float64, 0, 1, &data);
    const Tensor h = randn({2, 4}, DType::Float64, 0, 1, &data);
    const Tensor idx = from_indices({k % 2, 1}, {2});
    const Tensor index = from_indices({k % 4, 3, 2, (k + 1) % 4, 0, k % 4, 1, 2}, {2, 4});
    const std::vector<Tensor> expected = eager.step({x, h, idx, index});
    const std::vector<Tensor>& got = step({x, h, idx, index});
    REQUIRE(std::isfinite(expected[0].item()));
    for (std::size_t i = 0; i < got.size(); ++i) {
      CAPTURE(i);
      CHECK(got[i].to_vector() == expected[i].to_vector());
    }
    for (std::size_t p = 0; p < eager.params.size(); ++p) {
      CAPTURE(p);
      CHECK(captured.params[p].to_vector() == eager.params[p].to_vector());
    }
  }
  CHECK(step.num_programs() == 1);
}
