// Handovers between real nichandoverd processes on loopback, on the fake
// platform (its state, like real hardware and kernels, outlives a daemon):
// the happy path both ways, refusals, a dead target, bad requests, and
// SIGKILL of either daemon at every phase boundary followed by a restart.
// After each: exactly one node runs the NIC, it is the one the ownership
// record names, the interrupts point at it, the epochs grew, and no handover
// is left unfinished.
#include <signal.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nichandover/v1/node_service.grpc.pb.h"
#include "tests/testing/daemon_cluster.h"

namespace nichandover {
namespace {

using ::nichandover::testing::ClusterOptions;
using ::nichandover::testing::CommandResult;
using ::nichandover::testing::DaemonCluster;
using ::nichandover::testing::NodeSpec;
using ::nichandover::testing::WaitUntil;

constexpr char kNic[] = "0000:03:00.0";

// Step timeouts well above what a loaded 2-core machine needs (a step that
// times out by accident fails the test), yet short enough for the failure
// cases; a hung reroute (the tests' way to hold a handover) must hold.
constexpr char kFastTimeouts[] =
    "timeouts { peer_call { seconds: 5 } quiesce { seconds: 5 } reroute { seconds: 30 } "
    "attach { seconds: 5 } handover { seconds: 30 } }";

ClusterOptions TwoNodes(std::string fake_nics = testing::kDefaultFakeNics) {
  ClusterOptions options;
  options.nodes = {NodeSpec{"node0", {{0, 0}, {1, 1}}}, NodeSpec{"node1", {{0, 16}, {1, 17}}}};
  options.fake_nics = std::move(fake_nics);
  options.extra_config = kFastTimeouts;
  return options;
}

class HandoverTest : public ::testing::Test {
 protected:
  explicit HandoverTest(ClusterOptions options = TwoNodes()) : cluster_(std::move(options)) {}

  std::unique_ptr<v1::NodeService::Stub> Stub(int node) {
    return v1::NodeService::NewStub(
        grpc::CreateChannel(cluster_.socket_address(node), grpc::InsecureChannelCredentials()));
  }

  grpc::Status Create(int node, const std::string& nic, const std::string& target,
                      const std::string& request_id, v1::Handover* out) {
    v1::CreateHandoverRequest request;
    request.set_request_id(request_id);
    request.set_nic(nic);
    request.set_target_node(target);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return Stub(node)->CreateHandover(&ctx, request, out);
  }

  absl::StatusOr<v1::Handover> Get(int node, const std::string& id) {
    v1::GetHandoverRequest request;
    request.set_handover_id(id);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    v1::Handover h;
    grpc::Status s = Stub(node)->GetHandover(&ctx, request, &h);
    if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    return h;
  }

  // Follows WatchHandover to the terminal event.
  v1::Handover WatchToEnd(int node, const std::string& id, std::vector<v1::HandoverPhase>* phases) {
    v1::WatchHandoverRequest request;
    request.set_handover_id(id);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    auto reader = Stub(node)->WatchHandover(&ctx, request);
    v1::HandoverEvent event;
    v1::Handover last;
    while (reader->Read(&event)) {
      if (phases) phases->push_back(event.phase());
      last = event.handover();
    }
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return last;
  }

  // Polls GetHandover until done.
  v1::Handover WaitDone(int node, const std::string& id) {
    v1::Handover h;
    bool done = WaitUntil(
        [&] {
          auto got = Get(node, id);
          if (got.ok()) h = *got;
          return got.ok() && got->done();
        },
        absl::Seconds(30), absl::Milliseconds(50));
    EXPECT_TRUE(done) << "handover " << id << " on node" << node << " not done: " << h.DebugString();
    return h;
  }

  std::string Show() { return cluster_.FakeMachine({"show"}).out; }

  // Ownership line of the NIC, e.g. "OWNERSHIP_STATE_ACTIVE owner=node1 epoch=2".
  std::string Ownership() {
    for (absl::string_view line : absl::StrSplit(Show(), '\n')) {
      if (absl::StartsWith(line, absl::StrCat("nic ", kNic, ": "))) {
        return std::string(line.substr(std::string("nic ").size() + std::string(kNic).size() + 2));
      }
    }
    return "";
  }

