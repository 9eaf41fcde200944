// nicctl handover on a terminal and under Ctrl-C: the live progress line on
// a pseudo-terminal, the cancel prompt answered on the terminal, and SIGINT
// with and without --cancel-on-interrupt when there is no terminal.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/match.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "nichandover/v1/node_service.pb.h"
#include "tests/testing/daemon_cluster.h"

namespace nichandover {
namespace {

using ::nichandover::testing::ClusterOptions;
using ::nichandover::testing::CommandResult;
using ::nichandover::testing::DaemonCluster;
using ::nichandover::testing::NodeSpec;
using ::nichandover::testing::RunfilePath;
using ::nichandover::testing::Subprocess;
using ::nichandover::testing::WaitUntil;

constexpr char kNic[] = "0000:03:00.0";

// A child process whose stdin, stdout and stderr are a pseudo-terminal that
// is its controlling terminal, as a shell in a terminal emulator runs it.
class PtyProcess {
 public:
  explicit PtyProcess(const std::vector<std::string>& argv) {
    master_ = posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ < 0 || grantpt(master_) != 0 || unlockpt(master_) != 0) return;
    std::string slave_name = ptsname(master_);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      setsid();
      int slave = open(slave_name.c_str(), O_RDWR);
      if (slave < 0) _exit(127);
      ioctl(slave, TIOCSCTTY, 0);
      dup2(slave, 0);
      dup2(slave, 1);
      dup2(slave, 2);
      close(slave);
      close(master_);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~PtyProcess() {
    if (pid_ > 0 && exit_code_ < 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) close(master_);
  }

  bool started() const { return pid_ > 0; }
  const std::string& output() const { return output_; }

  // Reads the terminal until `text` shows up (true) or `timeout` passes.
  bool WaitFor(const std::string& text, absl::Duration timeout = absl::Seconds(15)) {
    absl::Time deadline = absl::Now() + timeout;
    while (output_.find(text) == std::string::npos) {
      if (absl::Now() > deadline || !ReadSome(absl::Milliseconds(50))) {
        if (absl::Now() > deadline) return false;
      }
    }
    return true;
  }

  // Types on the terminal ("\x03" is Ctrl-C).
  void Type(const std::string& text) { (void)!write(master_, text.data(), text.size()); }

  // Waits for the exit, reading the terminal meanwhile; -1 on timeout.
  int Wait(absl::Duration timeout = absl::Seconds(30)) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      ReadSome(absl::Milliseconds(20));
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        while (ReadSome(absl::Milliseconds(20))) {
        }
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_code_;
      }
    }
    return -1;
  }

 private:
  // False when nothing came (or the terminal closed).
  bool ReadSome(absl::Duration timeout) {
    pollfd p = {master_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0) return false;
    char buf[4096];
    ssize_t n = read(master_, buf, sizeof buf);
    if (n <= 0) return false;
    output_.append(buf, n);
    return true;
  }

  int master_ = -1;
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string output_;
};

class NicctlTtyTest : public ::testing::Test {
 protected:
  static ClusterOptions Options() {
    ClusterOptions options;
    options.nodes = {NodeSpec{"node0", {{0, 0}}}, NodeSpec{"node1", {{0, 16}}}};
    // A hung reroute holds the handover; it must not time out by accident.
    options.extra_config =
        "timeouts { peer_call { seconds: 5 } reroute { seconds: 30 } handover { seconds: 30 } }";
    return options;
  }
  void SetUp() override { ASSERT_TRUE(cluster_.StartAll().ok()); }

  std::vector<std::string> NicctlArgv(std::vector<std::string> args) {
    std::vector<std::string> argv = {RunfilePath("cli/nicctl"), "--server",
                                     cluster_.socket_address(0)};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  void HoldInRerouting() {
    ASSERT_EQ(cluster_.FakeMachine({"set-fault", "--node", "node0", "--op", "reroute", "--hang"})
                  .exit_code,
              0);
  }
  void Release() { ASSERT_EQ(cluster_.FakeMachine({"clear-fault"}).exit_code, 0); }

  // node0's handovers as the daemon reports them.
  v1::ListHandoversResponse Handovers() {
    CommandResult r = cluster_.Nicctl(0, {"handover", "list", "--json"});
    v1::ListHandoversResponse list;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &list).ok()) << r.out;
    return list;
  }

  // node0's only handover (a default one when there is none: the test fails).
  v1::Handover OnlyHandover() {
    v1::ListHandoversResponse list = Handovers();
    EXPECT_EQ(list.handovers_size(), 1) << list.DebugString();
    return list.handovers_size() ? list.handovers(0) : v1::Handover();
  }

  bool Rerouting() {
    v1::ListHandoversResponse list = Handovers();
    for (const auto& h : list.handovers()) {
      if (!h.done() && h.phase() == v1::HANDOVER_PHASE_REROUTING) return true;
    }
    return false;
  }

  // nicctl handover on a terminal, held in rerouting, Ctrl-C typed and the
  // prompt answered with `answer`.
  std::unique_ptr<PtyProcess> CtrlCAndAnswer(const std::string& answer) {
    HoldInRerouting();
    auto nicctl = std::make_unique<PtyProcess>(NicctlArgv({"handover", kNic, "--to", "node1"}));
    EXPECT_TRUE(nicctl->started());
    EXPECT_TRUE(nicctl->WaitFor("  rerouting")) << nicctl->output();
    nicctl->Type("\x03");
    EXPECT_TRUE(nicctl->WaitFor("[y/N]")) << nicctl->output();
    nicctl->Type(answer);
    return nicctl;
  }

  DaemonCluster cluster_{Options()};
};

