// nicctl handover and its subcommands against real daemons on the fake
// platform: progress and summary text, --json, --no-wait, list/show/watch/
// cancel/recover, and the exit code and advice for every outcome.
#include <signal.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
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
using ::nichandover::testing::RunCommand;
using ::nichandover::testing::RunfilePath;
using ::nichandover::testing::Subprocess;
using ::nichandover::testing::WaitUntil;

constexpr char kNic[] = "0000:03:00.0";

ClusterOptions TwoNodes(std::string fake_nics = testing::kDefaultFakeNics) {
  ClusterOptions options;
  options.nodes = {NodeSpec{"node0", {{0, 0}, {1, 1}}}, NodeSpec{"node1", {{0, 16}, {1, 17}}}};
  options.fake_nics = std::move(fake_nics);
  // Steps never time out by accident on a loaded machine; a hung reroute
  // holds a handover for as long as a test needs it.
  options.extra_config =
      "timeouts { peer_call { seconds: 5 } quiesce { seconds: 5 } reroute { seconds: 30 } "
      "attach { seconds: 5 } handover { seconds: 30 } }";
  return options;
}

v1::Handover ParseHandover(const std::string& json) {
  v1::Handover h;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &h).ok()) << json;
  return h;
}

class NicctlHandoverTest : public ::testing::Test {
 protected:
  explicit NicctlHandoverTest(ClusterOptions options = TwoNodes()) : cluster_(std::move(options)) {}
  void SetUp() override { ASSERT_TRUE(cluster_.StartAll().ok()); }

  void SetFault(std::vector<std::string> args) {
    std::vector<std::string> argv = {"set-fault"};
    argv.insert(argv.end(), args.begin(), args.end());
    ASSERT_EQ(cluster_.FakeMachine(argv).exit_code, 0);
  }

  // nicctl in the background against node0; stdout/stderr into files.
  Subprocess StartNicctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {RunfilePath("cli/nicctl"), "--server",
                                     cluster_.socket_address(0)};
    argv.insert(argv.end(), args.begin(), args.end());
    auto p = Subprocess::Start(argv, cluster_.dir());
    EXPECT_TRUE(p.ok()) << p.status();
    return std::move(*p);
  }

  // The id of node0's only running handover, once it reached `phase`.
  std::string WaitForPhase(v1::HandoverPhase phase) {
    std::string id;
    EXPECT_TRUE(WaitUntil(
        [&] {
          CommandResult r = cluster_.Nicctl(0, {"handover", "list", "--json"});
          v1::ListHandoversResponse list;
          if (!google::protobuf::util::JsonStringToMessage(r.out, &list).ok()) return false;
          for (const auto& h : list.handovers()) {
            if (!h.done() && h.phase() == phase) id = h.handover_id();
          }
          return !id.empty();
        },
        absl::Seconds(10), absl::Milliseconds(50)));
    return id;
  }

  DaemonCluster cluster_;
};

TEST_F(NicctlHandoverTest, PlainProgressLinesThenSummaryWithoutATerminal) {
  CommandResult r = cluster_.Nicctl(0, {"handover", "03:00.0", "--to", "node1"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find('\r'), std::string::npos) << "no redraws into a file: " << r.out;
  EXPECT_EQ(r.out.find('\033'), std::string::npos) << r.out;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 8u) << r.out;
  EXPECT_TRUE(absl::StartsWith(lines[0], "handover ")) << r.out;
  EXPECT_TRUE(absl::StrContains(lines[0], ": 0000:03:00.0 node0 -> node1, epoch 1 -> 2")) << r.out;
  // One line per phase in protocol order, each with a duration.
  std::vector<std::string> phases;
  size_t i = 1;
  for (; i < lines.size() && absl::StartsWith(lines[i], "  "); ++i) {
    std::vector<std::string> words = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    ASSERT_GE(words.size(), 2u) << lines[i];
    phases.push_back(words[0]);
    EXPECT_TRUE(absl::EndsWith(words[1], "ms") || absl::EndsWith(words[1], "s")) << lines[i];
  }
  EXPECT_EQ(phases, (std::vector<std::string>{"pending", "offering", "quiescing", "rerouting",
                                              "handing-off", "attaching"}))
      << r.out;
  EXPECT_NE(r.out.find("offering"), std::string::npos);
  EXPECT_TRUE(absl::StrContains(r.out, "accepted by node1")) << r.out;
  ASSERT_LT(i, lines.size());
  EXPECT_EQ(lines[i], "committed: 0000:03:00.0 is now owned by node1") << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "  owner     node0 -> node1\n")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "  epoch     1 -> 2\n")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "  total     ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "  drained   0 TX + 0 RX packets\n")) << r.out;
  // And the NIC did move.
  r = cluster_.Nicctl(1, {"nics"});
  EXPECT_TRUE(absl::StrContains(r.out, "node1 (active)  2")) << r.out;
}