  // The fake machine's own invariant checks: at most one node runs the NIC;
  // settled: the record is ACTIVE, only its owner runs the NIC, every vector
  // reaches the owner unmasked, the owner's hook is at the record's epoch.
  void ExpectSettledOn(const std::string& owner, uint64_t min_epoch) {
    bool settled = WaitUntil(
        [&] { return cluster_.FakeMachine({"check", "--nic", kNic}).exit_code == 0; },
        absl::Seconds(30), absl::Milliseconds(100));
    CommandResult check = cluster_.FakeMachine({"check", "--nic", kNic});
    ASSERT_TRUE(settled) << check.out << check.err << "\n" << Show();
    std::string ownership = Ownership();
    EXPECT_NE(ownership.find(absl::StrCat("OWNERSHIP_STATE_ACTIVE owner=", owner, " ")),
              std::string::npos)
        << Show();
    uint64_t epoch = 0;
    auto pos = ownership.find("epoch=");
    ASSERT_NE(pos, std::string::npos);
    ASSERT_TRUE(absl::SimpleAtoi(ownership.substr(pos + 6), &epoch)) << ownership;
    EXPECT_GE(epoch, min_epoch) << Show();
  }

  void ExpectNothingLive() {
    for (int node = 0; node < cluster_.size(); ++node) {
      if (!cluster_.running(node)) continue;
      bool idle = WaitUntil(
          [&] {
            v1::ListHandoversResponse list;
            grpc::ClientContext ctx;
            if (!Stub(node)->ListHandovers(&ctx, v1::ListHandoversRequest(), &list).ok()) {
              return false;
            }
            for (const auto& h : list.handovers()) {
              if (!h.done()) return false;
            }
            return true;
          },
          absl::Seconds(30), absl::Milliseconds(100));
      EXPECT_TRUE(idle) << "node" << node << " has an unfinished handover";
    }
  }

  DaemonCluster cluster_;
};

TEST_F(HandoverTest, HappyPathThereAndBack) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  v1::Handover h;
  grpc::Status s = Create(0, kNic, "node1", "there", &h);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(h.source_node(), "node0");
  EXPECT_EQ(h.target_node(), "node1");
  EXPECT_EQ(h.from_epoch(), 1u);
  EXPECT_EQ(h.to_epoch(), 2u);
  std::vector<v1::HandoverPhase> phases;
  v1::Handover done = WatchToEnd(0, h.handover_id(), &phases);
  EXPECT_EQ(done.phase(), v1::HANDOVER_PHASE_COMMITTED) << done.DebugString();
  EXPECT_TRUE(done.done());
  EXPECT_FALSE(done.has_error());
  // The watch saw the phases in protocol order, ending committed.
  ASSERT_FALSE(phases.empty());
  EXPECT_EQ(phases.back(), v1::HANDOVER_PHASE_COMMITTED);
  for (size_t i = 1; i < phases.size(); ++i) EXPECT_GE(phases[i], phases[i - 1]);
  // Every phase has times and a duration; the handover has its timestamps.
  for (const auto& p : done.phases()) {
    EXPECT_TRUE(p.has_start_time()) << p.DebugString();
    if (p.phase() != v1::HANDOVER_PHASE_COMMITTED) EXPECT_TRUE(p.has_duration());
  }
  EXPECT_TRUE(done.has_create_time());
  EXPECT_TRUE(done.has_end_time());
  // The coordinator's blackout: quiesce start to the target's commit.
  ASSERT_TRUE(done.stats().has_blackout()) << done.DebugString();
  absl::Duration blackout = absl::Seconds(done.stats().blackout().seconds()) +
                            absl::Nanoseconds(done.stats().blackout().nanos());
  EXPECT_GT(blackout, absl::ZeroDuration());
  absl::Duration total = absl::Seconds(done.end_time().seconds() - done.create_time().seconds()) +
                         absl::Nanoseconds(done.end_time().nanos() - done.create_time().nanos());
  EXPECT_LE(blackout, total);
  ExpectSettledOn("node1", 2);

