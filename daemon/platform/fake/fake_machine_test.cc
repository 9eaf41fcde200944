#include "daemon/platform/fake/fake_machine.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "daemon/platform/fake/fake_platform.h"
#include "daemon/platform/fake/machine_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace platform {
namespace fake {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kNic[] = "0000:03:00.0";

class FakeMachineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("TEST_TMPDIR");
    path_ = absl::StrCat(dir != nullptr ? dir : "/tmp", "/",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".machine");
    machine_ = std::make_unique<FakeMachine>(path_);
  }

  std::string path_;
  std::unique_ptr<FakeMachine> machine_;
};

TEST_F(FakeMachineTest, CreatedMachineIsSettledOnItsOwner) {
  FakeMachineSpec spec = SimpleMachineSpec(3, 2, {kNic}, 2);
  spec.mutable_nics(0)->set_owner_node("node2");
  spec.mutable_nics(0)->set_epoch(7);
  ASSERT_TRUE(machine_->Create(spec).ok());
  absl::StatusOr<NicView> view = machine_->Inspect(kNic);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->ownership.state(), v1::OWNERSHIP_STATE_ACTIVE);
  EXPECT_EQ(view->ownership.owner_node(), "node2");
  EXPECT_EQ(view->ownership.epoch(), 7u);
  EXPECT_THAT(view->running_nodes, ElementsAre("node2"));
  EXPECT_THAT(view->interrupt_nodes, ElementsAre("node2", "node2"));
  EXPECT_TRUE(machine_->CheckSettled(kNic).ok()) << machine_->CheckSettled(kNic);
}