TEST_F(NicctlHandoverTest, JsonIsTheFinalHandover) {
  CommandResult r = cluster_.Nicctl(
      0, {"handover", kNic, "--to", "node1", "--json", "--request-id", "json-1", "--timeout", "30s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::Handover h = ParseHandover(r.out);
  EXPECT_EQ(h.phase(), v1::HANDOVER_PHASE_COMMITTED);
  EXPECT_TRUE(h.done());
  EXPECT_EQ(h.request_id(), "json-1");
  EXPECT_EQ(h.timeout().seconds(), 30);
  for (const char* key : {"\"handover_id\"", "\"request_id\"", "\"bdf\"", "\"source_node\"",
                          "\"target_node\"", "\"from_epoch\"", "\"to_epoch\"", "\"phase\"",
                          "\"phases\"", "\"duration\"", "\"done\"", "\"stats\"",
                          "\"HANDOVER_PHASE_COMMITTED\""}) {
    EXPECT_NE(r.out.find(key), std::string::npos) << key << " in " << r.out;
  }
  // The same request id again returns the same handover (idempotent retry).
  r = cluster_.Nicctl(0, {"handover", kNic, "--to", "node1", "--json", "--request-id", "json-1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ParseHandover(r.out).handover_id(), h.handover_id());
}

TEST_F(NicctlHandoverTest, NoWaitThenListShowWatch) {
  SetFault({"--node", "node0", "--op", "reroute", "--hang"});
  CommandResult r = cluster_.Nicctl(0, {"handover", kNic, "--to", "node1", "--no-wait"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "started: 0000:03:00.0 node0 -> node1")) << r.out;
  std::string id = WaitForPhase(v1::HANDOVER_PHASE_REROUTING);
  ASSERT_FALSE(id.empty());
  EXPECT_TRUE(absl::StrContains(r.out, "nicctl handover watch " + id)) << r.out;

  r = cluster_.Nicctl(0, {"handover", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(lines[1].find("rerouting"), lines[0].find("PHASE")) << r.out;
  EXPECT_EQ(lines[1].rfind(id, 0), 0u) << r.out;

  r = cluster_.Nicctl(0, {"handover", "show", id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "phase      rerouting (running)")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "  quiescing")) << r.out;

  // watch gives up after its --timeout (exit 6), the handover goes on.
  r = cluster_.Nicctl(0, {"handover", "watch", id, "--timeout", "500ms"});
  EXPECT_EQ(r.exit_code, 6) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "gave up waiting for handover " + id)) << r.err;

  Subprocess watch = StartNicctl({"handover", "watch", id});
  ASSERT_EQ(cluster_.FakeMachine({"clear-fault"}).exit_code, 0);
  auto rc = watch.Wait(absl::Seconds(30));
  ASSERT_TRUE(rc.ok());
  EXPECT_EQ(*rc, 0) << watch.Stdout() << watch.Stderr();
  EXPECT_TRUE(absl::StrContains(watch.Stdout(), "committed: 0000:03:00.0 is now owned by node1"))
      << watch.Stdout();

  r = cluster_.Nicctl(0, {"handover", "show", "handovers/" + id, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ParseHandover(r.out).phase(), v1::HANDOVER_PHASE_COMMITTED);
  r = cluster_.Nicctl(0, {"handover", "list", "--json", "--nic", "03:00.0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::ListHandoversResponse list;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &list).ok()) << r.out;
  ASSERT_EQ(list.handovers_size(), 1);
  EXPECT_EQ(list.handovers(0).handover_id(), id);
  r = cluster_.Nicctl(0, {"handover", "watch", id, "--json"});
  EXPECT_EQ(r.exit_code, 0) << "watching a finished handover reports its outcome";
  EXPECT_EQ(ParseHandover(r.out).handover_id(), id);
}

TEST_F(NicctlHandoverTest, CancelRollsBackExit5AndLateCancelIsRefused) {
  SetFault({"--node", "node0", "--op", "reroute", "--hang"});
  Subprocess follower = StartNicctl({"handover", kNic, "--to", "node1"});
  std::string id = WaitForPhase(v1::HANDOVER_PHASE_REROUTING);
  ASSERT_FALSE(id.empty());
  CommandResult r = cluster_.Nicctl(0, {"handover", "cancel", id, "--reason", "wrong node",
                                        "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(ParseHandover(r.out).cancel_requested()) << r.out;
  ASSERT_EQ(cluster_.FakeMachine({"clear-fault"}).exit_code, 0);
  auto rc = follower.Wait(absl::Seconds(30));
  ASSERT_TRUE(rc.ok());
  EXPECT_EQ(*rc, 5) << follower.Stdout() << follower.Stderr();
  EXPECT_TRUE(absl::StrContains(follower.Stdout(), "rolled back: 0000:03:00.0 stays with node0"))
      << follower.Stdout();
  EXPECT_TRUE(absl::StrContains(follower.Stdout(), "owner     node0 (unchanged)"));
  EXPECT_TRUE(absl::StrContains(follower.Stderr(), "rolled back: cancelled: wrong node"))
      << follower.Stderr();
  // A finished handover cannot be cancelled: refused, with a reason.
  r = cluster_.Nicctl(0, {"handover", "cancel", id});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "nicctl: cancelling handover " + id)) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "hint: ")) << r.err;
  r = cluster_.Nicctl(0, {"handover", "cancel", "no-such-id"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
}

TEST_F(NicctlHandoverTest, HandoverDeadlineExits6) {
  // The reroute hangs past the handover's 1 s deadline, then returns; the
  // source rolls back for the deadline.
  SetFault({"--node", "node0", "--op", "reroute", "--hang", "--hang-max-ms", "2000"});
  CommandResult r = cluster_.Nicctl(0, {"handover", kNic, "--to", "node1", "--timeout", "1s"});
  EXPECT_EQ(r.exit_code, 6) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "rolled back: ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.err, "deadline")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "hint: see which phase took long")) << r.err;
}

TEST_F(NicctlHandoverTest, StuckRollbackFailsExit8AndPointsToRecover) {
  SetFault({"--node", "node0", "--op", "reroute", "--fail", "INTERNAL", "--always"});
  SetFault({"--node", "node0", "--op", "restore", "--fail", "INTERNAL", "--always"});
  CommandResult r = cluster_.Nicctl(0, {"handover", kNic, "--to", "node1"}, absl::Seconds(60));
  EXPECT_EQ(r.exit_code, 8) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "FAILED: 0000:03:00.0 needs an operator's decision"))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "rerouting")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.err, "nicctl recover 0000:03:00.0 --decide commit|abort"))
      << r.err;
}

TEST_F(NicctlHandoverTest, TargetDownRollsBackExit5WithAdvice) {
  ASSERT_TRUE(cluster_.Stop(1, SIGKILL).ok());
  CommandResult r = cluster_.Nicctl(0, {"handover", kNic, "--to", "node1"});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "offer to node1 failed")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "hint: is nichandoverd running on node1?")) << r.err;
}

