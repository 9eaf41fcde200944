#include "agent.h"

#include <cstdlib>
#include <fstream>

#include "fake_hypervisor.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace vmhost {
namespace {

v1::OwnershipRecord Active(const std::string& owner, uint64_t epoch) {
  v1::OwnershipRecord r;
  r.set_state(v1::OWNERSHIP_STATE_ACTIVE);
  r.set_owner_node(owner);
  r.set_epoch(epoch);
  return r;
}

v1::OwnershipRecord Moving(v1::OwnershipState state, const std::string& source,
                           const std::string& target, uint64_t epoch) {
  v1::OwnershipRecord r;
  r.set_state(state);
  r.set_owner_node(source);
  r.set_target_node(target);
  r.set_epoch(epoch);
  return r;
}

bool Same(const v1::OwnershipRecord& a, const v1::OwnershipRecord& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

constexpr char kBdf[] = "0000:01:00.0";

AgentConfig Config(const std::string& state_file = "") {
  AgentConfig config;
  for (const char* name : {"vm-a", "vm-b"}) {
    VmConfig* vm = config.add_vms();
    vm->set_name(name);
    vm->set_qmp_socket(std::string("/nonexistent/") + name + ".qmp");
  }
  NicConfig* nic = config.add_nics();
  nic->set_bdf("01:00.0");
  nic->set_device_id("nic0");
  nic->set_netdev_id("n0");
  nic->set_model("e1000e");
  nic->set_driver("e1000e");
  nic->set_mac("52:54:00:12:34:56");
  nic->set_bus("rp1");
  nic->set_stream_socket("/nonexistent/traffic.sock");
  nic->set_initial_owner("vm-a");
  config.set_state_file(state_file);
  return config;
}

class AgentTest : public ::testing::Test {
 protected:
  AgentTest() : hypervisor_({"vm-a", "vm-b"}) { hypervisor_.PlugAtBoot("vm-a", "nic0"); }

  std::unique_ptr<Agent> MakeAgent(const std::string& state_file = "") {
    auto agent = Agent::Create(Config(state_file), &hypervisor_);
    EXPECT_TRUE(agent.ok()) << agent.status();
    return agent.ok() ? *std::move(agent) : nullptr;
  }

  FakeHypervisor hypervisor_;
};

TEST_F(AgentTest, StartsWithTheInitialOwnerAtEpochOne) {
  auto agent = MakeAgent();
  auto record = agent->Read("01:00.0");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_TRUE(Same(*record, Active("vm-a", 1)));
  EXPECT_EQ(agent->Read("0000:02:00.0").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(AgentTest, CompareAndSwapWinsOnlyFromTheExpectedRecord) {
  auto agent = MakeAgent();
  auto preparing = Moving(v1::OWNERSHIP_STATE_PREPARING, "vm-a", "vm-b", 2);
  auto lost = agent->CompareAndSwap(kBdf, Active("vm-b", 1), preparing);
  ASSERT_TRUE(lost.ok());
  EXPECT_TRUE(Same(*lost, Active("vm-a", 1)));  // unchanged, the caller lost
  auto won = agent->CompareAndSwap(kBdf, Active("vm-a", 1), preparing);
  ASSERT_TRUE(won.ok());
  EXPECT_TRUE(Same(*won, preparing));
  // The same CAS again finds the record changed.
  auto again = agent->CompareAndSwap(kBdf, Active("vm-a", 1), preparing);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(Same(*again, preparing));
  EXPECT_TRUE(Same(*agent->Read(kBdf), preparing));
}

TEST_F(AgentTest, CompareAndSwapRefusesRecordsNoVmCanHold) {
  auto agent = MakeAgent();
  EXPECT_EQ(agent->CompareAndSwap(kBdf, Active("vm-a", 1), Active("vm-z", 2)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(agent->CompareAndSwap(kBdf, Active("vm-a", 1), Active("vm-b", 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(agent
                ->CompareAndSwap(kBdf, Active("vm-a", 1),
                                 Moving(v1::OWNERSHIP_STATE_HANDOFF, "vm-a", "vm-a", 2))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Same(*agent->Read(kBdf), Active("vm-a", 1)));
}

TEST_F(AgentTest, PlacementFollowsTheRecordAndNeverLeavesTwoHolders) {
  auto agent = MakeAgent();
  ASSERT_TRUE(agent
                  ->CompareAndSwap(kBdf, Active("vm-a", 1),
                                   Moving(v1::OWNERSHIP_STATE_PREPARING, "vm-a", "vm-b", 2))
                  .ok());
  auto placed = agent->PlaceNic(kBdf, Fence{2, 0}, "vm-a");
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->vm(), "vm-b");
  EXPECT_TRUE(placed->moved());
  EXPECT_EQ(hypervisor_.Holders("nic0"), std::vector<std::string>{"vm-b"});
  // Unplugged from the source before it is plugged into the target.
  EXPECT_EQ(hypervisor_.Log(), (std::vector<std::string>{"unplug vm-a nic0", "plug vm-b nic0"}));

  // A retry (the source's call timed out and was redone) changes nothing.
  auto again = agent->PlaceNic(kBdf, Fence{2, 0}, "vm-a");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->moved());
  EXPECT_EQ(hypervisor_.Log().size(), 2u);
}

TEST_F(AgentTest, PlacementAtAnotherEpochIsRefusedAndMovesNothing) {
  auto agent = MakeAgent();
  ASSERT_TRUE(agent
                  ->CompareAndSwap(kBdf, Active("vm-a", 1),
                                   Moving(v1::OWNERSHIP_STATE_PREPARING, "vm-a", "vm-b", 2))
                  .ok());
  // A stale instance still at epoch 1, and one from the future.
  EXPECT_EQ(agent->PlaceNic(kBdf, Fence{1, 0}, "vm-a").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(agent->PlaceNic(kBdf, Fence{3, 0}, "vm-a").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(hypervisor_.Log().empty());
  EXPECT_EQ(hypervisor_.Holders("nic0"), std::vector<std::string>{"vm-a"});
}

TEST_F(AgentTest, RollbackPlacesTheNicBackWithTheSource) {
  auto agent = MakeAgent();
  auto preparing = Moving(v1::OWNERSHIP_STATE_PREPARING, "vm-a", "vm-b", 2);
  ASSERT_TRUE(agent->CompareAndSwap(kBdf, Active("vm-a", 1), preparing).ok());
  ASSERT_TRUE(agent->PlaceNic(kBdf, Fence{2, 0}, "vm-a").ok());
  // The source aborts: ACTIVE(source, e+2), then restores.
  ASSERT_TRUE(agent->CompareAndSwap(kBdf, preparing, Active("vm-a", 3)).ok());
  auto restored = agent->PlaceNic(kBdf, Fence{3, 0}, "vm-a");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->vm(), "vm-a");
  EXPECT_EQ(hypervisor_.Holders("nic0"), std::vector<std::string>{"vm-a"});
}

TEST_F(AgentTest, AFailedPlugIsAnErrorAndTheNextPlacementRepairsIt) {
  auto agent = MakeAgent();
  auto preparing = Moving(v1::OWNERSHIP_STATE_PREPARING, "vm-a", "vm-b", 2);
  ASSERT_TRUE(agent->CompareAndSwap(kBdf, Active("vm-a", 1), preparing).ok());
  hypervisor_.FailNextPlug("vm-b");
  EXPECT_FALSE(agent->PlaceNic(kBdf, Fence{2, 0}, "vm-a").ok());
  EXPECT_TRUE(hypervisor_.Holders("nic0").empty());  // unplugged, nowhere
  ASSERT_TRUE(agent->CompareAndSwap(kBdf, preparing, Active("vm-a", 3)).ok());
  ASSERT_TRUE(agent->PlaceNic(kBdf, Fence{3, 0}, "vm-a").ok());
  EXPECT_EQ(hypervisor_.Holders("nic0"), std::vector<std::string>{"vm-a"});
}

TEST_F(AgentTest, AVmThatDoesNotAnswerStopsAPlacement) {
  auto agent = MakeAgent();
  ASSERT_TRUE(agent
                  ->CompareAndSwap(kBdf, Active("vm-a", 1),
                                   Moving(v1::OWNERSHIP_STATE_PREPARING, "vm-a", "vm-b", 2))
                  .ok());
  hypervisor_.SetDown("vm-a", true);
  // It might hold the NIC: plugging it elsewhere could make two holders.
  EXPECT_EQ(agent->PlaceNic(kBdf, Fence{2, 0}, "vm-a").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(hypervisor_.Log().empty());
}

TEST_F(AgentTest, RecordsRingsAndLayoutSurviveARestart) {
  std::string dir = ::testing::TempDir();
  std::string state = dir + "/agent-state.txt";
  std::remove(state.c_str());
  auto preparing = Moving(v1::OWNERSHIP_STATE_PREPARING, "vm-a", "vm-b", 2);
  {
    auto agent = MakeAgent(state);
    ASSERT_TRUE(agent->CompareAndSwap(kBdf, Active("vm-a", 1), preparing).ok());
    v1::QueueRingState ring;
    ring.set_queue(0);
    ring.set_rx_next_to_clean(17);
    ASSERT_TRUE(agent->WriteHandoffRings(kBdf, Fence{2, 0}, {ring}).ok());
    v1::InterruptLayout layout;
    layout.set_mode(v1::INTERRUPT_MODE_MSIX);
    layout.set_vectors_enabled(5);
    layout.add_vectors()->set_index(0);
    ASSERT_TRUE(agent->ReportNic(kBdf, "vm-a", layout).ok());
  }
  auto agent = MakeAgent(state);
  EXPECT_TRUE(Same(*agent->Read(kBdf), preparing));
  auto rings = agent->ReadHandoffRings(kBdf, 2);
  ASSERT_TRUE(rings.ok()) << rings.status();
  ASSERT_EQ(rings->size(), 1u);
  EXPECT_EQ((*rings)[0].rx_next_to_clean(), 17u);
  EXPECT_EQ(agent->ReadHandoffRings(kBdf, 3).status().code(), absl::StatusCode::kNotFound);
  auto nics = agent->ListNics();
  ASSERT_TRUE(nics.ok());
  ASSERT_EQ(nics->size(), 1u);
  const AgentNic& nic = (*nics)[0];
  EXPECT_EQ(nic.vm(), "vm-a");
  EXPECT_EQ(nic.node_id(), "vm-a");
  EXPECT_EQ(nic.driver(), "e1000e");
  EXPECT_EQ(nic.vendor_id(), 0x8086u);
  EXPECT_TRUE(nic.interrupts_known());
  EXPECT_EQ(nic.interrupts().mode(), v1::INTERRUPT_MODE_MSIX);
  EXPECT_EQ(nic.interrupts().vectors_size(), 0);  // a kernel's programming is not kept
}

TEST_F(AgentTest, RefusesInconsistentConfigurations) {
  AgentConfig no_owner = Config();
  no_owner.mutable_nics(0)->set_initial_owner("vm-z");
  EXPECT_EQ(Agent::Create(no_owner, &hypervisor_).status().code(),
            absl::StatusCode::kInvalidArgument);
  AgentConfig no_socket = Config();
  no_socket.mutable_nics(0)->clear_stream_socket();
  EXPECT_EQ(Agent::Create(no_socket, &hypervisor_).status().code(),
            absl::StatusCode::kInvalidArgument);
  AgentConfig twice = Config();
  *twice.add_vms() = twice.vms(0);
  EXPECT_EQ(Agent::Create(twice, &hypervisor_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vmhost
}  // namespace nichandover
