#include "tapegrad/tools/anomaly.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "core/dispatch.hpp"
#include "os/process.hpp"
#include "tapegrad/autograd.hpp"
#include "tapegrad/tape_hooks.hpp"

namespace tapegrad {

namespace tools {

namespace {

std::atomic<bool> g_anomaly{false};
std::atomic<int> g_capture_values{0};
std::mutex g_flags_mutex;

TapeHooks& debug_hooks();

// Callers hold g_flags_mutex.
void update_debug_hooks() {
  install_tape_hooks(debug_hooks());
  set_tape_hooks_active(g_anomaly.load() || g_capture_values.load() > 0);
}

// The inputs the Node constructor saw last, for the node detail_attach is about to
// record (the two run back to back inside record_op, on one thread).
thread_local std::vector<Tensor> t_pending_inputs;

constexpr int kMaxFrames = 48;

// The tapegrad source tree this file was compiled in: frames whose file is
// under its src/ (or any include/tapegrad/) are the library's own.
std::string source_root() {
  std::string file = __FILE__;
  const std::string tail = "src/tools/anomaly.cpp";
  if (file.size() >= tail.size() && file.compare(file.size() - tail.size(), tail.size(), tail) == 0) {
    return file.substr(0, file.size() - tail.size());
  }
  return "";
}

bool starts_with(const std::string& text, const char* prefix) { return text.rfind(prefix, 0) == 0; }

bool internal_file(const std::string& file) {
  static const std::string root = source_root();
  if (file.empty()) return false;
  if (!root.empty() && starts_with(file, (root + "src/").c_str())) return true;
  return file.find("/include/tapegrad/") != std::string::npos || file.find("/include/c++/") != std::string::npos ||
         starts_with(file, "/usr/include/");
}

// Without debug information only the (mangled) symbol tells: tapegrad's
// namespace, or the standard library's.
bool internal_symbol(const std::string& mangled) {
  for (const char* prefix : {"_ZN8tapegrad", "_ZNK8tapegrad", "_ZZN8tapegrad", "_ZZNK8tapegrad", "_ZNSt", "_ZNKSt",
                             "_ZSt", "_ZNSt3__", "_ZN9__gnu_cxx", "__"}) {
    if (starts_with(mangled, prefix)) return true;
  }
  return false;
}

bool system_module(const std::string& module) {
  const std::size_t slash = module.rfind('/');
  const std::string base = slash == std::string::npos ? module : module.substr(slash + 1);
  if (starts_with(base, "libtapegrad")) return true;
  return starts_with(module, "/lib/") || starts_with(module, "/lib64/") || starts_with(module, "/usr/lib/") ||
         starts_with(base, "linux-vdso");
}

std::string demangle(const std::string& mangled) {
  int status = 0;
  char* out = abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status);
  if (status != 0 || out == nullptr) return mangled;
  std::string result = out;
  std::free(out);
  return result;
}

struct Module {
  std::string path;
  std::uintptr_t bias = 0;
};

// The running program's own file (the main program has no name in the
// list of loaded objects; a child process must not read /proc/self/exe).
std::string executable_path() {
  char buffer[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
}

// The loaded object holding `address`, and its load bias (what addr2line's
// addresses are relative to).
Module find_module(void* address) {
  struct Search {
    std::uintptr_t address;
    Module found;
    bool ok = false;
  } search{reinterpret_cast<std::uintptr_t>(address), {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) -> int {
        auto* s = static_cast<Search*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD) continue;
          const std::uintptr_t start = info->dlpi_addr + ph.p_vaddr;
          if (s->address >= start && s->address < start + ph.p_memsz) {
            s->found.path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : executable_path();
            s->found.bias = info->dlpi_addr;
            s->ok = true;
            return 1;
          }
        }
        return 0;
      },
      &search);
  return search.ok ? search.found : Module{};
}

// Runs addr2line on `module` for the given (relative) addresses; its
// standard output, or "" if it could not be run or failed.
std::string run_addr2line(const std::string& module, const std::vector<std::uintptr_t>& addresses) {
  std::vector<std::string> args = {"addr2line", "-a", "-f", "-i", "-e", module};
  for (std::uintptr_t a : addresses) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "0x%jx", static_cast<std::uintmax_t>(a));
    args.emplace_back(buffer);
  }
  os::ProcessResult run = os::run_process(args, {.err = os::Output::Discard});
  return run.succeeded() ? std::move(run.out) : std::string();
}

