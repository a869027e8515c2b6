// The interactive backward-pass page: one self-contained HTML file with the
// trace embedded, and, when Debian's chromium is installed, the page run in
// a headless browser: it renders without script errors, ?step=N / #step=N
// choose the step shown and highlighted, the controls move it, and a
// screenshot comes out.
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "os/process.hpp"
#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::testing;
using namespace tapegrad::tools;
namespace fs = std::filesystem;

namespace {

std::size_t count_matches(const std::string& text, const std::string& pattern) {
  const std::regex re(pattern);
  return static_cast<std::size_t>(
      std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()));
}

// The lecture's worked example (a) as two linear layers: x = (−3, 5), ReLU
// units 3 and 4, sigmoid unit 5, binary cross-entropy against 0. Backward
// visits binary_cross_entropy, sigmoid, linear, relu, linear.
BackwardTrace worked_trace(const std::string& x_name = "x") {
  CaptureValuesGuard keep_values;
  const Tensor x = Tensor({{-3, 5}}, DType::Float64).set_name(x_name);
  const Tensor y = Tensor({{0}}, DType::Float64).set_name("y");
  Tensor w1 = Tensor({{2, 3}, {4, 1}}, DType::Float64).requires_grad_().set_name("W1");
  Tensor b1 = Tensor({2, -1}, DType::Float64).requires_grad_().set_name("b1");
  Tensor w2 = Tensor({{2, 3}}, DType::Float64).requires_grad_().set_name("W2");
  Tensor b2 = Tensor({1}, DType::Float64).requires_grad_().set_name("b2");
  Tensor h = relu(linear(x, w1, b1)).set_name("h");
  Tensor loss = binary_cross_entropy(sigmoid(linear(h, w2, b2)), y).set_name("L");
  return trace_backward(loss);
}

// The text of <script type="application/json" id="...">.
std::string embedded(const std::string& html, const std::string& id) {
  const std::string open = "<script type=\"application/json\" id=\"" + id + "\">";
  const std::size_t begin = html.find(open);
  REQUIRE(begin != std::string::npos);
  const std::size_t end = html.find("</script>", begin);
  REQUIRE(end != std::string::npos);
  return html.substr(begin + open.size(), end - begin - open.size());
}

// ---------------------------------------------------------------- headless chromium

const char* const kChromium = "/usr/bin/chromium";

// Runs chromium headless on `url` with `arguments`, in a fresh profile
// under `dir`, and returns what it printed on stdout. As root it needs
// --no-sandbox; the --disable-* flags keep it off the network. timeout(1)
// ends a browser that hangs.
std::string run_chromium(const TempDir& dir, const std::vector<std::string>& arguments, const std::string& url) {
  static int runs = 0;
  const std::string profile = dir.file("profile-" + std::to_string(++runs));
  std::vector<std::string> command = {"timeout",
                                      "--kill-after=5",
                                      "60",
                                      kChromium,
                                      "--headless",
                                      "--no-sandbox",
                                      "--disable-gpu",
                                      "--disable-quic",
                                      "--no-first-run",
                                      "--disable-background-networking",
                                      "--disable-component-update",
                                      "--disable-sync",
                                      "--disable-dev-shm-usage",
                                      "--user-data-dir=" + profile};
  command.insert(command.end(), arguments.begin(), arguments.end());
  command.push_back(url);
  const os::ProcessResult run = os::run_process(command);
  std::string shown;
  for (const std::string& word : command) shown += (shown.empty() ? "" : " ") + word;
  INFO("command: " << shown
                   << "\nits stderr ends with: " << run.err.substr(run.err.size() > 2000 ? run.err.size() - 2000 : 0));
  INFO(run.describe());
  REQUIRE(run.succeeded());  // timeout's status 124: timed out
  return run.out;
}

// The DOM after the page's scripts ran (virtual time lets timers settle).
std::string dump_dom(const TempDir& dir, const std::string& url) {
  return run_chromium(dir, {"--dump-dom", "--virtual-time-budget=5000", "--window-size=1280,800"}, url);
}

// An attribute of <body> in a dumped DOM; "<absent>" when it is not there.
std::string body_attribute(const std::string& dom, const std::string& name) {
  std::smatch body;
  if (!std::regex_search(dom, body, std::regex("<body([^>]*)>"))) return "<no body>";
  const std::string attributes = body[1].str();
  std::smatch value;
  if (!std::regex_search(attributes, value, std::regex("\\s" + name + "=\"([^\"]*)\""))) return "<absent>";
  return value[1].str();
}