TEST_F(FakeMachineTest, InconsistentSpecsAreRefused) {
  FakeMachineSpec unknown_owner = SimpleMachineSpec(2, 1, {kNic});
  unknown_owner.mutable_nics(0)->set_owner_node("node9");
  EXPECT_THAT(machine_->Create(unknown_owner).message(), HasSubstr("owner_node \"node9\""));

  FakeMachineSpec duplicate_apic = SimpleMachineSpec(2, 1, {kNic});
  duplicate_apic.mutable_nodes(1)->mutable_cpus(0)->set_apic_id(0);
  EXPECT_THAT(machine_->Create(duplicate_apic).message(), HasSubstr("APIC ID 0"));

  FakeMachineSpec owner_without_driver = SimpleMachineSpec(2, 1, {kNic});
  (*owner_without_driver.mutable_nics(0)->mutable_drivers())["node0"] = "";
  EXPECT_THAT(machine_->Create(owner_without_driver).message(), HasSubstr("has no driver"));

  FakeMachineSpec duplicate_nic = SimpleMachineSpec(2, 1, {kNic, kNic});
  EXPECT_EQ(machine_->Create(duplicate_nic).code(), absl::StatusCode::kInvalidArgument);
  // Nothing was written.
  EXPECT_EQ(machine_->State().status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FakeMachineTest, ChecksNameTheViolation) {
  ASSERT_TRUE(machine_->Create(SimpleMachineSpec(2, 1, {kNic}, 2)).ok());
  absl::StatusOr<Platform> node1 = MakeFakePlatform(path_, "node1");
  ASSERT_TRUE(node1.ok());
  // A buggy target attaches without the source having let go.
  ASSERT_TRUE(node1->hook->Attach(kNic, Fence{2, 0}, {}).ok());
  absl::Status safe = machine_->CheckSafe(kNic);
  EXPECT_EQ(safe.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(safe.message(), HasSubstr("several nodes at once: node0, node1"));
  EXPECT_FALSE(machine_->CheckSettled(kNic).ok());
}

TEST_F(FakeMachineTest, SettledCheckWantsTheRecordOwnersEpochAndUnmaskedVectors) {
  ASSERT_TRUE(machine_->Create(SimpleMachineSpec(2, 1, {kNic}, 2)).ok());
  absl::StatusOr<Platform> node0 = MakeFakePlatform(path_, "node0");
  ASSERT_TRUE(node0->hook->Quiesce(kNic, Fence{1, 0}, absl::Seconds(1)).ok());
  EXPECT_TRUE(machine_->CheckSafe(kNic).ok());
  EXPECT_THAT(machine_->CheckSettled(kNic).message(), HasSubstr("running on []"));
  ASSERT_TRUE(node0->hook->Resume(kNic, Fence{2, 0}).ok());
  EXPECT_THAT(machine_->CheckSettled(kNic).message(), HasSubstr("owner hook at epoch 2"));
}

TEST_F(FakeMachineTest, TrafficAdvancesRingsAndIsHeldWhileQuiesced) {
  ASSERT_TRUE(machine_->Create(SimpleMachineSpec(2, 1, {kNic}, 2)).ok());
  ASSERT_TRUE(machine_->RunTraffic(kNic, 1030).ok());
  absl::StatusOr<NicView> view = machine_->Inspect(kNic);
  EXPECT_EQ(view->rings[0].tx_next_to_use(), 1030u % kRingSize);
  EXPECT_EQ(view->rings[0].tx_next_to_clean(), (1030u - 8) % kRingSize);
  absl::StatusOr<Platform> node0 = MakeFakePlatform(path_, "node0");
  ASSERT_TRUE(node0->hook->Quiesce(kNic, Fence{1, 0}, absl::Seconds(1)).ok());
  ASSERT_TRUE(machine_->RunTraffic(kNic, 5).ok());
  EXPECT_EQ(node0->hook->Status(kNic)->held_xmits, 5u);
  ASSERT_TRUE(node0->hook->Release(kNic, Fence{1, 0}).ok());
  EXPECT_EQ(machine_->RunTraffic(kNic, 1).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(FakeMachineTest, FaultKnobsAreValidatedReplacedAndCleared) {
  ASSERT_TRUE(machine_->Create(SimpleMachineSpec(2, 1, {kNic}, 2)).ok());
  FakeFault fault;
  fault.set_operation(FAKE_OP_QUIESCE);
  EXPECT_EQ(machine_->SetFault(fault).code(), absl::StatusCode::kInvalidArgument);  // does nothing
  fault.set_node_id("node5");
  fault.set_hang(true);
  EXPECT_EQ(machine_->SetFault(fault).code(), absl::StatusCode::kNotFound);
  fault.set_node_id("node0");
  ASSERT_TRUE(machine_->SetFault(fault).ok());
  fault.set_hang(false);
  fault.set_fail_code(static_cast<int>(absl::StatusCode::kUnavailable));
  ASSERT_TRUE(machine_->SetFault(fault).ok());
  fault.set_operation(FAKE_OP_RESUME);
  ASSERT_TRUE(machine_->SetFault(fault).ok());
  ASSERT_EQ(machine_->State()->faults_size(), 2);
  EXPECT_FALSE(machine_->State()->faults(0).hang()) << "the second knob replaces the first";
  EXPECT_EQ(machine_->State()->faults(0).fail_times(), 1u) << "a fail without a count fails once";
  ASSERT_TRUE(machine_->ClearFaults("node0", FAKE_OP_RESUME).ok());
  ASSERT_EQ(machine_->State()->faults_size(), 1);
  EXPECT_EQ(machine_->State()->faults(0).operation(), FAKE_OP_QUIESCE);
}

TEST_F(FakeMachineTest, DescribeShowsRecordHooksRoutesAndKnobs) {
  ASSERT_TRUE(machine_->Create(SimpleMachineSpec(2, 1, {kNic}, 2)).ok());
  FakeFault fault;
  fault.set_node_id("node1");
  fault.set_operation(FAKE_OP_COMPARE_AND_SWAP);
  fault.set_fail_code(static_cast<int>(absl::StatusCode::kAborted));
  fault.set_fail_always(true);
  ASSERT_TRUE(machine_->SetFault(fault).ok());
  absl::StatusOr<std::string> text = machine_->Describe();
  ASSERT_TRUE(text.ok());
  EXPECT_THAT(*text, HasSubstr("nic 0000:03:00.0: OWNERSHIP_STATE_ACTIVE owner=node0 epoch=1"));
  EXPECT_THAT(*text, HasSubstr("hook node0: running epoch 1 driver igb"));
  EXPECT_THAT(*text, HasSubstr("vector 1: address 0xfee00000 data 0x41 -> node0"));
  EXPECT_THAT(*text, HasSubstr("fault node1 cas: fail ABORTED always"));
}

}  // namespace
}  // namespace fake
}  // namespace platform
}  // namespace nichandover
