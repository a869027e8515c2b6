#pragma once
// Plain text for character-level models: files, entries, a character
// vocabulary, index tensors, a held-out split and the unigram baseline.
//
//   std::vector<std::string> entries;
//   for (const TextFile& f : read_text_files("/usr/share/games/fortunes"))
//     for (std::string& e : split_entries(f.text, "%")) entries.push_back(std::move(e));
//   TextSplit split = split_held_out(entries, 0.1, /*seed=*/1);
//   CharVocabulary vocab(entries);                     // from every entry, both parts
//   Tensor ids = vocab.encode(split.train[0]);         // int64 [n]
//   double baseline = unigram_entropy_bits(split.held_out);
//
// Characters are bytes. UTF-8's multi-byte characters become several
// symbols in a row, which a character model learns like any other pair; in
// exchange the vocabulary has at most 256 symbols, any file reads without a
// decoding error, and decode(encode(text)) == text byte for byte. Bits per
// character are therefore bits per byte (the same thing for ASCII text).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad::data {

struct TextFile {
  std::string path;
  std::string text;
};

// `path` names a text file, or a directory whose text files are all read
// (not its subdirectories), sorted by file name. In a directory, symbolic
// links are skipped (a second name for a file, as fortune's <name>.u8 links
// are) and so is every file holding a NUL byte (binary: fortune's <name>.dat
// indexes). Throws std::runtime_error naming the path when it cannot be read,
// is a binary file, or is a directory without a text file.
std::vector<TextFile> read_text_files(const std::string& path);

// The entries of `text`, separated by lines that hold just `separator` (a
// trailing '\r' allowed): "%" for fortune files. Each entry keeps its lines,
// each ending in '\n' (one is added to a last line that had none); entries
// of whitespace only are dropped.
std::vector<std::string> split_entries(std::string_view text, std::string_view separator = "%");

// The sorted distinct bytes of some texts, symbol i being the i-th.
class CharVocabulary {
 public:
  explicit CharVocabulary(const std::vector<std::string>& texts);
  explicit CharVocabulary(std::string_view text) : CharVocabulary(std::vector<std::string>{std::string(text)}) {}

  std::int64_t size() const { return static_cast<std::int64_t>(symbols_.size()); }
  // The symbols in index order.
  const std::string& symbols() const { return symbols_; }
  bool contains(char c) const { return index_[static_cast<unsigned char>(c)] >= 0; }
  // Throws std::invalid_argument for a byte that is not a symbol.
  std::int64_t index(char c) const;
  char symbol(std::int64_t index) const;

  // Int64 [text.size()]. A byte outside the vocabulary throws, naming it and
  // its offset: build the vocabulary from every text it will encode.
  Tensor encode(std::string_view text) const;
  // The bytes of an Int64 tensor of any shape, row-major; each value must be
  // a symbol's index.
  std::string decode(const Tensor& indices) const;

 private:
  std::string symbols_;
  std::int64_t index_[256];  // byte -> index, -1 when absent
};

struct TextSplit {
  std::vector<std::string> train;
  std::vector<std::string> held_out;
};

// round(held_out_fraction * n) of the n entries, chosen by
// random_permutation(n, seed), are held out; the rest train. Both parts keep
// the entries' original order. The same entries and seed give the same
// split on every platform. held_out_fraction must lie in [0, 1).
TextSplit split_held_out(const std::vector<std::string>& entries, double held_out_fraction, std::uint64_t seed);

// -sum p(c) log2 p(c) over the byte frequencies p of all the texts together:
// what a model that knows only those frequencies pays per character, the
// baseline a character model must beat. Throws when the texts are empty.
double unigram_entropy_bits(const std::vector<std::string>& texts);

}  // namespace tapegrad::data
