// nicctl drain against real daemons over real sockets: a 3-node machine
// with 16 NICs, the spread rule and --to, JSON output, bad input (exit code
// and nothing started), a target killed mid-drain and restarted, Ctrl-C.
//
// The cluster backend is a test parameter (tests/testing/drain_cluster.h):
// the fake platform, and the simulated machine (tests/sim_drain_cluster.h)
// with traffic on every NIC and queue during the drains; there every
// placement check also reads the machine's memory (record ACTIVE on one
// node, the driver and every interrupt there) and accounts for every packet.
#include <signal.h>

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nichandover/v1/node_service.grpc.pb.h"
#include "tests/sim_drain_cluster.h"
#include "tests/testing/drain_cluster.h"

namespace nichandover {
namespace {

using ::nichandover::testing::CommandResult;
using ::nichandover::testing::DrainCluster;
using ::nichandover::testing::DrainClusterFactory;
using ::nichandover::testing::DrainMachineSpec;
using ::nichandover::testing::Subprocess;
using ::nichandover::testing::WaitUntil;

constexpr int kNics = 16;

struct Backend {
  std::string name;
  DrainClusterFactory make;
};

// Every NIC on node0.
DrainMachineSpec AllOnNode0() {
  DrainMachineSpec spec;
  spec.owners.assign(kNics, 0);
  return spec;
}

v1::Drain ParseDrain(const std::string& json) {
  v1::Drain drain;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &drain).ok()) << json;
  return drain;
}

class DrainTest : public ::testing::TestWithParam<Backend> {
 protected:
  void Boot(const DrainMachineSpec& spec) {
    spec_ = spec;
    cluster_ = GetParam().make(spec);
    absl::Status started = cluster_->StartAll();
    ASSERT_TRUE(started.ok()) << started;
  }

  std::string Bdf(int i) const { return cluster_->nic_bdf(i); }

  // Where each NIC is settled now ("" and a test failure for one that is
  // not); and the traffic so far (if the backend has any) accounted for.
  std::map<std::string, std::string> Owners() {
    std::map<std::string, std::string> owners;
    for (size_t i = 0; i < spec_.owners.size(); ++i) {
      auto owner = cluster_->SettledOwner(Bdf(i));
      EXPECT_TRUE(owner.ok()) << Bdf(i) << ": " << owner.status();
      owners[Bdf(i)] = owner.ok() ? *owner : "";
    }
    cluster_->ExpectTrafficAccounted();
    return owners;
  }

  // The drain's report agrees with the machine: a NIC it calls moved runs
  // on the node it names, every other NIC still runs on the drained node.
  void ExpectSummaryMatchesMachine(const v1::Drain& drain) {
    std::map<std::string, std::string> owners = Owners();
    for (const auto& nic : drain.nics()) {
      SCOPED_TRACE(nic.bdf());
      if (nic.state() == v1::DRAIN_NIC_STATE_MOVED) {
        EXPECT_EQ(owners[nic.bdf()], nic.owner_node());
        EXPECT_NE(nic.owner_node(), drain.node());
      } else {
        EXPECT_EQ(owners[nic.bdf()], drain.node());
      }
    }
  }

  int HandoversOn(int node) {
    CommandResult r = cluster_->Nicctl(node, {"handover", "list", "--json"});
    v1::ListHandoversResponse list;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &list).ok()) << r.out;
    return list.handovers_size();
  }

  DrainMachineSpec spec_;
  std::unique_ptr<DrainCluster> cluster_;
};