  // And back, coordinated by the new owner.
  s = Create(1, kNic, "node0", "back", &h);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(h.from_epoch(), 2u);
  done = WatchToEnd(1, h.handover_id(), nullptr);
  EXPECT_EQ(done.phase(), v1::HANDOVER_PHASE_COMMITTED) << done.DebugString();
  ExpectSettledOn("node0", 3);

  // Both nodes keep the history.
  v1::ListHandoversResponse list;
  grpc::ClientContext ctx;
  ASSERT_TRUE(Stub(0)->ListHandovers(&ctx, v1::ListHandoversRequest(), &list).ok());
  EXPECT_GE(list.handovers_size(), 2);
  ExpectNothingLive();
}

TEST_F(HandoverTest, HistoryKeepsItsTimesAcrossARestart) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  v1::Handover h;
  ASSERT_TRUE(Create(0, kNic, "node1", "timed", &h).ok());
  v1::Handover before = WatchToEnd(0, h.handover_id(), nullptr);
  ASSERT_EQ(before.phase(), v1::HANDOVER_PHASE_COMMITTED) << before.DebugString();
  ASSERT_TRUE(cluster_.Stop(0, SIGTERM).ok());
  ASSERT_TRUE(cluster_.Start(0).ok());
  auto after = Get(0, h.handover_id());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->phase(), v1::HANDOVER_PHASE_COMMITTED);
  EXPECT_EQ(after->create_time().seconds(), before.create_time().seconds());
  EXPECT_EQ(after->create_time().nanos(), before.create_time().nanos());
  // Every phase the journal saw keeps the time it started at.
  ASSERT_GT(after->phases_size(), 2);
  for (int i = 0; i < after->phases_size() && i < before.phases_size(); ++i) {
    if (!after->phases(i).has_start_time()) continue;
    EXPECT_EQ(after->phases(i).start_time().seconds(), before.phases(i).start_time().seconds());
    EXPECT_EQ(after->phases(i).start_time().nanos(), before.phases(i).start_time().nanos())
        << "phase " << i;
  }
  EXPECT_TRUE(after->phases(0).has_start_time()) << after->DebugString();
  EXPECT_TRUE(after->stats().has_blackout()) << after->DebugString();
}

TEST_F(HandoverTest, RequestIdMakesCreateIdempotent) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  v1::Handover first, again;
  ASSERT_TRUE(Create(0, kNic, "node1", "same-id", &first).ok());
  grpc::Status s = Create(0, kNic, "node1", "same-id", &again);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(again.handover_id(), first.handover_id());
  v1::Handover other;
  s = Create(0, kNic, "node0", "same-id", &other);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
  WaitDone(0, first.handover_id());
  ExpectSettledOn("node1", 2);
}

