#include "tapegrad/data/text.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "data/read_file.hpp"
#include "tapegrad/data/dataset.hpp"
#include "tapegrad/error.hpp"

namespace tapegrad::data {

namespace {

namespace fs = std::filesystem;

constexpr const char* kReadOp = "read_text_files";

bool is_binary(const std::string& text) { return text.find('\0') != std::string::npos; }

bool is_blank(std::string_view text) { return text.find_first_not_of(" \t\r\n") == std::string_view::npos; }

// "0x41 ('A')"; bytes outside printable ASCII by their value alone (a lone
// UTF-8 byte would garble the message).
std::string byte_for_message(char c) {
  const auto b = static_cast<unsigned char>(c);
  char text[16];
  if (b >= 0x20 && b < 0x7F)
    std::snprintf(text, sizeof text, "0x%02x ('%c')", b, c);
  else
    std::snprintf(text, sizeof text, "0x%02x", b);
  return text;
}

}  // namespace

std::vector<TextFile> read_text_files(const std::string& path) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (!error && !fs::exists(status)) error = std::make_error_code(std::errc::no_such_file_or_directory);
  if (error) throw_runtime(kReadOp, "cannot open '", path, "': ", error.message());
  if (!fs::is_directory(status)) {
    std::string text = detail::read_whole_file<std::string>(path, kReadOp);
    if (is_binary(text)) throw_runtime(kReadOp, path, ": not a text file (it holds a NUL byte)");
    return {TextFile{path, std::move(text)}};
  }

  std::vector<fs::path> candidates;
  fs::directory_iterator it(path, error);
  for (; !error && it != fs::directory_iterator(); it.increment(error)) {
    // is_symlink reads the link itself, is_regular_file what it points to.
    if (it->is_symlink(error) || !it->is_regular_file(error)) continue;
    candidates.push_back(it->path());
  }
  if (error) throw_runtime(kReadOp, path, ": ", error.message());
  std::sort(candidates.begin(), candidates.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });

  std::vector<TextFile> files;
  for (const fs::path& file : candidates) {
    std::string text = detail::read_whole_file<std::string>(file.string(), kReadOp);
    if (!is_binary(text)) files.push_back(TextFile{file.string(), std::move(text)});
  }
  if (files.empty()) throw_runtime(kReadOp, path, ": the directory holds no text file");
  return files;
}

std::vector<std::string> split_entries(std::string_view text, std::string_view separator) {
  std::vector<std::string> entries;
  std::string entry;
  auto finish = [&] {
    if (!is_blank(entry)) entries.push_back(std::move(entry));
    entry.clear();
  };
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
    std::string_view bare = line;
    if (!bare.empty() && bare.back() == '\r') bare.remove_suffix(1);
    if (bare == separator) {
      finish();
    } else {
      entry.append(line);
      entry += '\n';
    }
  }
  finish();
  return entries;
}

CharVocabulary::CharVocabulary(const std::vector<std::string>& texts) {
  bool seen[256] = {};
  for (const std::string& text : texts) {
    for (char c : text) seen[static_cast<unsigned char>(c)] = true;
  }
  for (int b = 0; b < 256; ++b) {
    index_[b] = seen[b] ? static_cast<std::int64_t>(symbols_.size()) : -1;
    if (seen[b]) symbols_ += static_cast<char>(b);
  }
}

std::int64_t CharVocabulary::index(char c) const {
  const std::int64_t i = index_[static_cast<unsigned char>(c)];
  if (i < 0) throw_invalid("CharVocabulary::index", "byte ", byte_for_message(c), " is not in the vocabulary");
  return i;
}

char CharVocabulary::symbol(std::int64_t index) const {
  if (index < 0 || index >= size()) {
    throw_out_of_range("CharVocabulary::symbol", "index ", index, " is out of range [0, ", size(), ")");
  }
  return symbols_[static_cast<std::size_t>(index)];
}

Tensor CharVocabulary::encode(std::string_view text) const {
  const auto n = static_cast<std::int64_t>(text.size());
  Tensor out = empty(Shape{n}, DType::Int64);
  std::int64_t* ids = out.data<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i) {
    const char c = text[static_cast<std::size_t>(i)];
    ids[i] = index_[static_cast<unsigned char>(c)];
    if (ids[i] < 0) {
      throw_invalid("CharVocabulary::encode", "byte ", byte_for_message(c), " at offset ", i,
                    " is not in the vocabulary of ", size(), " symbols");
    }
  }
  return out;
}

std::string CharVocabulary::decode(const Tensor& indices) const {
  if (indices.dtype() != DType::Int64) {
    throw_invalid("CharVocabulary::decode", "indices must be int64, got ", dtype_name(indices.dtype()));
  }
  const std::int64_t* ids = indices.data<std::int64_t>();
  std::string text(static_cast<std::size_t>(indices.numel()), '\0');
  for (std::int64_t i = 0; i < indices.numel(); ++i) {
    if (ids[i] < 0 || ids[i] >= size()) {
      throw_out_of_range("CharVocabulary::decode", "index ", ids[i], " at element ", i, " is out of range [0, ", size(),
                         ")");
    }
    text[static_cast<std::size_t>(i)] = symbols_[static_cast<std::size_t>(ids[i])];
  }
  return text;
}

TextSplit split_held_out(const std::vector<std::string>& entries, double held_out_fraction, std::uint64_t seed) {
  if (!(held_out_fraction >= 0 && held_out_fraction < 1)) {
    throw_invalid("split_held_out", "held_out_fraction must lie in [0, 1), got ", held_out_fraction);
  }
  const auto n = static_cast<std::int64_t>(entries.size());
  const auto held = static_cast<std::int64_t>(std::llround(held_out_fraction * static_cast<double>(n)));
  std::vector<bool> is_held(entries.size(), false);
  const std::vector<std::int64_t> order = random_permutation(n, seed);
  for (std::int64_t k = 0; k < held; ++k) is_held[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])] = true;
  TextSplit split;
  for (std::size_t i = 0; i < entries.size(); ++i) (is_held[i] ? split.held_out : split.train).push_back(entries[i]);
  return split;
}

double unigram_entropy_bits(const std::vector<std::string>& texts) {
  std::uint64_t counts[256] = {};
  std::uint64_t total = 0;
  for (const std::string& text : texts) {
    for (char c : text) ++counts[static_cast<unsigned char>(c)];
    total += text.size();
  }
  if (total == 0) throw_invalid("unigram_entropy_bits", "the texts hold no character");
  double bits = 0;
  for (std::uint64_t count : counts) {
    if (count == 0) continue;
    const double p = static_cast<double>(count) / static_cast<double>(total);
    bits -= p * std::log2(p);
  }
  return bits;
}

}  // namespace tapegrad::data
