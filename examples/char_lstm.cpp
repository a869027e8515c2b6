// A character-level language model: an LSTM reads text one byte at a time
// and predicts the next byte. Embedding -> LSTM -> Linear to the
// vocabulary, trained with Adam and truncated backpropagation through time
// on Debian's fortune cookies (the `fortunes` package). Each epoch prints
// the validation bits per character beside the unigram entropy of the same
// text (what a model that knows only the letter frequencies pays), then
// the example writes a sample continuing a prompt and a checkpoint.
//
// Truncated BPTT: the training text is cut into B parallel streams, and
// every step trains on the next T characters of each. The LSTM starts each
// chunk from the state the previous chunk ended in, so it carries context
// across chunk boundaries, but that state is detached first: backward then
// stops at the chunk's start, and a step costs O(T) however long the text.
//
// Held-out text: whole fortunes (entries between '%' lines), chosen at
// random, so that no validation sentence was seen in part while training.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>
#include <tapegrad/tapegrad.hpp>

#include "command_line.hpp"
#include "example_support.hpp"

using namespace tapegrad;

namespace {

const char* kDescription =
    "char_lstm: an LSTM learns to predict the next byte of Debian's fortune cookies, reports validation bits per "
    "character against the unigram entropy, and samples a continuation of a prompt.";

constexpr double kLn2 = 0.69314718055994530942;

// Embedding -> LSTM -> Linear, time-first: ids [T, B] give logits [T·B, V],
// row t·B + b for step t of stream b. The vocabulary is a buffer
// ("symbols", its bytes as int64), so a checkpoint is all that sampling needs.
class CharModel : public nn::Module {
 public:
  struct Sizes {
    std::int64_t embedding = 64, hidden = 128, layers = 1;
    double dropout = 0;
  };
  struct Result {
    Tensor logits;
    nn::RecurrentState state;
  };

  CharModel(const data::CharVocabulary& vocabulary, const Sizes& sizes)
      : Module("CharModel"), vocabulary_(vocabulary), hidden_(sizes.hidden) {
    const std::int64_t v = vocabulary.size();
    std::vector<std::int64_t> bytes;
    for (const char c : vocabulary.symbols()) bytes.push_back(static_cast<unsigned char>(c));
    register_buffer("symbols", from_indices(bytes, {v}));
    embedding_ = register_module("embedding", std::make_shared<nn::Embedding>(v, sizes.embedding));
    lstm_ = register_module(
        "lstm", std::make_shared<nn::LSTM>(sizes.embedding, sizes.hidden,
                                           nn::RecurrentOptions{.num_layers = sizes.layers, .dropout = sizes.dropout}));
    head_ = register_module("head", std::make_shared<nn::Linear>(sizes.hidden, v));
  }

  Result run(const Tensor& ids, const nn::RecurrentState& state) {
    nn::RecurrentOutput out = lstm_->forward((*embedding_)(ids), state);
    return {(*head_)(reshape(out.output, {-1, hidden_})), out.state};
  }
  // From a zero state.
  Tensor forward(const Tensor& ids) override { return run(ids, {}).logits; }

  const data::CharVocabulary& vocabulary() const { return vocabulary_; }