TEST_F(NicctlHandoverTest, BadRequestsExitWithTheirClass) {
  struct Case {
    std::vector<std::string> args;
    int node;
    int exit_code;
    std::string fragment;
  } cases[] = {
      {{"handover", "0000:99:00.0", "--to", "node1"}, 0, 3, "'nicctl nics' lists the NICs"},
      {{"handover", kNic, "--to", "node7"}, 0, 3, "'nicctl nodes'"},
      {{"handover", kNic, "--to", "node0"}, 0, 2, "target_node"},
      {{"handover", kNic, "--to", "node0"}, 1, 4, "run it on the node that owns the NIC"},
      {{"handover", kNic}, 0, 2, "--to NODE"},
      {{"handover", kNic, "--to", "node1", "--timeout", "soon"}, 0, 2, "--timeout"},
      // Issue 16.1: absurd deadlines are refused, not saturated or dropped.
      {{"handover", kNic, "--to", "node1", "--timeout", "99999999999999h"}, 0, 2, "timeout: "},
      {{"handover", kNic, "--to", "node1", "--timeout", "25h"}, 0, 2, "timeout: must be at most"},
      {{"handover", kNic, "--to", "node1", "--request-id", "bad id!"}, 0, 2, "request_id"},
      {{"handover", kNic, "--to", "node1", "--commit-path", "fast"}, 0, 2,
       "--commit-path: 'fast' is not one of auto, kernel, daemon"},
      {{"handover", "show", "nope"}, 0, 3, "'nicctl handover list'"},
      {{"handover", "watch", "nope"}, 0, 3, "'nicctl handover list'"},
      {{"handover", "list", "--limit", "0"}, 0, 2, "--limit"},
      {{"recover", kNic}, 0, 2, "--decide commit"},
      {{"recover", kNic, "--decide", "maybe"}, 0, 2, "--decide abort"},
  };
  for (const auto& c : cases) {
    CommandResult r = cluster_.Nicctl(c.node, c.args);
    std::string what = absl::StrJoin(c.args, " ");
    EXPECT_EQ(r.exit_code, c.exit_code) << what << ": " << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, c.fragment)) << what << ": " << r.err;
    EXPECT_TRUE(absl::StartsWith(r.err, "nicctl: ")) << what << ": " << r.err;
  }
  // Daemon unreachable: 7, for every command that needs it.
  std::string dead = "unix:" + cluster_.dir() + "/nobody.sock";
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"nics"}, {"nic", "show", kNic}, {"msi", "show", kNic},
        {"handover", kNic, "--to", "node1"}, {"handover", "list"}, {"handover", "show", "x"},
        {"handover", "watch", "x"}, {"handover", "cancel", "x"},
        {"recover", kNic, "--decide", "abort"}}) {
    std::vector<std::string> argv = {RunfilePath("cli/nicctl"), "--server", dead};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult r = RunCommand(argv, cluster_.dir());
    EXPECT_EQ(r.exit_code, 7) << absl::StrJoin(args, " ") << ": " << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, "cannot reach nichandoverd at " + dead)) << r.err;
  }
}