// The rendered DOM without its <script> elements, whose source holds every
// string the page can show.
std::string without_scripts(const std::string& dom) {
  std::string out;
  std::size_t at = 0;
  for (std::size_t open; (open = dom.find("<script", at)) != std::string::npos;) {
    out.append(dom, at, open - at);
    const std::size_t close = dom.find("</script>", open);
    if (close == std::string::npos) return out;
    at = close + 9;
  }
  return out.append(dom, at, std::string::npos);
}

// The ids of the op nodes drawn as current (class "current").
std::vector<std::string> current_ops(const std::string& dom) {
  std::vector<std::string> ids;
  const std::regex node("<g class=\"([^\"]*\\bonode\\b[^\"]*)\" id=\"n-([^\"]+)\"");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), node); it != std::sregex_iterator(); ++it) {
    if (std::regex_search((*it)[1].str(), std::regex("\\bcurrent\\b"))) ids.push_back((*it)[2].str());
  }
  return ids;
}

bool have_chromium() {
  if (fs::exists(kChromium)) return true;
  WARN("skipped: " << kChromium << " not found (Debian package chromium; scripts/setup installs it)");
  return false;
}

}  // namespace

// ---------------------------------------------------------------- the HTML

TEST_CASE("the page is one self-contained HTML file", "[page]") {
  const BackwardTrace trace = worked_trace();
  const std::string html = backprop_page_html(trace);
  CHECK(html.rfind("<!DOCTYPE html>\n<html lang=\"en\">", 0) == 0);
  CHECK(html.size() > 20000);
  CHECK(html.substr(html.size() - 8) == "</html>\n");
  CHECK(contains(html, "<meta charset=\"utf-8\">"));
  // Nothing to fetch: no addresses, no external scripts, styles, fonts or images.
  for (const char* external : {"http://", "https://", "src=", "<link", "@import", "url(", "<img", "<iframe", "//cdn"}) {
    INFO(external);
    CHECK_FALSE(contains(html, external));
  }
  // The error recorder, the trace, the options, numbers.js and the page's script.
  CHECK(count(html, "<script") == 5);
  CHECK(count(html, "</script>") == 5);
  CHECK(count(html, "<style>") == 1);
  for (const char* control : {"id=\"reset\"", "id=\"prev\"", "id=\"next\"", "id=\"play\"", "id=\"slider\"",
                              "<svg id=\"graph\"", "id=\"panel\"", "id=\"error-banner\"", "window.onerror"}) {
    INFO(control);
    CHECK(contains(html, control));
  }
  CHECK(contains(html, "<title>Backpropagation, step by step</title>"));
}

TEST_CASE("the page embeds the trace's JSON, parseable, with the options", "[page]") {
  const BackwardTrace trace = worked_trace();
  const std::string html = backprop_page_html(trace, {.title = "Worked (a)", .precision = 5, .start_step = 2});
  const nlohmann::json j = nlohmann::json::parse(embedded(html, "trace-data"));
  CHECK(j == nlohmann::json::parse(trace.json(64)));
  CHECK(j["format"] == "tapegrad.backward_trace");
  REQUIRE(j["steps"].size() == 5);
  const char* const order[] = {"binary_cross_entropy", "sigmoid", "linear", "relu", "linear"};
  for (std::size_t k = 0; k < 5; ++k) {
    CHECK(j["steps"][k]["index"] == k);
    CHECK(j["steps"][k]["name"] == order[k]);
  }
  bool found_w1 = false;
  for (const auto& node : j["nodes"]) {
    if (node["name"] != "W1") continue;
    found_w1 = true;
    CHECK(node["kind"] == "leaf");
    CHECK(node["value"]["values"] == nlohmann::json::parse("[[2,3],[4,1]]"));
    // ∂L/∂W1 = δ·xᵀ with δ = (2ŷ, 0) and x = (−3, 5); ŷ = σ(23).
    const double s = 1 / (1 + std::exp(-23.0));
    CHECK(node["grad"]["values"][0][0].get<double>() == Approx(-6 * s).epsilon(1e-12));
    CHECK(node["grad"]["values"][0][1].get<double>() == Approx(10 * s).epsilon(1e-12));
    CHECK(node["grad"]["values"][1][0].get<double>() == 0);
  }
  CHECK(found_w1);

  const nlohmann::json options = nlohmann::json::parse(embedded(html, "page-options"));
  CHECK(options["title"] == "Worked (a)");
  CHECK(options["precision"] == 5);
  CHECK(options["start_step"] == 2);
  CHECK(options["max_elements"] == 64);
  CHECK(contains(html, "<h1>Worked (a)</h1>"));

  // Tensors above max_elements carry a summary only.
  const nlohmann::json small =
      nlohmann::json::parse(embedded(backprop_page_html(trace, {.max_elements = 2}), "trace-data"));
  for (const auto& node : small["nodes"]) {
    if (node["name"] == "W1") {
      CHECK(node["value"]["values"].is_null());
      CHECK(node["value"]["summary"]["max"] == 4);
    }
  }
}