 private:
  data::CharVocabulary vocabulary_;
  std::int64_t hidden_;
  std::shared_ptr<nn::Embedding> embedding_;
  std::shared_ptr<nn::LSTM> lstm_;
  std::shared_ptr<nn::Linear> head_;
};

// A model shaped like the one a checkpoint holds (vocabulary, embedding,
// hidden size and layers read from its entries), with its weights loaded.
std::shared_ptr<CharModel> load_model(const std::string& path) {
  const nn::NamedTensors entries = io::load_npz(path);
  auto find = [&](const std::string& name) -> const Tensor* {
    for (const auto& [key, value] : entries) {
      if (key == "model/" + name) return &value;
    }
    return nullptr;
  };
  const Tensor* symbols = find("symbols");
  const Tensor* table = find("embedding.weight");
  const Tensor* recurrent = find("lstm.weight_hh_l0");
  if (!symbols || !table || !recurrent) throw std::runtime_error(path + ": not a char_lstm checkpoint");
  std::string bytes;
  for (const double b : symbols->to_vector()) bytes += static_cast<char>(static_cast<unsigned char>(b));
  CharModel::Sizes sizes{.embedding = table->shape(1), .hidden = recurrent->shape(1), .layers = 0};
  while (find("lstm.weight_hh_l" + std::to_string(sizes.layers))) ++sizes.layers;
  auto model = std::make_shared<CharModel>(data::CharVocabulary(bytes), sizes);
  io::load_checkpoint(path, *model);
  return model;
}

// B parallel streams over one text: stream b is the b-th of B equal
// consecutive pieces of ids[offset:]. Chunk k holds steps [k·T, k·T + T) of
// every stream (the last one may be shorter), as inputs [T, B] and the
// following characters as targets [T·B], in the model's row order. The
// index tensors are built per chunk, in one pass over plain integers.
class StreamChunks {
 public:
  StreamChunks(const std::vector<std::int64_t>& ids, std::int64_t streams, std::int64_t seq_len,
               std::int64_t offset = 0)
      : ids_(ids),
        streams_(streams),
        seq_len_(seq_len),
        offset_(offset),
        length_((static_cast<std::int64_t>(ids.size()) - offset) / streams) {
    if (length_ < 2) {
      throw std::invalid_argument("the text (" + std::to_string(ids.size()) + " characters) is too short for " +
                                  std::to_string(streams) + " streams");
    }
  }
  // Every stream predicts length - 1 characters.
  std::int64_t chunks() const { return (length_ - 1 + seq_len_ - 1) / seq_len_; }

  std::pair<Tensor, Tensor> chunk(std::int64_t k) const {
    const std::int64_t start = k * seq_len_;
    const std::int64_t steps = std::min(seq_len_, length_ - 1 - start);
    std::vector<std::int64_t> inputs(static_cast<std::size_t>(steps * streams_));
    std::vector<std::int64_t> targets(inputs.size());
    for (std::int64_t t = 0; t < steps; ++t) {
      for (std::int64_t b = 0; b < streams_; ++b) {
        const std::size_t at = static_cast<std::size_t>(offset_ + b * length_ + start + t);
        inputs[static_cast<std::size_t>(t * streams_ + b)] = ids_[at];
        targets[static_cast<std::size_t>(t * streams_ + b)] = ids_[at + 1];
      }
    }
    return {from_indices(inputs, {steps, streams_}), from_indices(targets, {steps * streams_})};
  }