TEST_F(HandoverTest, BadRequestsNameTheFieldAndChangeNothing) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  const std::string before = Ownership();
  struct Case {
    std::string nic, target, request_id;
    grpc::StatusCode code;
    std::string fragment;
  } cases[] = {
      {kNic, "node1", "", grpc::StatusCode::INVALID_ARGUMENT, "request_id"},
      {kNic, "node1", "bad id!", grpc::StatusCode::INVALID_ARGUMENT, "request_id"},
      {"0000:99:00.0", "node1", "r1", grpc::StatusCode::NOT_FOUND, "nic"},
      {"00:zz.9", "node1", "r2", grpc::StatusCode::INVALID_ARGUMENT, "nic"},
      {"", "node1", "r3", grpc::StatusCode::INVALID_ARGUMENT, "nic"},
      {kNic, "node7", "r4", grpc::StatusCode::NOT_FOUND, "target_node"},
      {kNic, "node0", "r5", grpc::StatusCode::INVALID_ARGUMENT, "target_node"},
      {kNic, "", "r6", grpc::StatusCode::INVALID_ARGUMENT, "target_node"},
  };
  for (const auto& c : cases) {
    v1::Handover h;
    grpc::Status s = Create(0, c.nic, c.target, c.request_id, &h);
    EXPECT_EQ(s.error_code(), c.code) << c.nic << " -> " << c.target << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(c.fragment), std::string::npos) << s.error_message();
  }
  EXPECT_EQ(Ownership(), before);
  v1::ListHandoversResponse list;
  grpc::ClientContext ctx;
  ASSERT_TRUE(Stub(0)->ListHandovers(&ctx, v1::ListHandoversRequest(), &list).ok());
  EXPECT_EQ(list.handovers_size(), 0) << list.DebugString();
  // A node that does not own the NIC cannot hand it over.
  v1::Handover h;
  grpc::Status s = Create(1, kNic, "node0", "not-mine", &h);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  // Unknown handovers are NOT_FOUND.
  auto missing = Get(0, "no-such-handover");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(HandoverTest, SecondHandoverOfTheSameNicWhileOneRunsIsRefused) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  ASSERT_EQ(cluster_.FakeMachine({"set-fault", "--node", "node0", "--op", "reroute", "--hang"})
                .exit_code,
            0);
  v1::Handover first, second;
  ASSERT_TRUE(Create(0, kNic, "node1", "first", &first).ok());
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto h = Get(0, first.handover_id());
        return h.ok() && h->phase() == v1::HANDOVER_PHASE_REROUTING;
      },
      absl::Seconds(10)));
  grpc::Status s = Create(0, kNic, "node1", "second", &second);
  EXPECT_TRUE(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
              s.error_code() == grpc::StatusCode::ABORTED)
      << s.error_code() << " " << s.error_message();
  ASSERT_EQ(cluster_.FakeMachine({"clear-fault"}).exit_code, 0);
  v1::Handover done = WaitDone(0, first.handover_id());
  EXPECT_TRUE(done.done());
  ExpectSettledOn(done.phase() == v1::HANDOVER_PHASE_COMMITTED ? "node1" : "node0", 1);
}

TEST_F(HandoverTest, CancelBeforeTheCommitPointRollsBack) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  ASSERT_EQ(cluster_.FakeMachine({"set-fault", "--node", "node0", "--op", "reroute", "--hang"})
                .exit_code,
            0);
  v1::Handover h;
  ASSERT_TRUE(Create(0, kNic, "node1", "to-cancel", &h).ok());
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto got = Get(0, h.handover_id());
        return got.ok() && got->phase() == v1::HANDOVER_PHASE_REROUTING;
      },
      absl::Seconds(10)));
  v1::CancelHandoverRequest cancel;
  cancel.set_handover_id(h.handover_id());
  cancel.set_reason("operator changed their mind");
  v1::Handover after;
  grpc::ClientContext ctx;
  grpc::Status s = Stub(0)->CancelHandover(&ctx, cancel, &after);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(cluster_.FakeMachine({"clear-fault"}).exit_code, 0);
  v1::Handover done = WaitDone(0, h.handover_id());
  EXPECT_EQ(done.phase(), v1::HANDOVER_PHASE_ROLLED_BACK) << done.DebugString();
  EXPECT_NE(done.error().message().find("operator changed their mind"), std::string::npos)
      << done.DebugString();
  ExpectSettledOn("node0", 2);
  ExpectNothingLive();
}

TEST_F(HandoverTest, CancelAfterTheCommitPointIsRefused) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  // The target's commit CAS hangs: the record is HANDOFF, only node1 decides.
  ASSERT_EQ(cluster_.FakeMachine({"set-fault", "--node", "node1", "--op", "cas", "--hang"})
                .exit_code,
            0);
  v1::Handover h;
  ASSERT_TRUE(Create(0, kNic, "node1", "late-cancel", &h).ok());
  ASSERT_TRUE(WaitUntil(
      [&] { return Ownership().find("OWNERSHIP_STATE_HANDOFF") != std::string::npos; },
      absl::Seconds(10)))
      << Show();
  v1::CancelHandoverRequest cancel;
  cancel.set_handover_id(h.handover_id());
  v1::Handover after;
  grpc::ClientContext ctx;
  grpc::Status s = Stub(0)->CancelHandover(&ctx, cancel, &after);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  ASSERT_EQ(cluster_.FakeMachine({"clear-fault"}).exit_code, 0);
  v1::Handover done = WaitDone(0, h.handover_id());
  EXPECT_EQ(done.phase(), v1::HANDOVER_PHASE_COMMITTED) << done.DebugString();
  ExpectSettledOn("node1", 2);
}