TEST_CASE("names and titles cannot break out of the page", "[page]") {
  const std::string evil = "</script><script>alert(\"x\")</script><!-- @@TITLE@@ & </SCRIPT >";
  const BackwardTrace trace = worked_trace(evil);
  const std::string html =
      backprop_page_html(trace, {.title = "<b>\"A & B\"</b> @@TRACE_JSON@@", .description = "</p><script>x</script>"});
  // Only the page's own five script elements end.
  CHECK(count(html, "</script>") == 5);
  CHECK_FALSE(contains(html, "<script>alert"));
  CHECK_FALSE(contains(html, "</SCRIPT"));
  CHECK_FALSE(contains(html, "<!-- @@"));
  // The title and description are text, placeholders in them stay text.
  CHECK(contains(html, "<title>&lt;b&gt;&quot;A &amp; B&quot;&lt;/b&gt; @@TRACE_JSON@@</title>"));
  CHECK(contains(html, "<p class=\"desc\">&lt;/p&gt;&lt;script&gt;x&lt;/script&gt;</p>"));
  CHECK(count(html, "\"format\":\"tapegrad.backward_trace\"") == 1);
  // The name survives the round trip through the embedded JSON exactly.
  const nlohmann::json j = nlohmann::json::parse(embedded(html, "trace-data"));
  bool found = false;
  for (const auto& node : j["nodes"]) found = found || node["name"] == evil;
  CHECK(found);
  CHECK(nlohmann::json::parse(embedded(html, "page-options"))["title"] == "<b>\"A & B\"</b> @@TRACE_JSON@@");
}

TEST_CASE("write_backprop_page writes the page and creates its directory, bad options and paths throw",
          "[page][errors]") {
  const BackwardTrace trace = worked_trace();
  TempDir dir;
  const std::string path = dir.file("out/pages/worked.html");
  write_backprop_page(path, trace);
  CHECK(read_file(path) == backprop_page_html(trace));

  REQUIRE_THROWS_MESSAGE(backprop_page_html(trace, {.precision = 0}), std::invalid_argument,
                         "backprop_page_html: precision must be in [1, 17], got 0");
  REQUIRE_THROWS_MESSAGE(backprop_page_html(trace, {.max_elements = -1}), std::invalid_argument,
                         "backprop_page_html: max_elements must be >= 0, got -1");
  std::ofstream(dir.file("plain")) << "a file, not a directory";
  CHECK_THROWS_WITH(write_backprop_page(dir.file("plain/page.html"), trace),
                    Catch::Matchers::StartsWith("write_backprop_page: cannot create directory '" + dir.file("plain")));
}

TEST_CASE("a graph without ops still makes a page", "[page]") {
  Tensor w = Tensor({1.0, 2.0}, DType::Float64).requires_grad_().set_name("w");
  const BackwardTrace trace = trace_backward(w, {.seed = Tensor({1.0, 1.0}, DType::Float64)});
  REQUIRE(trace.steps().empty());
  const nlohmann::json j = nlohmann::json::parse(embedded(backprop_page_html(trace), "trace-data"));
  CHECK(j["steps"].empty());
  CHECK(j["nodes"].size() == 1);
}

// ---------------------------------------------------------------- in the browser