TEST_F(NicctlTtyTest, LiveProgressLineOnATerminal) {
  HoldInRerouting();
  PtyProcess nicctl(NicctlArgv({"handover", kNic, "--to", "node1"}));
  ASSERT_TRUE(nicctl.started());
  // While rerouting hangs, its status line redraws in place with the time spent.
  ASSERT_TRUE(nicctl.WaitFor("\r\033[K  rerouting")) << nicctl.output();
  ASSERT_TRUE(nicctl.WaitFor("s  /")) << "spinner turns: " << nicctl.output();
  Release();
  EXPECT_EQ(nicctl.Wait(), 0) << nicctl.output();
  const std::string& out = nicctl.output();
  // The finished phase replaced its status line with a complete one.
  EXPECT_TRUE(absl::StrContains(out, "\r\033[K  rerouting   ")) << out;
  EXPECT_TRUE(absl::StrContains(out, "record HANDOFF(node0->node1,2)")) << out;
  EXPECT_TRUE(absl::StrContains(out, "committed: 0000:03:00.0 is now owned by node1")) << out;
}

// nicctl drain on a terminal: a status line with the running NICs' phases
// redraws in place, then per-NIC lines and the summary.
TEST_F(NicctlTtyTest, DrainRedrawsItsStatusLineOnATerminal) {
  HoldInRerouting();
  PtyProcess nicctl(NicctlArgv({"drain", "node0"}));
  ASSERT_TRUE(nicctl.started());
  ASSERT_TRUE(nicctl.WaitFor("\r\033[K  0/1 done; 0000:03:00.0 rerouting")) << nicctl.output();
  Release();
  EXPECT_EQ(nicctl.Wait(), 0) << nicctl.output();
  const std::string& out = nicctl.output();
  EXPECT_TRUE(absl::StrContains(out, "\r\033[K  0000:03:00.0 -> node1    moved")) << out;
  EXPECT_TRUE(absl::StrContains(out, "1 of 1 NICs moved")) << out;
  EXPECT_TRUE(absl::StrContains(out, "moved to: node1 1")) << out;
}

TEST_F(NicctlTtyTest, CtrlCAsksAndYesCancels) {
  std::unique_ptr<PtyProcess> nicctl = CtrlCAndAnswer("y\n");
  ASSERT_TRUE(nicctl->WaitFor("cancel requested")) << nicctl->output();
  Release();
  EXPECT_EQ(nicctl->Wait(), 5) << nicctl->output();
  EXPECT_TRUE(absl::StrContains(nicctl->output(), "rolled back: 0000:03:00.0 stays with node0"))
      << nicctl->output();
  v1::Handover h = OnlyHandover();
  EXPECT_EQ(h.phase(), v1::HANDOVER_PHASE_ROLLED_BACK);
  EXPECT_TRUE(h.cancel_requested());
}

TEST_F(NicctlTtyTest, CtrlCAnsweredNoKeepsFollowing) {
  std::unique_ptr<PtyProcess> nicctl = CtrlCAndAnswer("n\n");
  ASSERT_TRUE(nicctl->WaitFor("continuing to follow")) << nicctl->output();
  Release();
  EXPECT_EQ(nicctl->Wait(), 0) << nicctl->output();
  EXPECT_TRUE(absl::StrContains(nicctl->output(), "committed: ")) << nicctl->output();
  EXPECT_FALSE(OnlyHandover().cancel_requested());
}

TEST_F(NicctlTtyTest, SigintWithCancelOnInterruptRollsBackExit5) {
  HoldInRerouting();
  auto nicctl = Subprocess::Start(
      NicctlArgv({"handover", kNic, "--to", "node1", "--cancel-on-interrupt"}), cluster_.dir());
  ASSERT_TRUE(nicctl.ok()) << nicctl.status();
  ASSERT_TRUE(WaitUntil([&] { return Rerouting(); }, absl::Seconds(10)));
  nicctl->Signal(SIGINT);
  ASSERT_TRUE(WaitUntil(
      [&] { return absl::StrContains(nicctl->Stderr(), "cancel requested"); }, absl::Seconds(10)))
      << nicctl->Stderr();
  Release();
  auto rc = nicctl->Wait(absl::Seconds(30));
  ASSERT_TRUE(rc.ok());
  EXPECT_EQ(*rc, 5) << nicctl->Stdout() << nicctl->Stderr();
  EXPECT_EQ(OnlyHandover().phase(), v1::HANDOVER_PHASE_ROLLED_BACK);
}

TEST_F(NicctlTtyTest, SigintWithoutTerminalLeavesTheHandoverRunning) {
  HoldInRerouting();
  auto nicctl =
      Subprocess::Start(NicctlArgv({"handover", kNic, "--to", "node1"}), cluster_.dir());
  ASSERT_TRUE(nicctl.ok()) << nicctl.status();
  ASSERT_TRUE(WaitUntil([&] { return Rerouting(); }, absl::Seconds(10)));
  nicctl->Signal(SIGINT);
  auto rc = nicctl->Wait(absl::Seconds(10));
  ASSERT_TRUE(rc.ok());
  EXPECT_EQ(*rc, 130) << nicctl->Stderr();
  EXPECT_TRUE(absl::StrContains(nicctl->Stderr(), "goes on without nicctl")) << nicctl->Stderr();
  EXPECT_TRUE(absl::StrContains(nicctl->Stderr(), "nicctl handover watch ")) << nicctl->Stderr();
  EXPECT_TRUE(Rerouting()) << "still running, not cancelled";
  Release();
  ASSERT_TRUE(WaitUntil([&] { return OnlyHandover().done(); }, absl::Seconds(30)));
  EXPECT_EQ(OnlyHandover().phase(), v1::HANDOVER_PHASE_COMMITTED);
}

}  // namespace
}  // namespace nichandover