TEST_F(HandoverTest, TargetDownRollsBack) {
  ASSERT_TRUE(cluster_.Start(0).ok());
  v1::Handover h;
  ASSERT_TRUE(Create(0, kNic, "node1", "nobody-home", &h).ok());
  v1::Handover done = WaitDone(0, h.handover_id());
  EXPECT_EQ(done.phase(), v1::HANDOVER_PHASE_ROLLED_BACK) << done.DebugString();
  ExpectSettledOn("node0", 1);
}

TEST_F(HandoverTest, OfferAnsweredAfterItsTimeoutRollsBack) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  // node1's reservation takes longer than the source's peer_call timeout (5 s).
  ASSERT_EQ(cluster_.FakeMachine({"set-fault", "--node", "node1", "--op", "reserve", "--hang",
                                  "--hang-max-ms", "8000"})
                .exit_code,
            0);
  v1::Handover h;
  ASSERT_TRUE(Create(0, kNic, "node1", "slow-target", &h).ok());
  v1::Handover done = WaitDone(0, h.handover_id());
  EXPECT_EQ(done.phase(), v1::HANDOVER_PHASE_ROLLED_BACK) << done.DebugString();
  ASSERT_EQ(cluster_.FakeMachine({"clear-fault"}).exit_code, 0);
  ExpectSettledOn("node0", 1);
  ExpectNothingLive();
  // The NIC still moves afterwards.
  ASSERT_TRUE(Create(0, kNic, "node1", "after-slow", &h).ok());
  done = WaitDone(0, h.handover_id());
  EXPECT_EQ(done.phase(), v1::HANDOVER_PHASE_COMMITTED) << done.DebugString();
  ExpectSettledOn("node1", 2);
}

class TargetWithoutDriverTest : public HandoverTest {
 protected:
  TargetWithoutDriverTest()
      : HandoverTest(TwoNodes(
            "nics { bdf: \"0000:03:00.0\" vendor_id: 0x8086 device_id: 0x10d3 "
            "class_code: 0x020000 queue_count: 1 mode: INTERRUPT_MODE_MSIX vector_count: 3 "
            "owner_node: \"node0\" default_driver: \"e1000e\" drivers { key: \"node1\" "
            "value: \"\" } }")) {}
};

TEST_F(TargetWithoutDriverTest, TargetRefusesAndSourceKeepsRunning) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  v1::Handover h;
  ASSERT_TRUE(Create(0, kNic, "node1", "no-driver", &h).ok());
  v1::Handover done = WaitDone(0, h.handover_id());
  EXPECT_EQ(done.phase(), v1::HANDOVER_PHASE_ROLLED_BACK) << done.DebugString();
  EXPECT_NE(done.error().message().find("driver"), std::string::npos) << done.DebugString();
  EXPECT_EQ(done.error().reason(), "TARGET_REFUSED");
  EXPECT_EQ(done.error().refusal_reason(), v1::REFUSAL_REASON_NO_DRIVER) << done.DebugString();
  ExpectSettledOn("node0", 1);

  // The driver is loaded on node1 later: the next offer is judged on what
  // node1 has now, without restarting its daemon.
  std::string state = testing::ReadFile(cluster_.machine_path());
  const std::string hook = "hooks {\n    node_id: \"node1\"\n";
  size_t at = state.find(hook);
  ASSERT_NE(at, std::string::npos) << state;
  state.insert(at + hook.size(), "    driver: \"e1000e\"\n");
  testing::WriteFile(cluster_.machine_path(), state);
  ASSERT_TRUE(Create(0, kNic, "node1", "driver-loaded", &h).ok());
  done = WaitDone(0, h.handover_id());
  EXPECT_EQ(done.phase(), v1::HANDOVER_PHASE_COMMITTED) << done.DebugString();
  ExpectSettledOn("node1", 2);
}