TEST_CASE("in headless chromium: the page loads without errors and shows the step the URL asks for",
          "[page][chromium]") {
  if (!have_chromium()) return;
  const BackwardTrace trace = worked_trace();
  TempDir dir;
  const std::string page = dir.file("worked.html");
  write_backprop_page(page, trace);
  const std::string url = "file://" + page;

  const std::string dom = dump_dom(dir, url + "?step=2");
  INFO(dom.substr(0, 2000));
  CHECK(body_attribute(dom, "data-ready") == "1");
  CHECK(body_attribute(dom, "data-step") == "2");
  CHECK(body_attribute(dom, "data-steps") == "5");
  CHECK(body_attribute(dom, "data-errors") == "<absent>");
  CHECK(contains(dom, "<div id=\"error-banner\" role=\"alert\" hidden=\"\">"));
  const std::string op2 = trace.graph().ops[static_cast<std::size_t>(trace.steps()[2].op)].id;
  CHECK(body_attribute(dom, "data-op") == op2);
  CHECK(current_ops(dom) == std::vector<std::string>{op2});
  // Every tensor and op is drawn; the panel describes step 2's op.
  CHECK(count_matches(dom, "<g class=\"node tnode[^\"]*\" id=\"n-t[0-9]+\"") == trace.graph().tensors.size());
  CHECK(count_matches(dom, "<g class=\"node onode[^\"]*\" id=\"n-op[0-9]+\"") == trace.graph().ops.size());
  CHECK(contains(dom, "<span class=\"pill\">step 2</span><span class=\"op-name\">linear</span>"));
  CHECK(contains(dom, "y = x·Wᵀ + b"));
}

TEST_CASE("in headless chromium: ?step=0 and #step=3 show and highlight different steps", "[page][chromium]") {
  if (!have_chromium()) return;
  const BackwardTrace trace = worked_trace();
  TempDir dir;
  const std::string page = dir.file("worked.html");
  write_backprop_page(page, trace);
  auto op_of = [&](std::size_t k) { return trace.graph().ops[static_cast<std::size_t>(trace.steps()[k].op)].id; };

  const std::string first = dump_dom(dir, "file://" + page + "?step=0");
  const std::string fourth = dump_dom(dir, "file://" + page + "#step=3");
  CHECK(body_attribute(first, "data-step") == "0");
  CHECK(body_attribute(fourth, "data-step") == "3");
  CHECK(current_ops(first) == std::vector<std::string>{op_of(0)});
  CHECK(current_ops(fourth) == std::vector<std::string>{op_of(3)});
  CHECK(op_of(0) != op_of(3));
  // Ops already visited are drawn done; the panel follows the step.
  CHECK(count(first, " done\" id=\"n-op") == 0);
  CHECK(count(fourth, " done\" id=\"n-op") == 3);
  CHECK(contains(first, "<span class=\"op-name\">binary_cross_entropy</span>"));
  CHECK(contains(fourth, "<span class=\"op-name\">relu</span>"));
  // After step 0 the loss and what it sent to ŷ are known; by step 3 the
  // output layer's parameters have their gradients too.
  CHECK(count(first, "class=\"cap has\"") == 2);  // L (the seed) and ŷ
  CHECK(count(fourth, "class=\"cap has\"") > count(first, "class=\"cap has\""));
  for (const std::string& dom : {first, fourth}) CHECK(body_attribute(dom, "data-errors") == "<absent>");
}

TEST_CASE("in headless chromium: the buttons, the arrow keys and the slider change the step", "[page][chromium]") {
  if (!have_chromium()) return;
  const BackwardTrace trace = worked_trace();
  TempDir dir;
  const std::string page = dir.file("worked.html");
  write_backprop_page(page, trace, {.start_step = 1});
  // "press" drives the controls after load: buttons are clicked, keys
  // dispatched, the slider moved.
  const std::pair<std::string, std::string> cases[] = {
      {"", "1"},                                // PageOptions::start_step
      {"?step=1&press=next,next", "3"},         // Next twice
      {"?step=3&press=prev", "2"},              // Previous
      {"?step=3&press=reset", "0"},             // Reset
      {"?step=0&press=right,right,left", "1"},  // → → ←
      {"?step=0&press=slider:4", "4"},          // the slider
      {"?step=2&press=end,next", "4"},          // End, then Next stops at the last step
      {"?step=0&press=prev", "0"},              // Previous stops at the first
      {"?step=99", "4"},                        // out of range: the last step
  };
  for (const auto& [query, step] : cases) {
    const std::string dom = dump_dom(dir, "file://" + page + query);
    INFO("query " << query);
    CHECK(body_attribute(dom, "data-ready") == "1");
    CHECK(body_attribute(dom, "data-step") == step);
    CHECK(body_attribute(dom, "data-errors") == "<absent>");
  }
}

