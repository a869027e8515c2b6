#include "os/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <tuple>

#include "tapegrad/error.hpp"

extern char** environ;

namespace tapegrad::os {

namespace {

// A file descriptor closed when it goes out of scope (or by close()).
class Descriptor {
 public:
  Descriptor() = default;
  explicit Descriptor(int fd) : fd_(fd) {}
  Descriptor(Descriptor&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Descriptor& operator=(Descriptor&& other) noexcept {
    if (this != &other) {
      close();
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  ~Descriptor() { close(); }

  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// One end for us, one for the child. Both ends are close-on-exec, so that a
// program started meanwhile from another thread does not inherit them (and
// keep our reads from ever ending); the child's dup2 clears the flag on its
// copy.
struct Channel {
  Descriptor ours;
  Descriptor theirs;
};

[[noreturn]] void fail(const char* what) { throw_runtime("run_process", what, ": ", std::strerror(errno)); }

Channel output_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fail("cannot create a pipe");
  return {Descriptor(fds[0]), Descriptor(fds[1])};
}

// Standard input is a socket pair rather than a pipe: send() with
// MSG_NOSIGNAL reports a child that stopped reading as EPIPE instead of
// killing this process with SIGPIPE.
Channel input_socket() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) fail("cannot create a socket pair");
  return {Descriptor(fds[0]), Descriptor(fds[1])};
}

class SpawnActions {
 public:
  SpawnActions() { posix_spawn_file_actions_init(&actions_); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&actions_); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;

  void connect(int child_fd, const Descriptor& to) { posix_spawn_file_actions_adddup2(&actions_, to.get(), child_fd); }
  void null(int child_fd, int flags) { posix_spawn_file_actions_addopen(&actions_, child_fd, "/dev/null", flags, 0); }
  const posix_spawn_file_actions_t* get() const { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

// Reads what is ready on `fd` into `text`; false at end of file (or error).
bool read_some(int fd, std::string& text) {
  char buffer[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      text.append(buffer, static_cast<std::size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

// Feeds `input` to the child and collects its captured streams until the
// child has closed them and taken all the input (or stopped reading it).
void serve(Descriptor& in, const std::string& input, Descriptor& out, std::string& out_text, Descriptor& err,
           std::string& err_text) {
  std::size_t written = 0;
  if (in.open() && input.empty()) in.close();
  while (in.open() || out.open() || err.open()) {
    pollfd fds[3];
    nfds_t count = 0;
    Descriptor* owners[3];
    for (Descriptor* d : {&in, &out, &err}) {
      if (!d->open()) continue;
      fds[count] = {d->get(), static_cast<short>(d == &in ? POLLOUT : POLLIN), 0};
      owners[count++] = d;
    }
    if (::poll(fds, count, -1) < 0) {
      if (errno == EINTR) continue;
      // Cannot happen with valid descriptors; stop serving rather than
      // throw, so that the caller still reaps the child.
      for (nfds_t i = 0; i < count; ++i) owners[i]->close();
      return;
    }
    for (nfds_t i = 0; i < count; ++i) {
      if (fds[i].revents == 0) continue;
      Descriptor& d = *owners[i];
      if (&d == &in) {
        const ssize_t n = ::send(d.get(), input.data() + written, input.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) written += static_cast<std::size_t>(n);
        // EPIPE or a hang-up: the child will read no more, which is its business.
        const bool gone = n < 0 && errno != EAGAIN && errno != EINTR;
        if (gone || written == input.size()) d.close();
      } else if (!read_some(d.get(), &d == &out ? out_text : err_text)) {
        d.close();
      }
    }
  }
}

}  // namespace

std::string find_program(const std::string& program) {
  if (program.empty()) return "";
  struct stat info {};
  auto executable = [&](const std::string& path) {
    return ::access(path.c_str(), X_OK) == 0 && ::stat(path.c_str(), &info) == 0 && !S_ISDIR(info.st_mode);
  };
  if (program.find('/') != std::string::npos) return executable(program) ? program : "";
  const char* path = std::getenv("PATH");
  const std::string dirs = path ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  for (;;) {
    const std::size_t stop = dirs.find(':', start);
    std::string dir = dirs.substr(start, stop == std::string::npos ? std::string::npos : stop - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + program;
    if (executable(candidate)) return candidate;
    if (stop == std::string::npos) return "";
    start = stop + 1;
  }
}

std::string ProcessResult::describe() const {
  switch (state) {
    case State::NotFound:
      return "'" + program +
             (program.find('/') != std::string::npos ? "' is not an executable file" : "' not found on PATH");
    case State::NotStarted:
      return program + " could not be started: " + start_error;
    case State::Exited:
      return program + " exited with status " + std::to_string(exit_status);
    case State::Signalled:
      return program + " was killed by signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
  }
  return program;
}

ProcessResult run_process(const std::vector<std::string>& args, const ProcessOptions& options) {
  if (args.empty() || args[0].empty()) throw_invalid("run_process", "no program given");
  ProcessResult result;
  result.program = find_program(args[0]);
  if (result.program.empty()) {
    result.program = args[0];
    return result;
  }

  SpawnActions actions;
  Channel in, out, err;
  if (options.input) {
    in = input_socket();
    actions.connect(STDIN_FILENO, in.theirs);
  } else {
    actions.null(STDIN_FILENO, O_RDONLY);
  }
  for (auto [mode, channel, fd] :
       {std::tuple{options.out, &out, STDOUT_FILENO}, std::tuple{options.err, &err, STDERR_FILENO}}) {
    if (mode == Output::Capture) {
      *channel = output_pipe();
      actions.connect(fd, channel->theirs);
    } else {
      actions.null(fd, O_WRONLY);
    }
  }

  std::vector<std::string> copy = args;
  copy[0] = result.program;
  std::vector<char*> argv;
  for (std::string& arg : copy) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, result.program.c_str(), actions.get(), nullptr, argv.data(), environ);
  // Our copies of the child's ends go now: end of file on a captured stream
  // then means the child (and whatever it started) has closed it.
  in.theirs.close();
  out.theirs.close();
  err.theirs.close();
  if (spawned != 0) {
    result.state = ProcessResult::State::NotStarted;
    result.start_error = std::strerror(spawned);
    return result;
  }

  serve(in.ours, options.input.value_or(""), out.ours, result.out, err.ours, result.err);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) fail("cannot wait for the child");
  }
  if (WIFEXITED(status)) {
    result.state = ProcessResult::State::Exited;
    result.exit_status = WEXITSTATUS(status);
  } else {
    result.state = ProcessResult::State::Signalled;
    result.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }
  return result;
}

}  // namespace tapegrad::os