// SIGKILL of one daemon while the other side or the platform holds the
// handover at a phase boundary; then the victim restarts. Holding is done
// with a fake-platform hang knob on the first operation of the next phase.
struct CrashCase {
  const char* name;
  const char* hang_node;  // whose operation hangs
  const char* hang_op;    // fake-machine operation name
  v1::HandoverPhase wait_phase;  // source phase reached before the kill
  int victim;                    // node index killed and restarted
  const char* owner;             // who must own the NIC in the end
  uint64_t min_epoch;
};

class CrashTest : public HandoverTest, public ::testing::WithParamInterface<CrashCase> {};

TEST_P(CrashTest, RestartEndsWithExactlyOneOwner) {
  const CrashCase& c = GetParam();
  ASSERT_TRUE(cluster_.StartAll().ok());
  ASSERT_EQ(cluster_.FakeMachine({"set-fault", "--node", c.hang_node, "--op", c.hang_op, "--hang"})
                .exit_code,
            0);
  v1::Handover h;
  ASSERT_TRUE(Create(0, kNic, "node1", absl::StrCat("crash-", c.name), &h).ok());
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto got = Get(0, h.handover_id());
        return got.ok() && got->phase() >= c.wait_phase;
      },
      absl::Seconds(10)))
      << Show();
  absl::SleepFor(absl::Milliseconds(100));  // let the hung call be entered
  ASSERT_TRUE(cluster_.Stop(c.victim, SIGKILL).ok());
  ASSERT_EQ(cluster_.FakeMachine({"clear-fault"}).exit_code, 0);
  // Never two runners, even before the victim is back.
  EXPECT_EQ(cluster_.FakeMachine({"check", "--nic", kNic, "--safe"}).exit_code, 0) << Show();
  ASSERT_TRUE(cluster_.Start(c.victim).ok());
  ExpectSettledOn(c.owner, c.min_epoch);
  ExpectNothingLive();
}

INSTANTIATE_TEST_SUITE_P(
    PhaseBoundaries, CrashTest,
    ::testing::Values(
        // Source killed...
        CrashCase{"source_while_offering", "node1", "reserve", v1::HANDOVER_PHASE_OFFERING, 0,
                  "node0", 1},
        CrashCase{"source_while_quiescing", "node0", "quiesce", v1::HANDOVER_PHASE_QUIESCING, 0,
                  "node0", 2},
        CrashCase{"source_while_rerouting", "node0", "reroute", v1::HANDOVER_PHASE_REROUTING, 0,
                  "node0", 2},
        CrashCase{"source_before_handoff", "node0", "write-rings",
                  v1::HANDOVER_PHASE_REROUTING, 0, "node0", 2},
        CrashCase{"source_after_handoff", "node1", "cas", v1::HANDOVER_PHASE_HANDING_OFF, 0,
                  "node1", 2},
        CrashCase{"source_while_releasing", "node0", "release", v1::HANDOVER_PHASE_ATTACHING, 0,
                  "node1", 2},
        // Target killed...
        CrashCase{"target_while_reserving", "node1", "reserve", v1::HANDOVER_PHASE_OFFERING, 1,
                  "node0", 1},
        // (the target is back before the source reaches HANDOFF, so it commits)
        CrashCase{"target_while_source_quiesces", "node0", "quiesce",
                  v1::HANDOVER_PHASE_QUIESCING, 1, "node1", 2},
        CrashCase{"target_at_commit", "node1", "cas", v1::HANDOVER_PHASE_HANDING_OFF, 1, "node1",
                  2},
        CrashCase{"target_while_attaching", "node1", "attach", v1::HANDOVER_PHASE_HANDING_OFF, 1,
                  "node1", 2}),
    [](const ::testing::TestParamInfo<CrashCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace nichandover