// --commit-path reaches the daemon and the path comes back in the summary,
// in 'handover show' and in --json (needs the protocol machine's kernel
// commit path, branch fp-protocol, to fill the Handover's commit paths).
TEST_F(NicctlHandoverTest, CommitPathIsAskedForAndShown) {
  CommandResult r = cluster_.Nicctl(
      0, {"handover", kNic, "--to", "node1", "--commit-path", "daemon", "--no-wait", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::Handover started = ParseHandover(r.out);
  EXPECT_EQ(started.requested_commit_path(), v1::COMMIT_PATH_DAEMON) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "\"requested_commit_path\": \"COMMIT_PATH_DAEMON\""))
      << r.out;
  r = cluster_.Nicctl(0, {"handover", "watch", started.handover_id()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "  commit    daemon (asked: daemon)\n")) << r.out;
  r = cluster_.Nicctl(0, {"handover", "show", started.handover_id()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "commit path daemon (asked: daemon)\n")) << r.out;
  r = cluster_.Nicctl(0, {"handover", "show", started.handover_id(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ParseHandover(r.out).commit_path(), v1::COMMIT_PATH_DAEMON) << r.out;
}

// The kernel commit path end to end (issue 14): nicctl --commit-path
// daemon|kernel|auto, and what the machine shows afterwards -- the
// handover's commit path, the record, and whose CAS committed it (the target
// kernel's "kernel-commit" in the fake machine's history, or none on the
// daemon path). Needs the protocol machine's kernel commit path (branch
// fp-protocol) besides the fake's FastPath.
ClusterOptions TwoNodesWithTheKernelPath() {
  ClusterOptions options = TwoNodes();
  options.kernel_commit = true;
  return options;
}

class NicctlKernelCommitTest : public NicctlHandoverTest {
 protected:
  NicctlKernelCommitTest() : NicctlHandoverTest(TwoNodesWithTheKernelPath()) {}
  // Each test starts the daemons itself (after changing a config).
  void SetUp() override {}

  // Hands the NIC from node `from` to the other node along `path`; the
  // final handover (--json).
  v1::Handover HandOver(int from, const std::string& path) {
    std::vector<std::string> args = {"handover", kNic, "--to", cluster_.node_id(1 - from),
                                     "--json"};
    if (!path.empty()) args.insert(args.end(), {"--commit-path", path});
    CommandResult r = cluster_.Nicctl(from, args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return ParseHandover(r.out);
  }
  // The same on a path that should be the kernel's, with the target
  // daemon's own CAS held until the target's kernel committed: the source's
  // Commit races the doorbell, and a target daemon that heard it first
  // would commit itself (as it must when a doorbell is lost).
  v1::Handover HandOverWhileTheTargetDaemonCannotCommit(int from, const std::string& path) {
    const std::string target = cluster_.node_id(1 - from);
    SetFault({"--node", target, "--op", "cas", "--hang"});
    std::vector<std::string> args = {"handover", kNic, "--to", target, "--json", "--no-wait"};
    if (!path.empty()) args.insert(args.end(), {"--commit-path", path});
    CommandResult r = cluster_.Nicctl(from, args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    const v1::Handover started = ParseHandover(r.out);
    EXPECT_TRUE(
        WaitUntil([&] { return KernelCommitted(started.to_epoch()); }, absl::Seconds(60)))
        << cluster_.FakeMachine({"show"}).out;
    EXPECT_EQ(cluster_.FakeMachine({"clear-fault"}).exit_code, 0);
    r = cluster_.Nicctl(from, {"handover", "watch", started.handover_id(), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return ParseHandover(r.out);
  }
  // Whether the fake machine's history shows the target kernel's own commit
  // CAS of `epoch` (not a doorbell it ignored).
  bool KernelCommitted(uint64_t epoch) {
    CommandResult r = cluster_.FakeMachine({"show"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
      if (absl::StrContains(line, absl::StrCat("kernel-commit ", kNic, " epoch=", epoch, " ")) &&
          absl::EndsWith(line, " => ok")) {
        return true;
      }
    }
    return false;
  }
  void ExpectOwner(int node, uint64_t epoch) {
    CommandResult r = cluster_.Nicctl(node, {"nics"});
    EXPECT_TRUE(absl::StrContains(
        r.out, absl::StrCat(cluster_.node_id(node), " (active)  ", epoch)))
        << r.out;
    r = cluster_.FakeMachine({"check", "--nic", kNic});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  }
};

TEST_F(NicctlKernelCommitTest, BothPathsCommitAndTheHandoverSaysWhichItTook) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  // The daemon path: the target daemon commits on the source's Commit.
  v1::Handover h = HandOver(0, "daemon");
  EXPECT_EQ(h.phase(), v1::HANDOVER_PHASE_COMMITTED) << h.DebugString();
  EXPECT_EQ(h.requested_commit_path(), v1::COMMIT_PATH_DAEMON);
  EXPECT_EQ(h.commit_path(), v1::COMMIT_PATH_DAEMON);
  EXPECT_FALSE(KernelCommitted(h.to_epoch()));
  ExpectOwner(1, h.to_epoch());

  // The kernel path back: node0's kernel, armed, commits on the doorbell.
  h = HandOverWhileTheTargetDaemonCannotCommit(1, "kernel");
  EXPECT_EQ(h.phase(), v1::HANDOVER_PHASE_COMMITTED) << h.DebugString();
  EXPECT_EQ(h.requested_commit_path(), v1::COMMIT_PATH_KERNEL);
  EXPECT_EQ(h.commit_path(), v1::COMMIT_PATH_KERNEL);
  EXPECT_TRUE(KernelCommitted(h.to_epoch())) << cluster_.FakeMachine({"show"}).out;
  ExpectOwner(0, h.to_epoch());
  // The target's daemon knows it too.
  CommandResult r = cluster_.Nicctl(0, {"handover", "show", h.handover_id()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "commit path kernel (asked: kernel)")) << r.out;

  // auto takes the kernel path when both nodes have it.
  h = HandOverWhileTheTargetDaemonCannotCommit(0, "");
  EXPECT_EQ(h.requested_commit_path(), v1::COMMIT_PATH_UNSPECIFIED);
  EXPECT_EQ(h.commit_path(), v1::COMMIT_PATH_KERNEL);
  EXPECT_TRUE(KernelCommitted(h.to_epoch()));
  ExpectOwner(1, h.to_epoch());
}

// node1's config turns the kernel path off: asked for, it is refused before
// anything moved; auto falls back to the daemon path.
TEST_F(NicctlKernelCommitTest, ATargetWithoutTheKernelPathRefusesItAndAutoTakesTheDaemonPath) {
  {
    std::ofstream config(cluster_.config_path(1), std::ios::app);
    config << "\nkernel_commit: false\n";
  }
  ASSERT_TRUE(cluster_.StartAll().ok());
  CommandResult r =
      cluster_.Nicctl(0, {"handover", kNic, "--to", "node1", "--commit-path", "kernel"});
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "UNSUPPORTED")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "--commit-path auto or daemon")) << r.err;
  // A refused Offer rolls the record back to ACTIVE(node0, 1 + 2): the
  // rollback epoch fences the refused attempt (docs/protocol.md).
  ExpectOwner(0, 3);

  v1::Handover h = HandOver(0, "auto");
  EXPECT_EQ(h.phase(), v1::HANDOVER_PHASE_COMMITTED) << h.DebugString();
  EXPECT_EQ(h.commit_path(), v1::COMMIT_PATH_DAEMON);
  EXPECT_FALSE(KernelCommitted(h.to_epoch()));
  ExpectOwner(1, h.to_epoch());

  // As source, node1 cannot hand off in its kernel: refused at once.
  r = cluster_.Nicctl(1, {"handover", kNic, "--to", "node0", "--commit-path", "kernel"});
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "hint: this node cannot hand off in its kernel")) << r.err;
  ExpectOwner(1, h.to_epoch());
}

// A handover left FAILED is decided by the operator, in text and JSON.
TEST_F(NicctlHandoverTest, RecoverDecidesAFailedHandover) {
  SetFault({"--node", "node0", "--op", "reroute", "--fail", "INTERNAL", "--always"});
  SetFault({"--node", "node0", "--op", "restore", "--fail", "INTERNAL", "--always"});
  CommandResult r = cluster_.Nicctl(0, {"handover", kNic, "--to", "node1"}, absl::Seconds(60));
  ASSERT_EQ(r.exit_code, 8) << r.out << r.err;
  ASSERT_EQ(cluster_.FakeMachine({"clear-fault"}).exit_code, 0);
  r = cluster_.Nicctl(0, {"recover", kNic, "--decide", "abort", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::RecoverNicResponse response;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &response).ok()) << r.out;
  EXPECT_EQ(response.ownership().state(), v1::OWNERSHIP_STATE_ACTIVE);
  EXPECT_EQ(response.ownership().owner_node(), "node0");
  // The redone rollback restores the routing and resumes node0's hook.
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return cluster_.FakeMachine({"check", "--nic", kNic}).exit_code == 0; },
      absl::Seconds(20)))
      << cluster_.FakeMachine({"show"}).out;
  r = cluster_.Nicctl(0, {"recover", kNic, "--decide", "abort"});
  EXPECT_EQ(r.exit_code, 4) << "nothing left to decide: " << r.err;
  r = cluster_.Nicctl(0, {"nics"});
  EXPECT_TRUE(absl::StrContains(r.out, "node0 (active)")) << r.out;
}

