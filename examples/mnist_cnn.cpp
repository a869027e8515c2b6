// A small convolutional network learns the handwritten digits: two 5x5
// convolutions (32 and 64 filters), each followed by ReLU and 2x2 max
// pooling, then a 128-unit hidden layer and the 10 classes. Trained with
// Adam on random shifts of the training images and a cosine schedule; it
// prints per-epoch validation accuracy and finally `test_accuracy=0.9xxx`,
// and saves a checkpoint and the learning curves.
//
// Why it beats the MLP (0.972 on the same split): a convolution applies the
// same small filter at every position, so what it learns about a stroke in
// one place holds everywhere, with 800 weights per filter bank where a
// dense layer needs 784 per unit; pooling then makes the features tolerate
// small shifts.
//
// Data: the four MNIST IDX files in --data (scripts/get-data makes the
// 8,000/2,000 set; the full 60,000/10,000 MNIST works too).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tapegrad/tapegrad.hpp>

#include "command_line.hpp"
#include "distributed_support.hpp"
#include "example_support.hpp"
#include "mnist_support.hpp"

using namespace tapegrad;

namespace {

const char* kDescription =
    "mnist_cnn: a small CNN (two 5x5 convolution blocks, a dense layer) learns the MNIST digits with Adam and "
    "prints test_accuracy=; it also draws its filters, feature maps and graph";

struct CnnOptions {
  std::int64_t channels1 = 32, channels2 = 64, hidden = 128;
  bool batch_norm = false;
  double dropout = 0;
};

// conv 5x5 (padding 2 keeps 28x28) → [BatchNorm2d] → ReLU → max-pool 2 →
// 14x14, the same again → 7x7, then dense layers.
std::shared_ptr<nn::Sequential> make_cnn(const CnnOptions& o) {
  auto model = std::make_shared<nn::Sequential>();
  auto conv_block = [&](std::int64_t in, std::int64_t out) {
    model->add(std::make_shared<nn::Conv2d>(in, out, 5, Conv2dOptions{.padding = 2},
                                            nn::ConvParameters{.weight_init = nn::init::kaiming_uniform()}));
    if (o.batch_norm) model->add(std::make_shared<nn::BatchNorm2d>(out));
    model->add(std::make_shared<nn::ReLU>());
    model->add(std::make_shared<nn::MaxPool2d>(2));
  };
  conv_block(1, o.channels1);
  conv_block(o.channels1, o.channels2);
  model->add(std::make_shared<nn::Flatten>());
  model->add(std::make_shared<nn::Linear>(o.channels2 * 7 * 7, o.hidden,
                                          nn::LinearOptions{.weight_init = nn::init::kaiming_uniform()}));
  model->add(std::make_shared<nn::ReLU>());
  if (o.dropout > 0) model->add(std::make_shared<nn::Dropout>(o.dropout));
  model->add(std::make_shared<nn::Linear>(o.hidden, 10));
  return model;
}

// [N, 784] or [N, 28, 28] images as [N, 1, 28, 28].
data::Dataset as_images(const data::Dataset& set) {
  const Tensor& x = set.features();
  return data::Dataset(reshape(x, {x.shape(0), 1, 28, 28}), set.targets());
}

// A grid of small grey-scale images in one picture: `images` holds
// rows x cols images of h x w values each (row-major, one after the
// other), each scaled to its own range; `captions` one title per image
// (empty for none).
struct ImageGrid {
  std::string stem, title;
  std::int64_t rows = 1, cols = 1, h = 1, w = 1;
  std::vector<float> images = {};
  std::vector<std::string> captions = {};
};

void draw_grid(const std::string& out_dir, const ImageGrid& grid, bool quiet) {
  const examples::PlotFiles files = examples::plot_files(out_dir, grid.stem, "dat");
  {
    // One matrix per image, separated by two blank lines: gnuplot's "index"
    // then picks each one.
    std::ofstream out(files.data);
    for (std::int64_t k = 0; k < grid.rows * grid.cols; ++k) {
      for (std::int64_t y = 0; y < grid.h; ++y) {
        for (std::int64_t x = 0; x < grid.w; ++x) out << (x ? " " : "") << grid.images[(k * grid.h + y) * grid.w + x];
        out << '\n';
      }
      out << "\n\n";
    }
  }
  {
    std::ofstream gp(files.script);
    gp << train::gnuplot_png_terminal(static_cast<int>(110 * grid.cols), static_cast<int>(120 * grid.rows + 40),
                                      files.png)
       << "set termoption noenhanced\n"
       << "set multiplot layout " << grid.rows << "," << grid.cols << " title '" << grid.title << "'\n"
       << "set palette gray\nunset colorbox\nunset tics\nunset key\nset size ratio " << grid.h << ".0/" << grid.w
       << "\nset xrange [-0.5:" << grid.w - 0.5 << "]\nset yrange [" << grid.h - 0.5 << ":-0.5]\n";
    for (std::int64_t k = 0; k < grid.rows * grid.cols; ++k) {
      const std::string caption = k < static_cast<std::int64_t>(grid.captions.size()) ? grid.captions[k] : "";
      gp << "set title '" << caption << "'\nplot '" << files.data << "' index " << k << " matrix with image\n";
    }
    gp << "unset multiplot\nset output\n";
  }
  if (examples::run_gnuplot_or_note(files.script, files.png) && !quiet) {
    std::printf("picture: %s\n", files.png.c_str());
  }
}

// The first `count` maps of channel-major activations [1, C, h, w], each
// with its channel number as caption.
ImageGrid feature_maps(const Tensor& activations, std::int64_t count, std::int64_t cols, const std::string& stem,
                       const std::string& title) {
  ImageGrid grid{stem, title, (count + cols - 1) / cols, cols, activations.shape(2), activations.shape(3)};
  const Tensor maps = activations.to(DType::Float32);
  const float* v = maps.data<float>();
  grid.images.assign(v, v + grid.rows * grid.cols * grid.h * grid.w);
  for (std::int64_t k = 0; k < count; ++k) grid.captions.push_back("channel " + std::to_string(k));
  return grid;
}

// Teaching pictures of the trained net: the first layer's filters, and
// what one test digit looks like after each convolution block's ReLU; and
// the graph of that digit's forward and backward, with 4-D shapes on its
// edges.
void draw_what_the_net_learned(nn::Sequential& model, const data::Dataset& test_set, const std::string& out_dir,
                               bool quiet) {
  const Tensor digit = slice(test_set.features(), 0, 0, 1);  // [1, 1, 28, 28]
  {
    const examples::EvaluationMode evaluating(model);
    const auto first = model.at<nn::Conv2d>(0);
    const Tensor filters = first->weight().to(DType::Float32);
    const std::int64_t count = std::min<std::int64_t>(first->out_channels(), 32);
    ImageGrid grid{"mnist_cnn_filters", "First-layer 5x5 filters", (count + 7) / 8, 8,
                   first->kernel().h,   first->kernel().w};
    const float* f = filters.data<float>();  // [out, 1, 5, 5]: filter k's taps are contiguous
    grid.images.assign(f, f + grid.rows * grid.cols * grid.h * grid.w);
    draw_grid(out_dir, grid, quiet);

    Tensor x = digit;
    int block = 0;
    for (std::size_t i = 0; i < model.size(); ++i) {
      x = (*model[i])(x);
      const bool after_conv_block = model[i]->type_name() == "ReLU" && block < 2;
      if (!after_conv_block) continue;
      ++block;
      const std::int64_t maps = std::min<std::int64_t>(x.shape(1), 32);
      draw_grid(out_dir,
                feature_maps(x, maps, 8, "mnist_cnn_feature_maps_conv" + std::to_string(block),
                             "Test digit 0 after conv block " + std::to_string(block) +
                                 " (ReLU): " + std::to_string(x.shape(2)) + "x" + std::to_string(x.shape(3)) + " maps"),
                quiet);
    }
  }

  // The graph of one digit's loss after backward: every node with its
  // output's shape ([1x32x28x28] after the first convolution) and, for the
  // parameters, their gradients' summaries (in evaluation mode: batch norm
  // and dropout as at inference).
  model.eval();
  model.zero_grad();
  const Tensor loss = cross_entropy(model(digit), slice(test_set.targets(), 0, 0, 1));
  loss.backward();
  const tools::RenderResult graph =
      tools::save_dot(tools::to_dot(loss, {.precision = 3, .title = "mnist_cnn: one test digit's loss"}),
                      out_dir + "/mnist_cnn_graph", {.format = "svg"});
  model.zero_grad();
  if (!quiet) {
    std::printf("graph: %s%s\n", graph.dot_path.c_str(),
                graph.rendered ? (" and " + graph.image_path).c_str() : (" (" + graph.message + ")").c_str());
  }
}

int run(int argc, char** argv) {
  CnnOptions cnn;
  std::vector<std::int64_t> channels{32, 64};
  std::int64_t batch_size = 64;
  double lr = 1e-3;
  std::string schedule_name = "cosine";
  bool no_pictures = false;
  examples::MnistFlags common{.epochs = 12, .max_shift = 2, .out_dir = "mnist_cnn_out"};
  examples::CommandLine cli(kDescription);
  examples::add_mnist_flags(cli, common);
  cli.integer("--batch-size", batch_size, "mini-batch size", std::int64_t{1});
  cli.number("--lr", lr, "Adam's learning rate", examples::above(0));
  cli.sizes("--channels", channels, "filters of the two convolutions", 2);
  cli.integer("--hidden", cnn.hidden, "units of the hidden dense layer", std::int64_t{1});
  cli.flag("--batch-norm", cnn.batch_norm, "batch normalisation after each convolution (BatchNorm2d)");
  cli.number("--dropout", cnn.dropout, "dropout before the last layer", examples::half_open(0, 1));
  cli.choice("--schedule", schedule_name, "learning-rate schedule per epoch", {"none", "cosine"});
  cli.flag("--no-pictures", no_pictures, "skip the pictures of filters and feature maps and the graph");
  if (!cli.parse(argc, argv)) return 0;
  cnn.channels1 = channels[0];
  cnn.channels2 = channels[1];
  const bool pictures = !no_pictures;
  const auto& [data_dir, epochs, max_shift, val_fraction, max_train, seed, out_dir, min_accuracy, quiet, capture,
               distributed, prefetch] = common;
  examples::Distributed world(distributed, capture);
  const std::int64_t local_batch = world.local_batch(batch_size);
  const bool print = !quiet && world.rank() == 0;

  world.manual_seed(seed);
  data::MnistData mnist = data::load_mnist(data_dir, {.flatten = true});
  if (mnist.train.features().shape(1) != 28 * 28) {
    throw std::invalid_argument("mnist_cnn expects 28x28 images, got " +
                                std::to_string(mnist.train.features().shape(1)) + " pixels");
  }
  const data::Dataset train_set = examples::random_subset(mnist.train, max_train, seed);
  const auto [fit_flat, val_flat] = train::train_validation_split(train_set, val_fraction, seed);
  const data::Dataset fit_set = as_images(fit_flat), val_set = as_images(val_flat);
  const data::Dataset test_set = as_images(mnist.test);
  if (print) {
    std::printf("data: %lld training, %lld validation, %lld test images from %s\n",
                static_cast<long long>(fit_set.size()), static_cast<long long>(val_set.size()),
                static_cast<long long>(test_set.size()), data_dir.c_str());
  }

  auto model = make_cnn(cnn);
  world.wrap(*model);
  if (print) {
    std::ostringstream tree;
    tree << *model;
    std::printf("model:\n%s\n", tree.str().c_str());
  }
  optim::Adam optimizer(model->parameters(), {.lr = lr});
  std::unique_ptr<optim::LRScheduler> schedule;
  if (schedule_name == "cosine") schedule = std::make_unique<optim::CosineAnnealingLR>(optimizer, epochs);

  const examples::TrainingResult trained =
      examples::train_classifier(*model, optimizer, schedule.get(), fit_set, val_set,
                                 {.epochs = epochs,
                                  .batch_size = local_batch,
                                  .seed = seed,
                                  .max_shift = max_shift,
                                  .side = 28,
                                  .quiet = !print,
                                  .prefetch = prefetch,
                                  .capture = capture,
                                  .rank = world.rank(),
                                  .replicas = world.size(),
                                  .train_forward = world.forward()});
  const double seconds = trained.seconds;

  const examples::Evaluation test = examples::evaluate(*model, test_set);
  world.report_throughput(static_cast<double>(trained.samples) / trained.seconds);
  if (world.rank() != 0) return test.accuracy >= min_accuracy ? 0 : 1;
  std::filesystem::create_directories(out_dir);
  if (pictures) draw_what_the_net_learned(*model, test_set, out_dir, quiet);
  examples::save_training(*model, optimizer, trained.history, out_dir, "mnist_cnn", "mnist_cnn_curves", "MNIST CNN",
                          quiet);
  std::printf("training_seconds=%.2f\n", seconds);
  std::printf("seconds_per_epoch=%.2f\n", seconds / static_cast<double>(std::max<std::int64_t>(epochs, 1)));
  std::printf("test_loss=%.4f\n", test.loss);
  std::printf("test_accuracy=%.4f\n", test.accuracy);
  return test.accuracy >= min_accuracy ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("mnist_cnn", argc, argv, run); }