// "file:line" or "file:line (discriminator n)". "??:0" means unknown, and so
// does "name.cpp:?": without debug information addr2line still finds the
// source's base name in the symbol table, but no line and no directory.
void parse_location(const std::string& text, StackFrame& frame) {
  std::string location = text.substr(0, text.find(" ("));
  const std::size_t colon = location.rfind(':');
  if (colon == std::string::npos) return;
  std::string file = location.substr(0, colon);
  const int line = std::atoi(location.c_str() + colon + 1);
  if (file == "??" || file.empty() || line <= 0) return;
  frame.file = file;
  frame.line = line;
}

std::string index_str(const Shape& shape, std::int64_t flat) {
  std::vector<std::int64_t> index(shape.rank());
  for (std::size_t d = shape.rank(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  std::string out = "[";
  for (std::size_t d = 0; d < index.size(); ++d) out += (d ? "," : "") + std::to_string(index[d]);
  return out + "]";
}

// The first NaN or infinity of a floating tensor: its flat index and
// "NaN"/"Inf"/"-Inf"; index -1 when every value is finite.
std::pair<std::int64_t, const char*> first_non_finite(const Tensor& t) {
  if (!t.defined() || !is_floating(t.dtype())) return {-1, ""};
  std::pair<std::int64_t, const char*> found{-1, ""};
  detail::dispatch_float(t.dtype(), "anomaly", [&](auto tag) {
    using T = decltype(tag);
    const T* v = t.data<T>();
    const std::int64_t n = t.numel();
    for (std::int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(v[i])) {
        found = {i, std::isnan(v[i]) ? "NaN" : (v[i] > 0 ? "Inf" : "-Inf")};
        return;
      }
    }
  });
  return found;
}

std::string described(const Tensor& t) { return std::string(dtype_name(t.dtype())) + " " + t.shape().str(); }

std::string inputs_str(const Node& node) {
  std::string out;
  for (std::size_t i = 0; i < node.inputs().size(); ++i) {
    const Edge& edge = node.inputs()[i];
    out += (i ? ", " : "") + std::string(dtype_name(edge.dtype)) + " " + edge.shape.str();
  }
  return out.empty() ? "none" : out;
}

std::vector<Shape> input_shapes(const Node& node) {
  std::vector<Shape> shapes;
  for (const Edge& edge : node.inputs()) shapes.push_back(edge.shape);
  return shapes;
}

StackFrame site_of(const std::vector<void*>& stack) {
  for (const StackFrame& frame : symbolize(stack)) {
    if (!frame.internal) return frame;
  }
  return {};
}

std::string site_str(const NodeDebugInfo* info, const StackFrame& site) {
  if (info == nullptr || info->stack.empty()) return "created outside anomaly mode (no call site recorded)";
  if (site.function.empty() && site.file.empty()) return "call site unknown (no frame outside tapegrad could be symbolised)";
  return "created at " + site.str();
}

[[noreturn]] void report(const char* op, const std::string& inputs, std::vector<Shape> shapes,
                         const NodeDebugInfo* info, const std::string& what, const char* phase) {
  const StackFrame site = info ? site_of(info->stack) : StackFrame{};
  const std::string message = std::string(op) + ": anomaly mode: " + what + "; inputs: " + inputs + "; " +
                              site_str(info, site);
  throw AnomalyError(message, op, phase, site, std::move(shapes));
}

[[noreturn]] void report(const Node& node, const NodeDebugInfo* info, const std::string& what, const char* phase) {
  report(node.name(), inputs_str(node), input_shapes(node), info, what, phase);
}

// "NaN in the forward output (float64 [4x3], first at [0,1]) of <formula>",
// or empty when every value of `output` is finite.
std::string forward_finding(const Tensor& output, const char* formula) {
  const auto [index, kind] = first_non_finite(output);
  if (index < 0) return {};
  return std::string(kind) + " in the forward output (" + described(output) + ", first at " +
         index_str(output.shape(), index) + ") of " + formula;
}

std::vector<void*> call_stack() {
  void* frames[kMaxFrames];
  const int n = ::backtrace(frames, kMaxFrames);
  return std::vector<void*>(frames, frames + (n > 0 ? n : 0));
}

}  // namespace