// Spread: node1 owns 3 NICs and node2 1 at the start; node0's 12 go, in
// BDF order, to the node owning the fewest (ties to the smaller id): two to
// node2 (3:3), then alternately node1 and node2, ending 8:8.
TEST_P(DrainTest, SpreadsByFewestOwnedThenNodeId) {
  DrainMachineSpec spec;
  spec.owners = {1, 1, 1, 2};
  spec.owners.resize(kNics, 0);
  Boot(spec);
  CommandResult r = cluster_->Nicctl(0, {"drain", "node0"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::map<std::string, std::string> owners = Owners();
  std::map<std::string, int> per_node;
  for (const auto& [bdf, owner] : owners) ++per_node[owner];
  EXPECT_EQ(per_node["node0"], 0);
  EXPECT_EQ(per_node["node1"], 8);
  EXPECT_EQ(per_node["node2"], 8);
  // NICs 4.. were node0's; the first two went to node2, then node1, node2, ...
  EXPECT_EQ(owners[Bdf(4)], "node2");
  EXPECT_EQ(owners[Bdf(5)], "node2");
  for (int i = 6; i < kNics; ++i) {
    EXPECT_EQ(owners[Bdf(i)], i % 2 == 0 ? "node1" : "node2") << Bdf(i);
  }
  // Progress per NIC and the summary in plain text (stdout is a pipe).
  for (int i = 4; i < kNics; ++i) {
    EXPECT_TRUE(
        absl::StrContains(r.out, absl::StrCat(Bdf(i), " -> ", owners[Bdf(i)])))
        << r.out;
  }
  EXPECT_TRUE(absl::StrContains(r.out, "12 of 12 NICs moved")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "moved to: node1 5, node2 7")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "\033[")) << "no terminal redraw into a pipe";
}