TEST_CASE("in headless chromium: large, NaN, shared and gradient-free tensors render without errors",
          "[page][chromium]") {
  if (!have_chromium()) return;
  TempDir dir;
  {
    // 100 elements (more than max_elements: summaries only), log of −1 and
    // of 0 (NaN, −inf), x used by several ops (partial gradients), a constant.
    CaptureValuesGuard keep_values;
    Tensor big = random_input({10, 10}).set_name("big");
    Tensor x = leaf({{-1.0, 0.0, 2.0}}).set_name("x");
    const Tensor c = Tensor({{1.0, 2.0, 3.0}}, DType::Float64).set_name("c");
    Tensor loss = (sum(big * big) + sum(x * x + log(x) * 0.0 + c * x)).set_name("L");
    write_backprop_page(dir.file("edge.html"), trace_backward(loss));
  }
  {
    Tensor w = Tensor({1.0}, DType::Float64).requires_grad_();
    write_backprop_page(dir.file("empty.html"), trace_backward(w));
  }
  const std::string edge = dump_dom(dir, "file://" + dir.file("edge.html") + "?step=3");
  CHECK(body_attribute(edge, "data-ready") == "1");
  CHECK(body_attribute(edge, "data-step") == "3");
  CHECK(body_attribute(edge, "data-errors") == "<absent>");
  CHECK(contains(edge, ">mean "));  // the 100-element tensors' nodes show a summary
  const std::string empty = dump_dom(dir, "file://" + dir.file("empty.html"));
  CHECK(body_attribute(empty, "data-ready") == "1");
  CHECK(body_attribute(empty, "data-step") == "-1");
  CHECK(body_attribute(empty, "data-errors") == "<absent>");
  CHECK(contains(empty, "No backward steps"));
}

TEST_CASE("in headless chromium: an op with two outputs (lstm_cell) shows both and their upstream gradients",
          "[page][chromium]") {
  if (!have_chromium()) return;
  TempDir dir;
  {
    CaptureValuesGuard keep_values;
    manual_seed(6);
    const Tensor w_ih = randn({8, 2}, DType::Float64).requires_grad_().set_name("W_ih");
    const Tensor w_hh = randn({8, 2}, DType::Float64).requires_grad_().set_name("W_hh");
    const LstmState zero{zeros({1, 2}, DType::Float64), zeros({1, 2}, DType::Float64)};
    const LstmState s1 = lstm_cell(randn({1, 2}, DType::Float64).set_name("x1"), zero, w_ih, w_hh);
    const LstmState s2 = lstm_cell(randn({1, 2}, DType::Float64).set_name("x2"), s1, w_ih, w_hh);
    write_backprop_page(dir.file("lstm.html"), trace_backward(sum(s2.h).set_name("L")));
  }
  // Steps: 0 the sum, 1 the second cell (its c unused), 2 the first cell.
  const std::string second = without_scripts(dump_dom(dir, "file://" + dir.file("lstm.html") + "?step=1"));
  CHECK(body_attribute(second, "data-errors") == "<absent>");
  CHECK(body_attribute(second, "data-step") == "1");
  CHECK(contains(second, "output y0"));
  CHECK(contains(second, "output y1"));
  CHECK(contains(second, "This op has 2 outputs"));
  CHECK(contains(second, "none: nothing downstream used this output"));
  CHECK(contains(second, "lstm_cell output 1"));
  const std::string first = without_scripts(dump_dom(dir, "file://" + dir.file("lstm.html") + "?step=2"));
  CHECK(body_attribute(first, "data-errors") == "<absent>");
  CHECK(contains(first, "This op has 2 outputs"));
  CHECK_FALSE(contains(first, "none: nothing downstream used this output"));
}

TEST_CASE("in headless chromium: a screenshot of the page", "[page][chromium]") {
  if (!have_chromium()) return;
  TempDir dir;
  const std::string page = dir.file("worked.html");
  write_backprop_page(page, worked_trace());
  const std::string png = dir.file("worked.png");
  run_chromium(dir, {"--screenshot=" + png, "--window-size=1280,800", "--virtual-time-budget=5000"},
               "file://" + page + "?step=3");
  REQUIRE(fs::exists(png));
  const std::string bytes = read_file(png);
  CHECK(bytes.size() > 20000);  // a real picture, not a blank page
  REQUIRE(bytes.size() > 24);
  CHECK(bytes.substr(0, 8) == "\x89PNG\r\n\x1a\n");
  CHECK(bytes.substr(12, 4) == "IHDR");
  auto be32 = [&](std::size_t at) {
    return (static_cast<unsigned>(static_cast<unsigned char>(bytes[at])) << 24) |
           (static_cast<unsigned>(static_cast<unsigned char>(bytes[at + 1])) << 16) |
           (static_cast<unsigned>(static_cast<unsigned char>(bytes[at + 2])) << 8) |
           static_cast<unsigned>(static_cast<unsigned char>(bytes[at + 3]));
  };
  CHECK(be32(16) == 1280);
  CHECK(be32(20) == 800);
}