 private:
  const std::vector<std::int64_t>& ids_;
  std::int64_t streams_, seq_len_, offset_, length_;
};

std::vector<std::int64_t> encode(const data::CharVocabulary& vocabulary, const std::string& text) {
  const Tensor ids = vocabulary.encode(text);
  return {ids.data<std::int64_t>(), ids.data<std::int64_t>() + ids.numel()};
}

// Entries laid end to end, each followed by a blank line, as one stream.
std::string join(const std::vector<std::string>& entries) {
  std::string text;
  for (const std::string& entry : entries) text += entry + "\n";
  return text;
}

// Mean bits per predicted character over the whole text, the state carried
// from chunk to chunk as in training (no graph: evaluation mode).
double bits_per_char(CharModel& model, const StreamChunks& chunks) {
  const examples::EvaluationMode evaluating(model);
  nn::RecurrentState state;
  double nats = 0;
  std::int64_t count = 0;
  for (std::int64_t k = 0; k < chunks.chunks(); ++k) {
    const auto [x, y] = chunks.chunk(k);
    CharModel::Result out = model.run(x, state);
    nats += cross_entropy(out.logits, y, Reduction::Sum).item();
    count += y.numel();
    state = out.state;
  }
  return nats / static_cast<double>(count) / kLn2;
}

// An index drawn from softmax(logits / temperature); the likeliest when
// temperature is 0.
std::int64_t draw(const std::vector<double>& logits, double temperature, std::mt19937_64& generator) {
  const auto likeliest = std::max_element(logits.begin(), logits.end());
  if (temperature <= 0) return likeliest - logits.begin();
  std::vector<double> weights(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i) weights[i] = std::exp((logits[i] - *likeliest) / temperature);
  return std::discrete_distribution<std::int64_t>(weights.begin(), weights.end())(generator);
}

// `prompt` followed by `count` characters drawn one at a time, each fed
// back as the next input with the state carried along.
std::string generate(CharModel& model, const std::string& prompt, std::int64_t count, double temperature,
                     std::uint64_t seed) {
  const examples::EvaluationMode evaluating(model);
  const data::CharVocabulary& vocabulary = model.vocabulary();
  for (std::size_t i = 0; i < prompt.size(); ++i) {
    if (!vocabulary.contains(prompt[i])) {
      throw std::invalid_argument("--prompt: byte " + std::to_string(static_cast<unsigned char>(prompt[i])) +
                                  " at offset " + std::to_string(i) + " is not in the model's vocabulary");
    }
  }
  std::mt19937_64 generator(seed);
  const std::string start = prompt.empty() ? std::string("\n") : prompt;  // empty: a new entry's start
  CharModel::Result out = model.run(reshape(vocabulary.encode(start), {-1, 1}), {});
  std::string text = prompt;
  for (std::int64_t i = 0; i < count; ++i) {
    const Tensor last = slice(out.logits, 0, out.logits.shape(0) - 1, out.logits.shape(0));
    const std::int64_t next = draw(last.to_vector(), temperature, generator);
    text += vocabulary.symbol(next);
    out = model.run(from_indices({next}, {1, 1}), out.state);
  }
  return text;
}

void print_sample(const std::string& prompt, const std::string& text, double temperature) {
  std::printf("sample (prompt \"%s\", temperature %g):\n%s\n", prompt.c_str(), temperature, text.c_str());
}

int run(int argc, char** argv) {
  std::string data_dir = "/usr/share/games/fortunes", out_dir = "char_lstm_out", load, prompt = "The ";
  std::int64_t max_chars = 0, epochs = 4, max_steps = 0, seq_len = 100, batch = 32, sample_chars = 400;
  CharModel::Sizes sizes;
  double val_fraction = 0.05, lr = 3e-3, clip = 5, temperature = 0.8, min_gain = -INFINITY;
  std::uint64_t seed = 1;
  bool quiet = false, capture = false;
  const std::int64_t zero = 0, one = 1;
  examples::CommandLine cli(kDescription);
  cli.text("--data", data_dir, "a text file or a directory of them (entries are split at '%' lines)", "PATH");
  cli.integer("--max-chars", max_chars,
              "use only about N characters of text, whole entries chosen at random (quick runs; 0 = all)", zero);
  cli.number("--val-fraction", val_fraction, "share of the entries held out for validation", examples::exclusive(0, 1));
  cli.integer("--epochs", epochs, "passes over the training text", one);
  cli.integer("--steps", max_steps, "stop after N training steps in all (0: no limit)", zero);
  cli.integer("--hidden", sizes.hidden, "LSTM hidden units", one);
  cli.integer("--layers", sizes.layers, "stacked LSTM layers", one);
  cli.integer("--embedding", sizes.embedding, "size of the character embedding", one);
  cli.number("--dropout", sizes.dropout, "dropout between LSTM layers", examples::half_open(0, 1));
  cli.integer("--seq-len", seq_len, "characters per truncated-BPTT chunk", one);
  cli.integer("--batch", batch, "parallel streams per step", one);
  cli.number("--lr", lr, "Adam's learning rate", examples::above(0));
  cli.number("--clip", clip, "clip the gradients' total norm to X (0 = off)", examples::at_least(0));
  cli.integer("--seed", seed, "random seed: split, initialisation, sampling");
  cli.text("--out", out_dir, "checkpoints and curves go here", "DIR");
  cli.text("--load", load, "no training: sample from this checkpoint (char_lstm.npz or char_lstm_best.npz)", "FILE");
  cli.text("--prompt", prompt, "the sample continues this text");
  cli.integer("--sample-chars", sample_chars, "characters to generate (0 = no sample)", zero);
  cli.number("--temperature", temperature, "divide the logits by X before sampling (0 = always the likeliest)",
             examples::at_least(0));
  cli.number("--min-gain", min_gain,
             "exit with status 1 unless the last validation bits/char is at least X below the unigram entropy");
  cli.flag("--quiet", quiet, "only the final summary lines");
  cli.flag("--capture", capture,
           "record the training step once and replay it (no graph building or allocation per step)");
  if (!cli.parse(argc, argv)) return 0;

  if (!load.empty()) {
    const auto model = load_model(load);
    print_sample(prompt, generate(*model, prompt, sample_chars, temperature, seed), temperature);
    return 0;
  }

  manual_seed(seed);
  std::vector<std::string> entries;
  try {
    for (const data::TextFile& file : data::read_text_files(data_dir)) {
      for (std::string& entry : data::split_entries(file.text)) entries.push_back(std::move(entry));
    }
  } catch (const std::runtime_error& error) {
    throw std::runtime_error(std::string(error.what()) +
                             " (the default text is Debian's fortunes package: apt-get install fortunes)");
  }
  const data::CharVocabulary vocabulary(entries);  // from all the text, so that held-out bytes encode
  if (max_chars > 0) {
    // Whole entries at random until about max_chars, kept in file order.
    std::vector<std::int64_t> order = data::random_permutation(static_cast<std::int64_t>(entries.size()), seed);
    std::int64_t total = 0, taken = 0;
    while (taken < static_cast<std::int64_t>(order.size()) && total < max_chars) {
      total += static_cast<std::int64_t>(entries[static_cast<std::size_t>(order[taken++])].size()) + 1;
    }
    order.resize(static_cast<std::size_t>(taken));
    std::sort(order.begin(), order.end());
    std::vector<std::string> chosen;
    for (const std::int64_t i : order) chosen.push_back(std::move(entries[static_cast<std::size_t>(i)]));
    entries = std::move(chosen);
  }
  const data::TextSplit split = data::split_held_out(entries, val_fraction, seed);
  const std::string train_text = join(split.train), val_text = join(split.held_out);
  const std::vector<std::int64_t> train_ids = encode(vocabulary, train_text);
  const std::vector<std::int64_t> val_ids = encode(vocabulary, val_text);
  const double unigram = data::unigram_entropy_bits({val_text});
  const StreamChunks val_chunks(val_ids, batch, seq_len);

  auto model = std::make_shared<CharModel>(vocabulary, sizes);
  const std::vector<Tensor> parameters = model->parameters();
  optim::Adam optimizer(parameters, {.lr = lr});
  std::int64_t parameter_count = 0;
  for (const Tensor& p : parameters) parameter_count += p.numel();
  if (!quiet) {
    std::printf("data: %zu entries, %zu training and %zu validation characters, %lld symbols, from %s\n",
                entries.size(), train_text.size(), val_text.size(), static_cast<long long>(vocabulary.size()),
                data_dir.c_str());
    std::ostringstream tree;
    tree << *model;
    std::printf("model (%lld parameters):\n%s\n", static_cast<long long>(parameter_count), tree.str().c_str());
    std::printf("unigram entropy of the validation text: %.3f bits/char\n", unigram);
    std::printf("before training: val %.3f bits/char\n", bits_per_char(*model, val_chunks));
  }

  std::filesystem::create_directories(out_dir);
  const std::string best_path = out_dir + "/char_lstm_best.npz";
  train::Progress progress({.mode = quiet ? train::ProgressMode::Quiet : train::ProgressMode::Auto});
  train::History history;
  std::mt19937_64 generator(seed);
  double val_bits = INFINITY, best_bits = INFINITY;
  std::int64_t steps = 0, epochs_run = 0;
  Tensor grad_norm;  // clip_grad_norm_'s, before clipping
  // One training step: the chunk's ids and targets and the state to start
  // from in, the loss and the state it ended in out. Eager or captured, the
  // same function (the last, shorter chunk of an epoch is captured apart).
  auto train_step = [&](const std::vector<Tensor>& in) {
    const CharModel::Result out = model->run(in[0], {in[2], in[3]});
    const Tensor loss = cross_entropy(out.logits, in[1]);
    optimizer.zero_grad();
    loss.backward();
    // The form that leaves the norm in a tensor: a replay rewrites it.
    if (clip > 0) optim::clip_grad_norm_(parameters, clip, 2.0, grad_norm);
    optimizer.step();
    // Truncated BPTT: the next chunk starts where this one ended, but
    // without its graph, so the next backward stops there.
    return std::vector<Tensor>{loss, out.state.h.detach(), out.state.c.detach()};
  };
  CapturedStep captured_step(train_step, {.recapture_on_new_shapes = true});
  const Tensor zero_state = zeros({sizes.layers, batch, sizes.hidden});
  const auto start = std::chrono::steady_clock::now();
  for (std::int64_t epoch = 1; epoch <= epochs && (max_steps == 0 || steps < max_steps); ++epoch) {
    model->train();
    // A new random start each epoch, so that chunk boundaries fall elsewhere.
    const StreamChunks chunks(train_ids, batch, seq_len,
                              std::uniform_int_distribution<std::int64_t>(0, seq_len - 1)(generator));
    progress.begin_epoch(epoch, epochs, chunks.chunks());
    // Zeros, given explicitly: a captured step takes the state as inputs.
    nn::RecurrentState state{zero_state, zero_state};
    for (std::int64_t k = 0; k < chunks.chunks() && (max_steps == 0 || steps < max_steps); ++k, ++steps) {
      const auto [x, y] = chunks.chunk(k);
      const std::vector<Tensor> in{x, y, state.h, state.c};
      // A replay's outputs are its own buffers, overwritten by the next
      // replay only after it copied them in as inputs.
      const std::vector<Tensor> out = capture ? captured_step(in) : train_step(in);
      state = {out[1], out[2]};
      progress.step(y.numel(), out[0].item() / kLn2);
    }
    val_bits = bits_per_char(*model, val_chunks);
    ++epochs_run;
    progress.end_epoch({{"val_bits_per_char", val_bits}, {"unigram_bits", unigram}});
    history.add(epoch, {{"train_loss_bits", progress.running_loss()}, {"val_loss_bits", val_bits}});
    if (val_bits < best_bits) {
      best_bits = val_bits;
      io::save_checkpoint(best_path, *model, optimizer);
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  examples::save_training(*model, optimizer, history, out_dir, "char_lstm", "char_lstm_curves",
                          "char_lstm (bits per character)", quiet);
  if (!quiet) std::printf("best checkpoint: %s (val %.3f bits/char)\n", best_path.c_str(), best_bits);
  if (sample_chars > 0) print_sample(prompt, generate(*model, prompt, sample_chars, temperature, seed), temperature);
  std::printf("training_seconds=%.2f\n", seconds);
  std::printf("seconds_per_epoch=%.2f\n", seconds / static_cast<double>(std::max<std::int64_t>(epochs_run, 1)));
  std::printf("steps=%lld\n", static_cast<long long>(steps));
  std::printf("unigram_bits_per_char=%.4f\n", unigram);
  std::printf("val_bits_per_char=%.4f\n", val_bits);
  return val_bits <= unigram - min_gain ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("char_lstm", argc, argv, run); }