class NicctlRefusalTest : public NicctlHandoverTest {
 protected:
  NicctlRefusalTest()
      : NicctlHandoverTest(TwoNodes(
            "nics { bdf: \"0000:03:00.0\" vendor_id: 0x8086 device_id: 0x10d3 "
            "class_code: 0x020000 queue_count: 1 mode: INTERRUPT_MODE_MSIX vector_count: 3 "
            "owner_node: \"node0\" default_driver: \"e1000e\" drivers { key: \"node1\" "
            "value: \"\" } }")) {}
};

TEST_F(NicctlRefusalTest, TargetWithoutDriverRefusesExit4WithAdvice) {
  CommandResult r = cluster_.Nicctl(0, {"handover", kNic, "--to", "node1"});
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "node1 refused (NO_DRIVER): no driver for 0000:03:00.0"))
      << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "hint: load the NIC's driver on node1, or pick another node"))
      << r.err;
  EXPECT_EQ(r.err.find("FAILED_PRECONDITION"), std::string::npos) << r.err;
  r = cluster_.Nicctl(0, {"handover", "list", "--json"});
  v1::ListHandoversResponse list;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &list).ok()) << r.out;
  ASSERT_EQ(list.handovers_size(), 1);
  EXPECT_EQ(list.handovers(0).error().reason(), "TARGET_REFUSED");
  r = cluster_.Nicctl(0, {"handover", "show", list.handovers(0).handover_id()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "error      TARGET_REFUSED: node1 refused")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "hint: load the NIC's driver on node1")) << r.out;
}

TEST_F(NicctlHandoverTest, TargetWithoutFreeVectorsRefusesExit4) {
  SetFault({"--node", "node1", "--op", "reserve", "--fail", "RESOURCE_EXHAUSTED", "--always"});
  CommandResult r = cluster_.Nicctl(0, {"handover", kNic, "--to", "node1"});
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "node1 refused (NO_VECTORS)")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "hint: free interrupt vectors on node1's CPUs")) << r.err;
}

}  // namespace
}  // namespace nichandover
