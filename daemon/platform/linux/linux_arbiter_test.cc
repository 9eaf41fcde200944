// The linux backend's ownership records: a SharedFileArbiter file, or the
// simulated machine's own record in its memory, CASed in place.
#include "daemon/platform/linux/linux_arbiter.h"

#include <fstream>
#include <string>

#include "daemon/platform/shared_file/shared_file_arbiter.h"
#include "daemon/platform/sim/record_testing.h"
#include "gtest/gtest.h"
#include "sim/machine.h"

namespace nichandover {
namespace platform {
namespace linux_backend {
namespace {

constexpr char kBdf[] = "0000:03:00.0";

namespace machine = ::nichandover::sim;
using sim::Record;

class LinuxArbiterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".machine";
    machine::MachineSpec spec;
    spec.nodes = {{"host-a", {0}}, {"guest-b", {2}}};
    spec.initial_owner = "host-a";
    spec.bdf = kBdf;
    auto machine = machine::Machine::Create(path_, spec);
    ASSERT_TRUE(machine.ok()) << machine.status();
    machine_ = *std::move(machine);
  }

  absl::StatusOr<std::unique_ptr<Arbiter>> Open(const std::string& memory,
                                                const std::string& node = "guest-b") {
    v1::LinuxPlatformConfig config;
    config.set_machine_memory(memory);
    v1::DaemonConfig daemon;
    daemon.set_node_id(node);
    return OpenLinuxArbiter(config, daemon);
  }

  std::string path_;
  std::unique_ptr<machine::Machine> machine_;
};

TEST_F(LinuxArbiterTest, TheRecordIsTheMachinesOwnWord) {
  auto arbiter = Open(path_);
  ASSERT_TRUE(arbiter.ok()) << arbiter.status();
  auto record = (*arbiter)->Read(kBdf);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->state(), v1::OWNERSHIP_STATE_ACTIVE);
  EXPECT_EQ(record->owner_node(), "host-a");
  EXPECT_EQ(record->epoch(), 1u);

  // The guest's CAS lands in the machine's memory...
  auto preparing = Record(v1::OWNERSHIP_STATE_PREPARING, "host-a", "guest-b", 2);
  auto after = (*arbiter)->CompareAndSwap(kBdf, *record, preparing);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->target_node(), "guest-b");
  machine::Ownership word = machine_->ReadOwnership();
  EXPECT_EQ(word.state, machine::OwnershipState::kPreparing);
  EXPECT_EQ(word.target, 1);
  EXPECT_EQ(word.epoch, 2u);

  // ...and a CAS from the expected record it replaced loses.
  auto lost = (*arbiter)->CompareAndSwap(
      kBdf, *record, Record(v1::OWNERSHIP_STATE_ACTIVE, "guest-b", "", 2));
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_EQ(lost->state(), v1::OWNERSHIP_STATE_PREPARING);

  // What another mapper of the memory writes, the guest reads.
  machine::Ownership handoff = word;
  handoff.state = machine::OwnershipState::kHandoff;
  ASSERT_EQ(machine_->CompareAndSwapOwnership(word, handoff), handoff);
  EXPECT_EQ((*arbiter)->Read(kBdf)->state(), v1::OWNERSHIP_STATE_HANDOFF);

  v1::QueueRingState ring;
  ring.set_rx_next_to_clean(10);
  ring.set_tx_next_to_use(33);
  ASSERT_TRUE((*arbiter)->WriteHandoffRings(kBdf, Fence{2, 0}, {ring}).ok());
  auto rings = machine_->ReadHandoff(2);
  ASSERT_TRUE(rings.ok()) << rings.status();
  ASSERT_EQ(rings->size(), 1u);
  EXPECT_EQ((*rings)[0].rx_next_to_clean, 10u);
  EXPECT_EQ((*rings)[0].tx_next_to_use, 33u);
  EXPECT_EQ((*arbiter)->Read("0000:09:00.0").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LinuxArbiterTest, ExactlyOnePlaceForTheRecords) {
  v1::DaemonConfig daemon;
  daemon.set_node_id("guest-b");
  v1::LinuxPlatformConfig neither;
  auto none = OpenLinuxArbiter(neither, daemon);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("platform.linux.machine_memory"), std::string::npos);
  v1::LinuxPlatformConfig both;
  both.set_arbiter_file("/dev/shm/x");
  both.set_machine_memory(path_);
  EXPECT_EQ(OpenLinuxArbiter(both, daemon).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LinuxArbiterTest, BadMachineMemoryIsRefusedNamingTheField) {
  auto missing = Open(::testing::TempDir() + "/no-such-machine");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_NE(missing.status().message().find("platform.linux.machine_memory"), std::string::npos)
      << missing.status();

  std::string junk = ::testing::TempDir() + "/not-a-machine";
  std::ofstream(junk) << "hello";
  auto not_machine = Open(junk);
  EXPECT_EQ(not_machine.status().code(), absl::StatusCode::kFailedPrecondition)
      << not_machine.status();
  EXPECT_NE(not_machine.status().message().find("platform.linux.machine_memory"),
            std::string::npos);

  auto stranger = Open(path_, "guest-z");
  EXPECT_EQ(stranger.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(stranger.status().message().find("no node \"guest-z\""), std::string::npos)
      << stranger.status();
}

TEST_F(LinuxArbiterTest, AnArbiterFileIsStillASharedFileArbiter) {
  std::string file = ::testing::TempDir() + "/linux-arbiter-records";
  SharedFileArbiter::InitialRecord initial{kBdf,
                                          Record(v1::OWNERSHIP_STATE_ACTIVE, "host-a", "", 1)};
  ASSERT_TRUE(SharedFileArbiter::Create(file, {"host-a", "guest-b"}, {initial}).ok());
  v1::LinuxPlatformConfig config;
  config.set_arbiter_file(file);
  v1::DaemonConfig daemon;
  daemon.set_node_id("guest-b");
  auto arbiter = OpenLinuxArbiter(config, daemon);
  ASSERT_TRUE(arbiter.ok()) << arbiter.status();
  EXPECT_EQ((*arbiter)->Read(kBdf)->owner_node(), "host-a");
  config.set_arbiter_file(file + ".missing");
  auto missing = OpenLinuxArbiter(config, daemon);
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("platform.linux.arbiter_file"), std::string::npos);
}

}  // namespace
}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
