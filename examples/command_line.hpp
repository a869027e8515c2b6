#pragma once
// Every example's command line, on CLI11: typed options whose accepted
// values are checked (and shown in --help) where they are declared, and
// one convention for main(): --help prints the help and exits 0; a bad
// flag, like any other error, becomes "<example>: <message naming the
// flag> (see --help)" on stderr and exit status 2, so that it never looks
// like a check passing (0) or failing (1).
#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tapegrad/tapegrad.hpp>
#include <type_traits>
#include <vector>

namespace examples {

// The accepted values of a real-valued flag: an interval, either end open
// or closed, either end possibly infinite.
struct Interval {
  double low = -std::numeric_limits<double>::infinity();
  double high = std::numeric_limits<double>::infinity();
  bool low_open = false;
  bool high_open = false;

  bool contains(double x) const {
    return (low_open ? x > low : x >= low) && (high_open ? x < high : x <= high);  // false for NaN
  }
  // ">= 0", "> 0", "in [0, 1)" ("" for every number): what --help and the
  // error messages say.
  std::string text() const {
    std::ostringstream out;
    if (std::isinf(high)) {
      if (std::isinf(low)) return "";
      out << (low_open ? "> " : ">= ") << low;
    } else if (std::isinf(low)) {
      out << (high_open ? "< " : "<= ") << high;
    } else {
      out << "in " << (low_open ? '(' : '[') << low << ", " << high << (high_open ? ')' : ']');
    }
    return out.str();
  }
};
inline Interval at_least(double low) { return {.low = low}; }
inline Interval above(double low) { return {.low = low, .low_open = true}; }
inline Interval closed(double low, double high) { return {.low = low, .high = high}; }
inline Interval half_open(double low, double high) { return {.low = low, .high = high, .high_open = true}; }
inline Interval exclusive(double low, double high) {
  return {.low = low, .high = high, .low_open = true, .high_open = true};
}

// `text` as a T, all of it (no "1.5" as 1, no "12abc" as 12), else false.
template <class T>
bool parse_whole(const std::string& text, T& value) {
  if constexpr (std::is_floating_point_v<T>) {
    // strtod rather than from_chars: it also reads "1e-3" and "inf" the way
    // CLI11 converts them afterwards.
    char* end = nullptr;
    value = static_cast<T>(std::strtod(text.c_str(), &end));
    return !text.empty() && end == text.c_str() + text.size();
  } else {
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    return !text.empty() && error == std::errc() && end == text.data() + text.size();
  }
}

// "256,128" -> {256, 128}: `count` sizes (any number of them when 0), each
// an integer >= 1; else throws saying what was expected.
inline std::vector<std::int64_t> parse_sizes(const std::string& text, std::size_t count = 0) {
  const std::invalid_argument not_sizes(
      "'" + text + "' is not " +
      (count == 0 ? "a comma-separated list of" : std::to_string(count) + " comma-separated") +
      " integers >= 1 (like " + (count == 2 ? "32,64" : "256,128") + ")");
  if (text.empty() || text.back() == ',') throw not_sizes;  // getline would drop the empty last part
  std::vector<std::int64_t> sizes;
  std::string part;
  std::istringstream parts(text);
  while (std::getline(parts, part, ',')) {
    std::int64_t size = 0;
    if (!parse_whole(part, size) || size < 1) throw not_sizes;
    sizes.push_back(size);
  }
  if (count != 0 && sizes.size() != count) throw not_sizes;
  return sizes;
}

inline std::string join_sizes(const std::vector<std::int64_t>& sizes) {
  std::string text;
  for (const std::int64_t size : sizes) text += (text.empty() ? "" : ",") + std::to_string(size);
  return text;
}

// An example's flags. Each adder binds a variable holding the default,
// checks the value given and says in --help what it accepts. A flag given
// twice takes its last value, so a script's default (scripts/main passes
// --data and --out) is overridden by the user's own later on the line.
class CommandLine {
 public:
  explicit CommandLine(const std::string& description) : app_(description) {
    app_.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app_.get_formatter()->column_width(34);
  }

  // Free text: a path, a prompt.
  CLI::Option* text(const std::string& name, std::string& value, const std::string& help,
                    const std::string& metavar = "TEXT") {
    return app_.add_option(name, value, help)->type_name(metavar)->capture_default_str();
  }

  // A whole number in [min, max].
  template <class T>
  CLI::Option* integer(const std::string& name, T& value, const std::string& help,
                       T min = std::numeric_limits<T>::lowest(), T max = std::numeric_limits<T>::max()) {
    static_assert(std::is_integral_v<T>);
    std::string accepted = "an integer";
    if (min != std::numeric_limits<T>::lowest() || std::is_unsigned_v<T>) accepted += " >= " + std::to_string(min);
    if (max != std::numeric_limits<T>::max())
      accepted += (min != std::numeric_limits<T>::lowest() ? " and <= " : " <= ") + std::to_string(max);
    const CLI::Validator check(
        [=](std::string& given) {
          T parsed{};
          if (!parse_whole(given, parsed) || parsed < min || parsed > max) return "'" + given + "' is not " + accepted;
          given = std::to_string(parsed);  // CLI11 would read "010" as octal
          return std::string();
        },
        "");
    return app_.add_option(name, value, described(help, accepted))
        ->type_name("N")
        ->transform(check)
        ->capture_default_str();
  }

