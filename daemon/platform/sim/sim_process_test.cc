// The machine as separate processes (device, two kernels, traffic, and a
// "daemon"): the daemon is killed in the middle of a handover, after it
// quiesced the source and rerouted the interrupts. The kernels keep running;
// a restarted daemon recovers from the ownership record (PREPARING: the
// source aborts alone) and traffic resumes on exactly one node, with nothing
// lost, duplicated or reordered.
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/time/clock.h"
#include "daemon/platform/sim/sim_platform.h"
#include "daemon/platform/sim/record_testing.h"
#include "gtest/gtest.h"
#include "sim/machine.h"
#include "sim/testing.h"

extern char** environ;

namespace nichandover {
namespace platform {
namespace sim {
namespace {

using ::nichandover::sim::Machine;
using ::nichandover::sim::SocketPath;
using ::nichandover::sim::TestPath;

constexpr char kBdf[] = "0000:03:00.0";

std::string Binary(const std::string& name) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/nichandover/sim/" + name;
}

pid_t Spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return pid;
}

bool WaitForFile(const std::string& path) {
  struct stat st;
  for (int i = 0; i < 500; ++i) {
    if (stat(path.c_str(), &st) == 0) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

Platform MakePlatform(const std::string& machine, const std::string& node,
                      const std::string& socket) {
  v1::DaemonConfig config;
  config.set_node_id(node);
  v1::SimPlatformConfig sim;
  sim.set_machine_path(machine);
  sim.set_kernel_socket(socket);
  auto platform = MakeSimPlatform(sim, config);
  if (!platform.ok()) {
    std::fprintf(stderr, "MakeSimPlatform: %s\n", platform.status().ToString().c_str());
    _exit(3);
  }
  return std::move(*platform);
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}


// The first daemon, in a child process: offer accepted, record PREPARING,
// source quiesced, interrupts rerouted to node1, previous messages journaled
// to `journal`; then it dies before HANDOFF.
[[noreturn]] void DaemonThatDiesMidHandover(const std::string& machine, const std::string& s0,
                                            const std::string& s1, const std::string& journal) {
  Platform source = MakePlatform(machine, "node0", s0);
  Platform target = MakePlatform(machine, "node1", s1);
  auto messages = target.router->ReserveTargetMessages(kBdf, Fence{2, 0}, 5);
  if (!messages.ok()) _exit(4);
  auto active = source.arbiter->Read(kBdf);
  auto preparing = Record(v1::OWNERSHIP_STATE_PREPARING, "node0", "node1", 2);
  if (!active.ok() || source.arbiter->CompareAndSwap(kBdf, *active, preparing)->state() !=
                          v1::OWNERSHIP_STATE_PREPARING) {
    _exit(5);
  }
  if (!source.hook->Quiesce(kBdf, Fence{2, 0}, absl::Seconds(2)).ok()) _exit(6);
  auto previous = source.router->Reroute(kBdf, Fence{2, 0}, *messages);
  if (!previous.ok()) _exit(7);
  std::ofstream out(journal);
  for (const auto& m : *previous) out << m.address() << " " << m.data() << "\n";
  out.close();
  raise(SIGKILL);
  _exit(8);
}

TEST(SimProcessTest, KilledDaemonMidHandoverLeavesKernelsRunningAndRecoveryResumesOneNode) {
  const std::string machine_path = TestPath("process_machine");
  const std::string s0 = SocketPath("proc-node0.sock"), s1 = SocketPath("proc-node1.sock");
  const std::string journal = TestPath("journal.txt"), report = TestPath("traffic.json");
  ASSERT_TRUE(Machine::Create(machine_path, ::nichandover::sim::TwoNodeSpec()).ok());
  std::vector<pid_t> pids;
  pids.push_back(Spawn({Binary("nh-sim-machine"), "run", "--path", machine_path}));
  pids.push_back(Spawn({Binary("nh-sim-kernel"), "--machine", machine_path, "--node", "node0",
                        "--socket", s0}));
  pids.push_back(Spawn({Binary("nh-sim-kernel"), "--machine", machine_path, "--node", "node1",
                        "--socket", s1}));
  ASSERT_TRUE(WaitForFile(s0) && WaitForFile(s1));
  pid_t traffic = Spawn({Binary("nh-sim-traffic"), "--machine", machine_path, "--pps", "10000",
                         "--report", report});
  for (pid_t pid : pids) ASSERT_GT(pid, 0);
  absl::SleepFor(absl::Milliseconds(100));

  // Before any gRPC in this process: fork the first daemon.
  pid_t daemon = fork();
  if (daemon == 0) DaemonThatDiesMidHandover(machine_path, s0, s1, journal);
  int wstatus = 0;
  ASSERT_EQ(waitpid(daemon, &wstatus, 0), daemon);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
      << "daemon exited with " << wstatus;

  // The kernels outlive their daemon.
  for (pid_t pid : pids) EXPECT_EQ(kill(pid, 0), 0);
  auto machine = Machine::Open(machine_path);
  ASSERT_TRUE(machine.ok());
  Platform node0 = MakePlatform(machine_path, "node0", s0);
  Platform node1 = MakePlatform(machine_path, "node1", s1);
  EXPECT_EQ(node0.hook->Status(kBdf)->state, HookState::kQuiesced);

  // The restarted daemon reads the record first: PREPARING, so the source
  // aborts alone (CAS to ACTIVE(source, epoch)), restores, resumes.
  auto record = node0.arbiter->Read(kBdf);
  ASSERT_EQ(record->state(), v1::OWNERSHIP_STATE_PREPARING);
  auto aborted = Record(v1::OWNERSHIP_STATE_ACTIVE, "node0", "", record->epoch());
  ASSERT_EQ(node0.arbiter->CompareAndSwap(kBdf, *record, aborted)->state(),
            v1::OWNERSHIP_STATE_ACTIVE);
  std::vector<v1::MsiMessage> previous;
  std::ifstream in(journal);
  uint64_t address;
  uint32_t data;
  while (in >> address >> data) {
    v1::MsiMessage m;
    m.set_address(address);
    m.set_data(data);
    previous.push_back(m);
  }
  ASSERT_EQ(previous.size(), 5u);
  ASSERT_TRUE(node0.router->Restore(kBdf, Fence{record->epoch(), 0}, previous).ok());
  ASSERT_TRUE(node0.hook->Resume(kBdf, Fence{record->epoch(), 0}).ok());
  ASSERT_TRUE(node1.router->ReleaseReservation(kBdf, Fence{record->epoch(), 0}).ok());

  auto& n0 = (*machine)->node(0).counters;
  auto& n1 = (*machine)->node(1).counters;
  uint64_t rx0 = n0.rx_delivered.load();
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_GT(n0.rx_delivered.load(), rx0);
  EXPECT_EQ(n1.rx_delivered.load(), 0u);
  EXPECT_EQ(n1.driver_xmits.load(), 0u);
  EXPECT_EQ(n1.napi_polls.load(), 0u);
  EXPECT_EQ(node1.hook->Status(kBdf)->state, HookState::kDetached);

  ASSERT_EQ(kill(traffic, SIGTERM), 0);
  ASSERT_EQ(waitpid(traffic, &wstatus, 0), traffic);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
  std::stringstream json;
  json << std::ifstream(report).rdbuf();
  // The machine-wide totals come before the per-NIC breakdown ("nics").
  std::string text = json.str().substr(0, json.str().find("\"nics\""));
  // Both directions: nothing lost, duplicated or reordered, and never a
  // packet carried by node1.
  for (const char* clean : {"\"lost\":0,", "\"duplicated\":0,", "\"out_of_order\":0,",
                            "\"handovers\":[]"}) {
    EXPECT_EQ(Count(text, clean), 2) << clean << " in " << text;
  }
  EXPECT_EQ(Count(text, "\"sent\":0,"), 0) << text;
  for (pid_t pid : pids) {
    kill(pid, SIGTERM);
    waitpid(pid, &wstatus, 0);
  }
}

// Runs `args` to completion; its exit code, its stdout in `*out` if given.
int RunTool(const std::vector<std::string>& args, std::string* out = nullptr) {
  std::string command;
  for (const std::string& a : args) command += "'" + a + "' ";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  std::string text;
  for (size_t n; (n = fread(buffer, 1, sizeof(buffer), pipe)) > 0;) text.append(buffer, n);
  int status = pclose(pipe);
  if (out != nullptr) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The kernel commit path as processes, with the source kernel SIGKILLing
// itself after its HANDOFF CAS won and before the doorbell (fault
// injection): the record says HANDOFF, the target was never rung; the
// doorbell rung by hand (nh-sim-machine doorbell) makes the armed target
// kernel commit and attach alone, and `show --json` shows the timeline.
TEST(SimProcessTest, SourceKernelKilledBeforeTheDoorbellAndTheTargetCommitsOnAHandRungOne) {
  const std::string machine_path = TestPath("process_fast_machine");
  const std::string s0 = SocketPath("fast-node0.sock"), s1 = SocketPath("fast-node1.sock");
  ASSERT_TRUE(Machine::Create(machine_path, ::nichandover::sim::TwoNodeSpec()).ok());
  const std::string tool = Binary("nh-sim-machine");
  pid_t device = Spawn({tool, "run", "--path", machine_path});
  pid_t kernel0 = Spawn({Binary("nh-sim-kernel"), "--machine", machine_path, "--node", "node0",
                         "--socket", s0, "--fault-injection"});
  pid_t kernel1 = Spawn({Binary("nh-sim-kernel"), "--machine", machine_path, "--node", "node1",
                         "--socket", s1});
  ASSERT_GT(device, 0);
  ASSERT_GT(kernel0, 0);
  ASSERT_GT(kernel1, 0);
  ASSERT_TRUE(WaitForFile(s0) && WaitForFile(s1));

  // Fault injection: refused on node1's kernel (no flag), a bad point is a
  // usage error, node0's accepts.
  EXPECT_EQ(
      RunTool({tool, "inject", "--socket", s1, "--point", "handoff-entry", "--action", "hold"}),
      1);
  EXPECT_EQ(RunTool({tool, "inject", "--socket", s0, "--point", "nowhere", "--action", "hold"}), 2);
  ASSERT_EQ(RunTool({tool, "inject", "--socket", s0, "--point", "handoff-before-doorbell",
                 "--action", "crash"}),
            0);

  Platform node0 = MakePlatform(machine_path, "node0", s0);
  Platform node1 = MakePlatform(machine_path, "node1", s1);
  auto messages = node1.router->ReserveTargetMessages(kBdf, Fence{2, 0}, 5);
  ASSERT_TRUE(messages.ok()) << messages.status();
  auto handoff = Record(v1::OWNERSHIP_STATE_HANDOFF, "node0", "node1", 2);
  ASSERT_TRUE(node1.fast_path->Arm(kBdf, Fence{2, 0}, handoff).ok());
  auto active = node0.arbiter->Read(kBdf);
  auto preparing = Record(v1::OWNERSHIP_STATE_PREPARING, "node0", "node1", 2);
  ASSERT_TRUE(Same(*node0.arbiter->CompareAndSwap(kBdf, *active, preparing), preparing));
  HandOffRequest request;
  request.bdf = kBdf;
  request.fence = Fence{2, 0};
  request.expected = preparing;
  request.desired = handoff;
  request.target_messages = *messages;
  request.drain_timeout = absl::Seconds(2);
  auto result = node0.fast_path->HandOff(request);
  EXPECT_FALSE(result.ok());  // the kernel died in the call
  int wstatus = 0;
  ASSERT_EQ(waitpid(kernel0, &wstatus, 0), kernel0);
  EXPECT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << wstatus;
  EXPECT_TRUE(Same(*node0.arbiter->Read(kBdf), handoff));
  auto armed = node1.hook->Status(kBdf);
  ASSERT_TRUE(armed.ok());
  EXPECT_EQ(armed->state, HookState::kDetached);

  // A doorbell for another epoch is ignored (stale), then the right one.
  EXPECT_EQ(RunTool({tool, "doorbell", "--path", machine_path, "--node", "node1", "--nic", "0",
                 "--epoch", "7"}),
            0);
  auto stale = node1.fast_path->WaitEvents(0, absl::Seconds(5));
  ASSERT_TRUE(stale.ok()) << stale.status();
  ASSERT_EQ(stale->events.size(), 1u);
  EXPECT_EQ(stale->events[0].kind, KernelEvent::Kind::kNotCommitted);
  EXPECT_EQ(RunTool({tool, "doorbell", "--path", machine_path, "--node", "node1", "--nic", kBdf,
                 "--epoch", "2"}),
            0);
  auto committed = node1.fast_path->WaitEvents(stale->last_seq, absl::Seconds(5));
  ASSERT_TRUE(committed.ok()) << committed.status();
  ASSERT_EQ(committed->events.size(), 1u);
  EXPECT_EQ(committed->events[0].kind, KernelEvent::Kind::kCommitted)
      << committed->events[0].message;
  EXPECT_TRUE(Same(*node1.arbiter->Read(kBdf),
                   Record(v1::OWNERSHIP_STATE_ACTIVE, "node1", "", 2)));
  EXPECT_EQ(node1.hook->Status(kBdf)->state, HookState::kRunning);

  std::string json;
  ASSERT_EQ(RunTool({tool, "show", "--path", machine_path, "--json"}, &json), 0);
  EXPECT_EQ(Count(json, "\"stale_doorbells\": 1"), 1) << json;
  EXPECT_EQ(Count(json, "\"running_node\": \"node1\""), 1) << json;
  EXPECT_EQ(Count(json, "\"timeline\": {\"epoch\": 2, "), 1) << json;
  // The source died before it rang: no doorbell time; the rest is there.
  EXPECT_EQ(Count(json, "\"doorbell_ns\": 0,"), 1) << json;
  for (const char* step : {"\"gate_closed_ns\": 0", "\"handed_off_ns\": 0",
                           "\"target_committed_ns\": 0,", "\"target_attached_ns\": 0,"}) {
    EXPECT_EQ(Count(json, step), 0) << step << " in " << json;
  }
  for (pid_t pid : {device, kernel1}) {
    kill(pid, SIGTERM);
    waitpid(pid, &wstatus, 0);
  }
}

}  // namespace
}  // namespace sim
}  // namespace platform
}  // namespace nichandover