bool anomaly_enabled() { return g_anomaly.load(std::memory_order_relaxed); }

void set_anomaly_enabled(bool enabled) {
  std::lock_guard<std::mutex> lock(g_flags_mutex);
  g_anomaly.store(enabled);
  update_debug_hooks();
}

AnomalyGuard::AnomalyGuard(bool enabled) : previous_(anomaly_enabled()) { set_anomaly_enabled(enabled); }
AnomalyGuard::~AnomalyGuard() { set_anomaly_enabled(previous_); }

CaptureValuesGuard::CaptureValuesGuard() {
  std::lock_guard<std::mutex> lock(g_flags_mutex);
  g_capture_values.fetch_add(1);
  update_debug_hooks();
}

CaptureValuesGuard::~CaptureValuesGuard() {
  std::lock_guard<std::mutex> lock(g_flags_mutex);
  g_capture_values.fetch_sub(1);
  update_debug_hooks();
}

std::string StackFrame::str() const {
  if (!file.empty()) {
    std::string out = file + ":" + std::to_string(line);
    return function.empty() ? out : out + " in " + function;
  }
  if (!function.empty()) return function;
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%p", address);
  return module.empty() ? std::string(buffer) : module + " at " + buffer;
}

std::vector<StackFrame> symbolize(const std::vector<void*>& stack) {
  // One addr2line run per loaded object, its frames in stack order.
  std::vector<Module> modules(stack.size());
  std::map<std::string, std::vector<std::size_t>> by_module;
  for (std::size_t i = 0; i < stack.size(); ++i) {
    modules[i] = find_module(stack[i]);
    if (!modules[i].path.empty()) by_module[modules[i].path].push_back(i);
  }
  std::vector<std::vector<StackFrame>> expanded(stack.size());
  for (const auto& [path, indices] : by_module) {
    std::vector<std::uintptr_t> addresses;
    for (std::size_t i : indices) {
      // A return address points after the call: look up the call itself.
      addresses.push_back(reinterpret_cast<std::uintptr_t>(stack[i]) - 1 - modules[i].bias);
    }
    std::istringstream out(run_addr2line(path, addresses));
    std::string line;
    std::size_t k = 0;  // which of `indices` the current "0x..." block belongs to
    bool started = false;
    std::string mangled;
    while (std::getline(out, line)) {
      if (starts_with(line, "0x")) {
        if (started) ++k;
        started = true;
        mangled.clear();
        continue;
      }
      if (!started || k >= indices.size()) break;
      if (mangled.empty()) {
        mangled = line;
        continue;
      }
      StackFrame frame;
      frame.address = stack[indices[k]];
      frame.module = path;
      if (mangled != "??") frame.function = demangle(mangled);
      parse_location(line, frame);
      frame.internal = system_module(path) || (frame.file.empty() ? internal_symbol(mangled) : internal_file(frame.file));
      expanded[indices[k]].push_back(std::move(frame));
      mangled.clear();
    }
  }
  std::vector<StackFrame> frames;
  for (std::size_t i = 0; i < stack.size(); ++i) {
    if (expanded[i].empty()) {
      // Not symbolised (no addr2line, or an unknown object): keep the address.
      StackFrame frame;
      frame.address = stack[i];
      frame.module = modules[i].path;
      Dl_info dl{};
      if (::dladdr(stack[i], &dl) != 0 && dl.dli_sname != nullptr) {
        frame.function = demangle(dl.dli_sname);
        frame.internal = internal_symbol(dl.dli_sname);
      }
      frame.internal = frame.internal || system_module(frame.module);
      frames.push_back(std::move(frame));
    } else {
      for (StackFrame& frame : expanded[i]) frames.push_back(std::move(frame));
    }
  }
  return frames;
}

StackFrame creation_site(const Node& node) {
  const NodeDebugInfo* info = debug_info(node);
  if (info == nullptr || info->stack.empty()) return {};
  return site_of(info->stack);
}