  // A real number in `range`.
  CLI::Option* number(const std::string& name, double& value, const std::string& help, Interval range = {}) {
    const std::string accepted = range.text().empty() ? "a number" : "a number " + range.text();
    const CLI::Validator check(
        [=](const std::string& given) {
          double parsed = 0;
          if (!parse_whole(given, parsed)) return "'" + given + "' is not a number";
          if (!range.contains(parsed)) return "'" + given + "' is not " + accepted;
          return std::string();
        },
        "");
    return app_.add_option(name, value, described(help, accepted))->type_name("X")->check(check)->capture_default_str();
  }

  // One of a few names (an optimizer, a schedule).
  CLI::Option* choice(const std::string& name, std::string& value, const std::string& help,
                      const std::vector<std::string>& names) {
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    const CLI::Validator check(
        [=](const std::string& given) {
          for (const std::string& n : names) {
            if (given == n) return std::string();
          }
          return "unknown name '" + given + "' (accepted: " + list + ")";
        },
        "");
    return app_.add_option(name, value, described(help, "one of " + list))
        ->type_name("NAME")
        ->check(check)
        ->capture_default_str();
  }

  // A comma-separated list of sizes, each >= 1 ("256,128"): `count` of
  // them, or any number when 0.
  CLI::Option* sizes(const std::string& name, std::vector<std::int64_t>& value, const std::string& help,
                     std::size_t count = 0) {
    const CLI::Validator check(
        [=](const std::string& given) {
          try {
            parse_sizes(given, count);
          } catch (const std::invalid_argument& error) {
            return std::string(error.what());
          }
          return std::string();
        },
        "");
    return app_
        .add_option_function<std::string>(
            name, [&value, count](const std::string& given) { value = parse_sizes(given, count); }, help)
        ->type_name("A,B,...")
        ->check(check)
        ->default_str(join_sizes(value));
  }

  // A batch size: an integer >= 1, or "all" (the whole set in one batch;
  // "full" too, as data::parse_batch_size reads it). Not 0, which the
  // DataLoader takes for the whole set too: a typo must not mean that.
  CLI::Option* batch_size(const std::string& name, std::int64_t& value, const std::string& help) {
    const CLI::Validator check(
        [](std::string& given) {
          std::int64_t parsed = 0;
          if (given == "all" || given == "full") {
            given = std::to_string(tapegrad::data::kFullBatch);
          } else if (!parse_whole(given, parsed) || parsed < 1) {
            return "'" + given + "' is not an integer >= 1 or 'all'";
          }
          return std::string();
        },
        "");
    return app_.add_option(name, value, described(help, "an integer >= 1, or all"))
        ->type_name("N")
        ->transform(check)
        ->capture_default_str();
  }

  // A switch: true when given.
  CLI::Option* flag(const std::string& name, bool& value, const std::string& help) {
    return app_.add_flag(name, value, help);
  }

  // Runs after a successful parse, in the order added: for defaults that
  // depend on other flags (--short), which are known only then.
  void after_parse(std::function<void()> hook) { after_parse_.push_back(std::move(hook)); }

  // The usual case of that: when `condition` holds after parsing and
  // `option` (bound to `value`) was not given, `value` becomes `alternative`
  // (--epochs 300, or 150 with --short).
  template <class T>
  void default_when(const bool& condition, CLI::Option* option, T& value, T alternative) {
    after_parse([&condition, option, &value, alternative] {
      if (condition && option->count() == 0) value = alternative;
    });
  }

  // Reads the command line. False when it asked for --help, which is then
  // printed: the caller returns 0. A bad flag throws std::invalid_argument
  // whose message names the flag and what it accepts (run_example prints it).
  bool parse(int argc, char** argv) {
    app_.name(std::filesystem::path(argv[0]).filename().string());
    try {
      app_.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
      std::cout << app_.help();
      return false;
    } catch (const CLI::ExtrasError&) {
      throw std::invalid_argument("unknown argument '" + app_.remaining().front() + "' (see --help)");
    } catch (const CLI::ParseError& error) {
      throw std::invalid_argument(std::string(error.what()) + " (see --help)");
    }
    for (const std::function<void()>& hook : after_parse_) hook();
    return true;
  }

  CLI::App& app() { return app_; }

 private:
  static std::string described(const std::string& help, const std::string& accepted) {
    return accepted.empty() ? help : help + "; " + accepted;
  }

  CLI::App app_;
  std::vector<std::function<void()>> after_parse_;
};

// main() of every example: 0 means its checks passed and 1 that one failed,
// so an exception (a bad flag, missing data, an unwritable file) must not
// look like either. It becomes "<name>: <what>" on stderr and exit status 2.
inline int run_example(const char* name, int argc, char** argv, int (*run)(int, char**)) {
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: %s\n", name, error.what());
    return 2;
  }
}

}  // namespace examples