// A node without capacity (it refuses offers for lack of vectors) leaves
// the candidates: the NICs planned for it are placed on the next node.
TEST_P(DrainTest, NodeWithoutCapacityIsLeftOut) {
  Boot(AllOnNode0());
  absl::Status exhausted = cluster_->ExhaustVectors(1);
  if (exhausted.code() == absl::StatusCode::kUnimplemented) GTEST_SKIP() << exhausted;
  ASSERT_TRUE(exhausted.ok()) << exhausted;
  CommandResult r = cluster_->Nicctl(0, {"drain", "node0", "--max-concurrent", "4", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  v1::Drain drain = ParseDrain(r.out);
  EXPECT_EQ(drain.moved(), kNics);
  int replaced = 0;
  for (const auto& nic : drain.nics()) {
    EXPECT_EQ(nic.owner_node(), "node2") << nic.bdf();
    // At most one refusal per NIC: node1 left the candidates at its first.
    EXPECT_LE(nic.handover_ids_size(), 2) << nic.bdf();
    replaced += nic.handover_ids_size() == 2;
  }
  // The plan alternated node1/node2; the NICs started before node1's first
  // refusal came back were refused once each (at least the first).
  EXPECT_GE(replaced, 1);
  EXPECT_LE(replaced, 4) << "node1 stays out once it refused";
  ExpectSummaryMatchesMachine(drain);
}

TEST_P(DrainTest, ToOneNodeWithJsonSummary) {
  Boot(AllOnNode0());
  CommandResult r =
      cluster_->Nicctl(0, {"drain", "node0", "--to", "node2", "--max-concurrent", "16", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  v1::Drain drain = ParseDrain(r.out);
  EXPECT_TRUE(drain.done());
  EXPECT_EQ(drain.node(), "node0");
  EXPECT_EQ(drain.to_node(), "node2");
  EXPECT_EQ(drain.nics_size(), kNics);
  EXPECT_EQ(drain.moved(), kNics);
  for (const auto& nic : drain.nics()) {
    EXPECT_EQ(nic.state(), v1::DRAIN_NIC_STATE_MOVED) << nic.bdf();
    EXPECT_EQ(nic.owner_node(), "node2") << nic.bdf();
    EXPECT_EQ(nic.handover_ids_size(), 1) << nic.bdf();
  }
  ExpectSummaryMatchesMachine(drain);
  EXPECT_EQ(HandoversOn(0), kNics);
  // Nothing left: a second drain has nothing to do and succeeds.
  CommandResult again = cluster_->Nicctl(0, {"drain", "node0", "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_EQ(ParseDrain(again.out).nics_size(), 0);
}

TEST_P(DrainTest, BadInputIsRefusedWithNothingStarted) {
  Boot(AllOnNode0());
  struct Case {
    std::vector<std::string> args;
    int exit_code;
  };
  const std::vector<Case> cases = {
      {{"drain", "node7"}, 3},                   // unknown node: NOT_FOUND
      {{"drain", "node1"}, 4},                   // another node's daemon drains it
      {{"drain", "node0", "--to", "node0"}, 2},  // INVALID_ARGUMENT
      {{"drain", "node0", "--to", "node9"}, 3},  // unknown target
      {{"drain", "node0", "--max-concurrent", "0"}, 2},
      {{"drain", "node0", "--max-concurrent", "65"}, 2},
      {{"drain", "node0", "--timeout", "soon"}, 2},
  };
  for (const auto& c : cases) {
    CommandResult r = cluster_->Nicctl(0, c.args);
    EXPECT_EQ(r.exit_code, c.exit_code) << absl::StrJoin(c.args, " ") << "\n" << r.err;
    EXPECT_TRUE(absl::StartsWith(r.err, "nicctl: ")) << r.err;
  }
  // An unreachable --to: UNAVAILABLE (exit 7), also before anything starts.
  ASSERT_TRUE(cluster_->Kill(2).ok());
  CommandResult r = cluster_->Nicctl(0, {"drain", "node0", "--to", "node2"});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "node2")) << r.err;
  EXPECT_EQ(HandoversOn(0), 0);
  for (const auto& [bdf, owner] : Owners()) EXPECT_EQ(owner, "node0") << bdf;
}

// request_id makes DrainNode idempotent: the same id and options return
// the same drain (nicctl follows it), other options are refused.
TEST_P(DrainTest, RequestIdFollowsTheSameDrain) {
  Boot(AllOnNode0());
  CommandResult started = cluster_->Nicctl(
      0, {"drain", "node0", "--to", "node1", "--request-id", "maint-1", "--no-wait", "--json"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  v1::Drain plan = ParseDrain(started.out);
  EXPECT_EQ(plan.nics_size(), kNics);
  for (const auto& nic : plan.nics()) EXPECT_EQ(nic.target_node(), "node1") << nic.bdf();
  CommandResult followed =
      cluster_->Nicctl(0, {"drain", "node0", "--to", "node1", "--request-id", "maint-1", "--json"});
  ASSERT_EQ(followed.exit_code, 0) << followed.err;
  v1::Drain drain = ParseDrain(followed.out);
  EXPECT_EQ(drain.drain_id(), plan.drain_id());
  EXPECT_EQ(drain.moved(), kNics);
  EXPECT_EQ(HandoversOn(0), kNics) << "one handover per NIC, not two";
  CommandResult other =
      cluster_->Nicctl(0, {"drain", "node0", "--to", "node2", "--request-id", "maint-1"});
  EXPECT_EQ(other.exit_code, 4) << other.err;
  EXPECT_TRUE(absl::StrContains(other.err, "other arguments")) << other.err;
  ExpectSummaryMatchesMachine(drain);
}

// The API as an orchestration tool uses it: DrainNode returns at once with
// the plan, GetDrain is polled to the end; bad input gets the most specific
// code; CancelDrain of a done drain changes nothing.
TEST_P(DrainTest, ApiPollsGetDrainAndRefusesBadInput) {
  Boot(AllOnNode0());
  auto channel = grpc::CreateChannel(cluster_->address(0), grpc::InsecureChannelCredentials());
  auto stub = v1::NodeService::NewStub(channel);
  auto call = [](absl::Duration timeout = absl::Seconds(30)) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return ctx;
  };
  v1::Drain drain;
  v1::DrainNodeRequest bad;
  bad.set_node("node0");
  EXPECT_EQ(stub->DrainNode(call().get(), bad, &drain).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // request_id missing
  bad.set_request_id("has spaces");
  EXPECT_EQ(stub->DrainNode(call().get(), bad, &drain).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad.set_request_id("ok");
  bad.mutable_timeout()->set_seconds(-1);
  EXPECT_EQ(stub->DrainNode(call().get(), bad, &drain).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::GetDrainRequest unknown;
  unknown.set_drain_id("drain-0");
  EXPECT_EQ(stub->GetDrain(call().get(), unknown, &drain).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::CancelDrainRequest cancel_unknown;
  cancel_unknown.set_drain_id("drain-0");
  EXPECT_EQ(stub->CancelDrain(call().get(), cancel_unknown, &drain).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(stub->GetDrain(call().get(), v1::GetDrainRequest(), &drain).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(HandoversOn(0), 0);

  v1::DrainNodeRequest request;
  request.set_request_id("orchestrator-1");
  request.set_node("node0");
  request.set_max_concurrent(3);
  ASSERT_TRUE(stub->DrainNode(call().get(), request, &drain).ok());
  EXPECT_EQ(drain.nics_size(), kNics);
  EXPECT_EQ(drain.max_concurrent(), 3);
  v1::GetDrainRequest get;
  get.set_drain_id(drain.name());  // "drains/ID" works as well as the id
  ASSERT_TRUE(WaitUntil(
      [&] {
        grpc::Status s = stub->GetDrain(call().get(), get, &drain);
        EXPECT_TRUE(s.ok()) << s.error_message();
        EXPECT_LE(drain.running(), 3) << "at most max_concurrent handovers at once";
        return drain.done();
      },
      absl::Seconds(120), absl::Milliseconds(20)));
  EXPECT_EQ(drain.moved(), kNics);
  v1::CancelDrainRequest cancel;
  cancel.set_drain_id(drain.drain_id());
  v1::Drain after;
  ASSERT_TRUE(stub->CancelDrain(call().get(), cancel, &after).ok());
  EXPECT_FALSE(after.cancel_requested());
  EXPECT_EQ(after.moved(), kNics);
  ExpectSummaryMatchesMachine(after);
}

// A NIC held for maintenance: the drain is refused before anything starts.
TEST_P(DrainTest, HeldNicRefusesTheWholeDrain) {
  Boot(AllOnNode0());
  ASSERT_EQ(cluster_->Nicctl(0, {"nic", "quiesce", Bdf(3)}).exit_code, 0);
  CommandResult r = cluster_->Nicctl(0, {"drain", "node0"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, Bdf(3) + " is held for maintenance")) << r.err;
  EXPECT_EQ(HandoversOn(0), 0);
  ASSERT_EQ(cluster_->Nicctl(0, {"nic", "resume", Bdf(3)}).exit_code, 0);
  for (const auto& [bdf, owner] : Owners()) EXPECT_EQ(owner, "node0") << bdf;
}

// A target's daemon is SIGKILLed while the drain hands NICs to it past their
// commit point, then restarted: every NIC ends on exactly one node and the
// summary says which moved and where.
TEST_P(DrainTest, TargetKilledMidDrainAndRestarted) {
  Boot(AllOnNode0());
  absl::Status hold = cluster_->HoldAttach(1);
  const bool held = hold.ok();
  ASSERT_TRUE(held || hold.code() == absl::StatusCode::kUnimplemented) << hold;
  const std::vector<std::string> args = {"drain", "node0", "--max-concurrent", "4",
                                         "--request-id", "kill-test", "--json"};
  auto nicctl = cluster_->StartNicctl(0, args);
  ASSERT_TRUE(nicctl.ok()) << nicctl.status();
  if (held) {
    // node1 took at least two NICs over (commit point passed) and holds
    // them in its attach: the drain is mid-way.
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto n = cluster_->HeldAttaches(1);
          return n.ok() && *n >= 2;
        },
        absl::Seconds(60), absl::Milliseconds(50)));
  } else {
    // Without a hold: kill once two NICs reached node1 and the drain runs
    // on (DrainNode with the same request_id and options is the drain).
    auto stub = v1::NodeService::NewStub(
        grpc::CreateChannel(cluster_->address(0), grpc::InsecureChannelCredentials()));
    v1::DrainNodeRequest same;
    same.set_request_id("kill-test");
    same.set_node("node0");
    same.set_max_concurrent(4);
    v1::Drain now;
    ASSERT_TRUE(WaitUntil(
        [&] {
          grpc::ClientContext ctx;
          if (!stub->DrainNode(&ctx, same, &now).ok()) return false;
          int on_node1 = 0;
          for (const auto& nic : now.nics()) {
            on_node1 += nic.state() == v1::DRAIN_NIC_STATE_MOVED && nic.owner_node() == "node1";
          }
          return on_node1 >= 2 || now.done();
        },
        absl::Seconds(120), absl::Milliseconds(20)));
    ASSERT_FALSE(now.done()) << "the drain ended before the kill; slow it down";
  }
  ASSERT_TRUE(cluster_->Kill(1).ok());
  if (held) {
    ASSERT_TRUE(cluster_->ReleaseHolds().ok());
  }
  ASSERT_TRUE(cluster_->Start(1).ok());
  auto rc = nicctl->Wait(absl::Seconds(240));
  ASSERT_TRUE(rc.ok()) << nicctl->Stderr();
  EXPECT_EQ(*rc, 0) << nicctl->Stdout() << nicctl->Stderr();
  v1::Drain drain = ParseDrain(nicctl->Stdout());
  ASSERT_TRUE(drain.done());
  EXPECT_EQ(drain.nics_size(), kNics);
  EXPECT_EQ(drain.moved(), kNics) << nicctl->Stdout();
  int on_node1 = 0;
  for (const auto& nic : drain.nics()) on_node1 += nic.owner_node() == "node1";
  // The NICs node1 took before it died were past the commit point: node1
  // runs them after its restart.
  EXPECT_GE(on_node1, 2);
  ExpectSummaryMatchesMachine(drain);
}

// Ctrl-C: no handover starts after it, the running ones (held in the
// source's quiesce, before the commit point) roll back, nicctl prints the
// summary and exits 130; every NIC still runs on node0.
TEST_P(DrainTest, CtrlCStopsTheDrainCleanly) {
  Boot(AllOnNode0());
  absl::Status hold = cluster_->HoldQuiesce(0);
  if (hold.code() == absl::StatusCode::kUnimplemented) {
    GTEST_SKIP() << "the backend cannot hold a quiesce: " << hold;
  }
  ASSERT_TRUE(hold.ok()) << hold;
  auto nicctl = cluster_->StartNicctl(0, {"drain", "node0", "--max-concurrent", "2"});
  ASSERT_TRUE(nicctl.ok()) << nicctl.status();
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto held = cluster_->HeldQuiesces(0);
        return held.ok() && *held >= 2;
      },
      absl::Seconds(60), absl::Milliseconds(50)));
  nicctl->Signal(SIGINT);
  ASSERT_TRUE(WaitUntil([&] { return absl::StrContains(nicctl->Stderr(), "stopping drain"); },
                        absl::Seconds(30)));
  ASSERT_TRUE(cluster_->ReleaseHolds().ok());
  auto rc = nicctl->Wait(absl::Seconds(120));
  ASSERT_TRUE(rc.ok()) << nicctl->Stderr();
  EXPECT_EQ(*rc, 130) << nicctl->Stdout() << nicctl->Stderr();
  const std::string out = nicctl->Stdout();
  const std::string err = nicctl->Stderr();
  EXPECT_TRUE(absl::StrContains(err, "no more handovers start, the 2 running finish or roll back"))
      << err;
  EXPECT_TRUE(absl::StrContains(out, "0 of 16 NICs moved")) << out;
  EXPECT_TRUE(absl::StrContains(out, "2 stayed, 14 not started (cancelled)")) << out;
  EXPECT_EQ(HandoversOn(0), 2);
  for (const auto& [bdf, owner] : Owners()) EXPECT_EQ(owner, "node0") << bdf;
}

INSTANTIATE_TEST_SUITE_P(Backends, DrainTest,
                         ::testing::Values(Backend{"fake", testing::MakeFakeDrainCluster},
                                           Backend{"sim", testing::MakeSimDrainCluster}),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace nichandover
