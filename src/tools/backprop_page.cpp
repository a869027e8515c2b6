#include "tapegrad/tools/backprop_page.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "tapegrad/error.hpp"
#include "tools/json.hpp"
#include "tools/page_assets.hpp"

namespace tapegrad::tools {

using detail::json_string;

namespace {

// The page is a template with @@NAME@@ placeholders, filled in one pass (a
// filled-in value is never scanned again): the HTML in src/tools/page, with
// its stylesheet and two scripts put in as values, the way the trace is.
// Everything the page needs is in it: no external stylesheet, script, font
// or image, so it works offline and from file://. The graph is laid out by
// the script itself, because the nodes' contents (gradients appearing step
// by step) are drawn live.

std::string html_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// JSON inside <script>: the HTML parser ends the element at the first
// "</script" whatever the quotes, and "<!--" changes how it scans. In JSON,
// '<', '>' and '&' can only occur inside strings, where \u escapes mean
// the same characters to JSON.parse.
std::string script_safe_json(std::string_view json) {
  std::string out;
  out.reserve(json.size() + json.size() / 16);
  for (const char c : json) {
    switch (c) {
      case '<':
        out += "\\u003c";
        break;
      case '>':
        out += "\\u003e";
        break;
      case '&':
        out += "\\u0026";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string options_json(const PageOptions& options) {
  std::string out = "{\"title\":";
  json_string(out, options.title);
  out += ",\"precision\":" + std::to_string(options.precision);
  out += ",\"max_elements\":" + std::to_string(options.max_elements);
  out += ",\"start_step\":" + std::to_string(options.start_step) + "}";
  return out;
}

// Appends `text` with each @@NAME@@ replaced by its value.
void fill(std::string& out, std::string_view text,
          const std::vector<std::pair<std::string_view, std::string>>& values) {
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t open = text.find("@@", at);
    if (open == std::string_view::npos) break;
    const std::size_t close = text.find("@@", open + 2);
    if (close == std::string_view::npos) break;
    const std::string_view name = text.substr(open + 2, close - open - 2);
    bool replaced = false;
    for (const auto& [key, value] : values) {
      if (key == name) {
        out.append(text.substr(at, open - at));
        out += value;
        at = close + 2;
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      out.append(text.substr(at, open + 2 - at));
      at = open + 2;
    }
  }
  out.append(text.substr(at));
}

}  // namespace

std::string backprop_page_html(const BackwardTrace& trace, const PageOptions& options) {
  if (options.precision < 1 || options.precision > 17) {
    throw_invalid("backprop_page_html", "precision must be in [1, 17], got ", options.precision);
  }
  if (options.max_elements < 0) {
    throw_invalid("backprop_page_html", "max_elements must be >= 0, got ", options.max_elements);
  }
  const std::vector<std::pair<std::string_view, std::string>> values = {
      {"TITLE", html_escape(options.title)},
      {"DESCRIPTION", html_escape(options.description)},
      {"TRACE_JSON", script_safe_json(trace.json(options.max_elements))},
      {"OPTIONS_JSON", script_safe_json(options_json(options))},
      {"STYLE", std::string(page_assets::kPageCss)},
      {"NUMBERS_SCRIPT", std::string(page_assets::kNumbersScript)},
      {"PAGE_SCRIPT", std::string(page_assets::kPageScript)},
  };
  std::string html;
  html.reserve(page_assets::kPageHtml.size() + page_assets::kPageCss.size() + page_assets::kNumbersScript.size() +
               page_assets::kPageScript.size() + values[2].second.size() + 1024);
  fill(html, page_assets::kPageHtml, values);
  return html;
}

void write_backprop_page(const std::string& path, const BackwardTrace& trace, const PageOptions& options) {
  const std::string html = backprop_page_html(trace, options);
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code error;
    std::filesystem::create_directories(parent, error);
    if (error)
      throw_runtime("write_backprop_page", "cannot create directory '", parent.string(), "': ", error.message());
  }
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) throw_runtime("write_backprop_page", "cannot write '", path, "': ", std::strerror(errno));
  file << html;
  if (!file.flush()) throw_runtime("write_backprop_page", "cannot write '", path, "'");
}

}  // namespace tapegrad::tools
