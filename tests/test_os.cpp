// The process helper (src/os/process.hpp): arguments passed without a
// shell, standard input fed, output captured or discarded, and every way a
// run can end told apart, with messages naming the program.
#include <sys/stat.h>

#include <csignal>
#include <fstream>
#include <string>

#include "os/process.hpp"
#include "support.hpp"

using namespace tapegrad;
using namespace tapegrad::os;
using namespace tapegrad::testing;

TEST_CASE("run_process passes arguments as they are, with no shell between", "[os][process]") {
  const ProcessResult r = run_process({"echo", "a  b", "'c'", "$HOME", "*"});
  CHECK(r.state == ProcessResult::State::Exited);
  CHECK(r.succeeded());
  CHECK(r.program == find_program("echo"));
  CHECK(r.out == "a  b 'c' $HOME *\n");
  CHECK(r.err.empty());
}

TEST_CASE("run_process feeds standard input and reads both outputs at once", "[os][process]") {
  SECTION("small input") {
    const ProcessResult r = run_process({"cat"}, {.input = "one\ntwo\n"});
    CHECK(r.succeeded());
    CHECK(r.out == "one\ntwo\n");
  }
  SECTION("more than a pipe holds, both ways: no dead-lock") {
    std::string big;
    for (int i = 0; i < 200000; ++i) big += std::to_string(i) + "\n";
    const ProcessResult r = run_process({"sh", "-c", "tee /dev/stderr"}, {.input = big});
    CHECK(r.succeeded());
    CHECK(r.out == big);
    CHECK(r.err == big);
  }
  SECTION("a child that reads none of its input: no SIGPIPE here") {
    const ProcessResult r = run_process({"true"}, {.input = std::string(1 << 20, 'x')});
    CHECK(r.succeeded());
  }
  SECTION("without input, standard input is /dev/null, not this process's terminal") {
    const ProcessResult r = run_process({"cat"});
    CHECK(r.succeeded());
    CHECK(r.out.empty());
  }
}

TEST_CASE("run_process captures or discards each output stream", "[os][process]") {
  const std::vector<std::string> both = {"sh", "-c", "echo to-out; echo to-err >&2"};
  const ProcessResult captured = run_process(both);
  CHECK(captured.out == "to-out\n");
  CHECK(captured.err == "to-err\n");
  const ProcessResult discarded = run_process(both, {.out = Output::Discard, .err = Output::Discard});
  CHECK(discarded.succeeded());
  CHECK(discarded.out.empty());
  CHECK(discarded.err.empty());
  const ProcessResult mixed = run_process(both, {.out = Output::Discard});
  CHECK(mixed.out.empty());
  CHECK(mixed.err == "to-err\n");
}

TEST_CASE("run_process tells every ending apart, and says which program and why", "[os][process]") {
  SECTION("exit status") {
    const ProcessResult r = run_process({"sh", "-c", "exit 3"});
    CHECK(r.state == ProcessResult::State::Exited);
    CHECK(r.exit_status == 3);
    CHECK_FALSE(r.succeeded());
    CHECK(r.describe() == find_program("sh") + " exited with status 3");
  }
  SECTION("killed by a signal") {
    const ProcessResult r = run_process({"sh", "-c", "kill -9 $$"});
    CHECK(r.state == ProcessResult::State::Signalled);
    CHECK(r.signal == SIGKILL);
    CHECK(r.describe() == find_program("sh") + " was killed by signal 9 (Killed)");
  }
  SECTION("not on PATH: nothing runs") {
    const ProcessResult r = run_process({"no-such-program-for-tapegrad", "x"});
    CHECK(r.state == ProcessResult::State::NotFound);
    CHECK_FALSE(r.found());
    CHECK(r.describe() == "'no-such-program-for-tapegrad' not found on PATH");
  }
  SECTION("a path that is not an executable file") {
    TempDir dir;
    const ProcessResult r = run_process({dir.file("absent")});
    CHECK(r.state == ProcessResult::State::NotFound);
    // quoted() rather than "'" + path + "'": g++ 12 warns (-Wrestrict, a false positive) on that concatenation.
    const auto quoted = [](const std::string& path) { return std::string(1, '\'').append(path).append("'"); };
    CHECK(r.describe() == quoted(dir.file("absent")) + " is not an executable file");
    CHECK(run_process({dir.path().string()}).describe() == quoted(dir.path().string()) + " is not an executable file");
  }
  SECTION("found but not startable") {
    TempDir dir;
    const std::string junk = dir.file("junk");
    std::ofstream(junk) << "\x7f"
                           "ELF but not really";
    REQUIRE(::chmod(junk.c_str(), 0755) == 0);
    const ProcessResult r = run_process({junk});
    CHECK(r.state == ProcessResult::State::NotStarted);
    CHECK(r.found());
    CHECK(r.describe() == junk + " could not be started: Exec format error");
  }
  SECTION("no program at all") {
    REQUIRE_THROWS_MESSAGE(run_process({}), std::invalid_argument, "run_process: no program given");
    REQUIRE_THROWS_MESSAGE(run_process({""}), std::invalid_argument, "run_process: no program given");
  }
}

TEST_CASE("find_program looks on PATH and skips directories", "[os][process]") {
  const std::string sh = find_program("sh");
  REQUIRE_FALSE(sh.empty());
  CHECK(sh.front() == '/');
  CHECK(find_program(sh) == sh);
  CHECK(find_program("no-such-program-for-tapegrad").empty());
  CHECK(find_program("/tmp").empty());
  CHECK(find_program("").empty());
}
