// nicctl nic quiesce / resume (NodeService.QuiesceNic / ResumeNic) against
// real daemons on the fake platform: the hook's state is read back from the
// fake machine, not from the daemon's own answer.
#include <unistd.h>

#include <csignal>

#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "nichandover/v1/node_service.pb.h"
#include "tests/testing/daemon_cluster.h"

namespace nichandover {
namespace {

using ::nichandover::testing::CommandResult;
using ::nichandover::testing::DaemonCluster;

constexpr char kNic[] = "0000:03:00.0";

class NicctlMaintenanceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(cluster_.StartAll().ok()); }

  // The fake machine's own verdict: record ACTIVE, its owner runs the NIC
  // with its interrupts, nobody else runs it.
  bool Settled() { return cluster_.FakeMachine({"check", "--nic", kNic}).exit_code == 0; }
  std::string Show() { return cluster_.FakeMachine({"show"}).out; }

  DaemonCluster cluster_{std::vector<testing::NodeSpec>{{"node0", {{0, 0}, {1, 1}}},
                                                        {"node1", {{0, 16}}}}};
};

TEST_F(NicctlMaintenanceTest, QuiesceHoldsTheNicAndRefusesHandoversUntilResume) {
  ASSERT_TRUE(Settled()) << Show();
  CommandResult r = cluster_.Nicctl(0, {"nic", "quiesce", kNic, "--timeout", "3s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("0000:03:00.0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("quiesced for maintenance on node0 (epoch 1)"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("nicctl nic resume 0000:03:00.0"), std::string::npos) << r.out;
  // The owner's hook is stopped at the record's epoch, the record unchanged.
  EXPECT_FALSE(Settled()) << Show();
  EXPECT_NE(Show().find("hook node0: quiesced epoch 1 "), std::string::npos) << Show();
  EXPECT_NE(Show().find("OWNERSHIP_STATE_ACTIVE owner=node0 epoch=1"), std::string::npos)
      << Show();
  r = cluster_.Nicctl(0, {"nic", "show", kNic});
  EXPECT_NE(r.out.find("maintenance  quiesced for maintenance"), std::string::npos) << r.out;

  r = cluster_.Nicctl(0, {"handover", kNic, "--to", "node1"});
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_NE(r.err.find("quiesced for maintenance"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("resume it first"), std::string::npos) << r.err;

  r = cluster_.Nicctl(0, {"nic", "resume", kNic});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("running on node0 (epoch 1)"), std::string::npos) << r.out;
  EXPECT_TRUE(Settled()) << Show();
  EXPECT_NE(Show().find("hook node0: running epoch 1 "), std::string::npos) << Show();

  // Handovers work again, and the record never moved for the maintenance.
  r = cluster_.Nicctl(0, {"handover", kNic, "--to", "node1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  v1::Handover h;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &h).ok()) << r.out;
  EXPECT_EQ(h.from_epoch(), 1u);
  EXPECT_EQ(h.to_epoch(), 2u);
  EXPECT_TRUE(Settled()) << Show();
}

TEST_F(NicctlMaintenanceTest, BothAreIdempotentAndPrintTheNicAsJson) {
  for (int i = 0; i < 2; ++i) {
    CommandResult r = cluster_.Nicctl(0, {"nic", "quiesce", "03:00.0", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    v1::Nic nic;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &nic).ok()) << r.out;
    EXPECT_EQ(nic.bdf(), kNic);
    EXPECT_EQ(nic.ownership().owner_node(), "node0");
    EXPECT_EQ(nic.ownership().epoch(), 1u);
    EXPECT_TRUE(nic.held_for_maintenance()) << r.out;
    EXPECT_FALSE(Settled()) << Show();
  }
  for (int i = 0; i < 2; ++i) {
    CommandResult r = cluster_.Nicctl(0, {"nic", "resume", kNic, "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    v1::Nic nic;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &nic).ok()) << r.out;
    EXPECT_EQ(nic.ownership().owner_node(), "node0");
    EXPECT_FALSE(nic.held_for_maintenance()) << r.out;
    EXPECT_TRUE(Settled()) << Show();
  }
}

TEST_F(NicctlMaintenanceTest, OnlyTheOwnerQuiesces) {
  CommandResult r = cluster_.Nicctl(1, {"nic", "quiesce", kNic});
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_NE(r.err.find("node node1 does not run 0000:03:00.0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("hint: "), std::string::npos) << r.err;
  EXPECT_TRUE(Settled()) << Show();
}

TEST_F(NicctlMaintenanceTest, BadNamesAndFlagsAreRefusedBeforeTheHook) {
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"nic", "quiesce", "0000:99:00.0"},
        {"nic", "resume", "0000:99:00.0"},
        {"nic", "quiesce", "eth9"}}) {
    CommandResult r = cluster_.Nicctl(0, cmd);
    EXPECT_EQ(r.exit_code, 3) << cmd[2] << ": " << r.err;
    EXPECT_NE(r.err.find("'nicctl nics' lists them"), std::string::npos) << r.err;
  }
  CommandResult r = cluster_.Nicctl(0, {"nic", "quiesce", kNic, "--timeout", "soon"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--timeout"), std::string::npos) << r.err;
  r = cluster_.Nicctl(0, {"nic", "quiesce"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(Settled()) << Show();
}

TEST_F(NicctlMaintenanceTest, ADaemonRestartResumesAHeldNic) {
  ASSERT_EQ(cluster_.Nicctl(0, {"nic", "quiesce", kNic}).exit_code, 0);
  ASSERT_FALSE(Settled()) << Show();
  ASSERT_TRUE(cluster_.Stop(0, SIGKILL).ok());
  ASSERT_TRUE(cluster_.Start(0).ok());
  // Recovery repairs the owner's quiesced hook; give its platform call a moment.
  bool settled = false;
  for (int i = 0; i < 50 && !settled; ++i) {
    settled = Settled();
    if (!settled) usleep(100 * 1000);
  }
  EXPECT_TRUE(settled) << Show();
  CommandResult r = cluster_.Nicctl(0, {"handover", kNic, "--to", "node1"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

}  // namespace
}  // namespace nichandover