namespace {

// The tape hooks of anomaly mode and value capture, and the debug info they
// keep beside each node. Allocated once and never destroyed: nodes may die
// during static destruction, and each dying node still asks to be
// forgotten.
class DebugHooks final : public TapeHooks {
 public:
  void on_inputs(const Tensor* const* inputs, std::size_t count) override {
    t_pending_inputs.clear();
    if (g_capture_values.load(std::memory_order_relaxed) == 0) return;
    for (std::size_t i = 0; i < count; ++i) {
      Tensor value;
      if (inputs[i]->defined()) {
        value = inputs[i]->detach();
        if (!inputs[i]->name().empty()) value.set_name(inputs[i]->name());  // data and targets keep their names
      }
      t_pending_inputs.push_back(std::move(value));
    }
  }

  bool on_record(const Node& node, const Tensor* outputs, std::size_t count) override {
    auto info = std::make_unique<NodeDebugInfo>();
    if (g_capture_values.load(std::memory_order_relaxed) > 0) {
      info->value = outputs[0].detach();
      for (std::size_t k = 1; k < count; ++k) info->more_values.push_back(outputs[k].detach());
      if (t_pending_inputs.size() == node.inputs().size()) info->input_values = std::move(t_pending_inputs);
    }
    t_pending_inputs.clear();
    if (g_anomaly.load(std::memory_order_relaxed)) {
      info->stack = call_stack();
      for (std::size_t k = 0; k < count; ++k) {
        const std::string finding = forward_finding(outputs[k], node.formula());
        if (!finding.empty()) report(node, info.get(), finding, "forward");
      }
    }
    // Only now, past every throw: a node whose recording failed is never
    // told to be forgotten, so it must not be in the table.
    std::lock_guard<std::mutex> lock(mutex_);
    table_[&node] = std::move(info);
    return true;
  }

  void on_unrecorded(const OpInfo& op, const Tensor* const* inputs, std::size_t count, const Tensor& output) override {
    if (!g_anomaly.load(std::memory_order_relaxed)) return;
    const std::string finding = forward_finding(output, op.formula);
    if (finding.empty()) return;
    NodeDebugInfo info;
    info.stack = call_stack();
    std::string described_inputs;
    std::vector<Shape> shapes;
    for (std::size_t i = 0; i < count; ++i) {
      described_inputs += (i ? ", " : "") + (inputs[i]->defined() ? described(*inputs[i]) : std::string("undefined"));
      shapes.push_back(inputs[i]->shape());
    }
    report(op.name, described_inputs.empty() ? "none" : described_inputs, std::move(shapes), &info,
           finding + " (no input requires grad: no node was recorded)", "forward");
  }

  void on_backward(const Node& node, const GradientList& input_grads) override {
    if (!g_anomaly.load(std::memory_order_relaxed)) return;
    for (std::size_t i = 0; i < input_grads.size(); ++i) {
      const auto [index, kind] = first_non_finite(input_grads[i]);
      if (index < 0) continue;
      report(node, find(node),
             std::string(kind) + " in the gradient sent to input " + std::to_string(i) + " (" +
                 described(input_grads[i]) + ", first at " + index_str(input_grads[i].shape(), index) +
                 ") by the backward of " + node.formula(),
             "backward");
    }
  }

  void forget(const Node& node) noexcept override {
    std::unique_ptr<NodeDebugInfo> dying;  // destroyed after the lock: its tensors may free nodes too
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = table_.find(&node);
    if (it == table_.end()) return;
    dying = std::move(it->second);
    table_.erase(it);
  }

  const NodeDebugInfo* find(const Node& node) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = table_.find(&node);
    return it == table_.end() ? nullptr : it->second.get();
  }

 private:
  std::mutex mutex_;
  std::unordered_map<const Node*, std::unique_ptr<NodeDebugInfo>> table_;
};

DebugHooks& the_debug_hooks() {
  static DebugHooks* const hooks = new DebugHooks;
  return *hooks;
}

TapeHooks& debug_hooks() { return the_debug_hooks(); }

}  // namespace

const NodeDebugInfo* debug_info(const Node& node) { return the_debug_hooks().find(node); }

}  // namespace tools
}  // namespace tapegrad
