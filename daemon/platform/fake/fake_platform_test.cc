#include "daemon/platform/fake/fake_platform.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/platform/fake/fake_machine.h"
#include "daemon/platform/fake/machine_file.h"
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
constexpr char kOtherNic[] = "0000:04:00.0";

v1::OwnershipRecord Record(v1::OwnershipState state, const std::string& owner, const std::string& target,
                           uint64_t epoch) {
  v1::OwnershipRecord record;
  record.set_state(state);
  record.set_owner_node(owner);
  record.set_target_node(target);
  record.set_epoch(epoch);
  return record;
}

v1::OwnershipRecord Active(const std::string& owner, uint64_t epoch) {
  return Record(v1::OWNERSHIP_STATE_ACTIVE, owner, "", epoch);
}

std::string StatePath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name, ".fake-machine");
}

class FakePlatformTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = StatePath(::testing::UnitTest::GetInstance()->current_test_info()->name());
    machine_ = std::make_unique<FakeMachine>(path_);
    ASSERT_TRUE(machine_->Create(SimpleMachineSpec(2, 2, {kNic, kOtherNic}, 4)).ok());
    node0_ = Open("node0");
    node1_ = Open("node1");
  }

  Platform Open(const std::string& node) {
    absl::StatusOr<Platform> platform = MakeFakePlatform(path_, node);
    EXPECT_TRUE(platform.ok()) << platform.status();
    return std::move(*platform);
  }

  FakeFault Fault(const std::string& node, FakeOperation operation, absl::StatusCode code) {
    FakeFault fault;
    fault.set_node_id(node);
    fault.set_operation(operation);
    fault.set_fail_code(static_cast<int>(code));
    return fault;
  }

  std::string path_;
  std::unique_ptr<FakeMachine> machine_;
  Platform node0_;
  Platform node1_;
};

TEST_F(FakePlatformTest, EveryNodeSeesTheNicRoutedToItsOwner) {
  absl::StatusOr<std::vector<NicInfo>> nics = node1_.inventory->ListNics();
  ASSERT_TRUE(nics.ok()) << nics.status();
  ASSERT_EQ(nics->size(), 2u);
  const NicInfo& nic = (*nics)[0];
  EXPECT_EQ(nic.bdf, kNic);
  EXPECT_EQ(nic.driver, "igb");
  EXPECT_EQ(nic.queue_count, 2u);
  EXPECT_EQ(nic.interrupts.mode(), v1::INTERRUPT_MODE_MSIX);
  ASSERT_EQ(nic.interrupts.vectors_size(), 4);
  for (const v1::InterruptVector& vector : nic.interrupts.vectors()) {
    EXPECT_EQ(vector.route().destination_node(), "node0");
    EXPECT_FALSE(vector.masked());
  }
  // Round-robin over node0's CPUs (APIC IDs 0 and 1).
  EXPECT_EQ(nic.interrupts.vectors(0).message().address(), 0xFEE00000u);
  EXPECT_EQ(nic.interrupts.vectors(1).message().address(), 0xFEE01000u);
  EXPECT_EQ(node0_.inventory->GetNic("0000:09:00.0").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(machine_->CheckSettled(kNic).ok());
}

TEST_F(FakePlatformTest, UnknownNodeOrMissingMachineIsNotFound) {
  EXPECT_EQ(MakeFakePlatform(path_, "node7").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(MakeFakePlatform(StatePath("missing"), "node0").status().code(),
            absl::StatusCode::kNotFound);
}

// The protocol's successful path, step by step, on the platform alone.
TEST_F(FakePlatformTest, HandoverStepsMoveTheNicAndItsInterrupts) {
  ASSERT_TRUE(machine_->RunTraffic(kNic, 100).ok());
  absl::StatusOr<std::vector<v1::MsiMessage>> reserved =
      node1_.router->ReserveTargetMessages(kNic, Fence{2, 0}, 4);
  ASSERT_TRUE(reserved.ok()) << reserved.status();

  auto preparing = Record(v1::OWNERSHIP_STATE_PREPARING, "node0", "node1", 2);
  ASSERT_EQ(node0_.arbiter->CompareAndSwap(kNic, Active("node0", 1), preparing)->DebugString(),
            preparing.DebugString());
  absl::StatusOr<QuiesceResult> quiesced =
      node0_.hook->Quiesce(kNic, Fence{2, 0}, absl::Seconds(1));
  ASSERT_TRUE(quiesced.ok()) << quiesced.status();
  EXPECT_EQ(quiesced->drained_tx_packets, 16u);  // 8 in flight on each of 2 queues
  EXPECT_EQ(quiesced->polls_while_quiesced, 0u);
  ASSERT_EQ(quiesced->rings.size(), 2u);
  EXPECT_EQ(quiesced->rings[0].tx_next_to_clean(), 100u);
  EXPECT_EQ(quiesced->rings[0].tx_next_to_use(), 100u);

  absl::StatusOr<std::vector<v1::MsiMessage>> old_messages = node0_.router->ReadMessages(kNic);
  absl::StatusOr<std::vector<v1::MsiMessage>> previous =
      node0_.router->Reroute(kNic, Fence{2, 0}, *reserved);
  ASSERT_TRUE(previous.ok()) << previous.status();
  EXPECT_EQ(previous->size(), 4u);
  EXPECT_EQ((*previous)[1].address(), (*old_messages)[1].address());
  ASSERT_TRUE(node0_.arbiter->WriteHandoffRings(kNic, Fence{2, 0}, quiesced->rings).ok());
  auto handoff = Record(v1::OWNERSHIP_STATE_HANDOFF, "node0", "node1", 2);
  ASSERT_EQ(node0_.arbiter->CompareAndSwap(kNic, preparing, handoff)->state(),
            v1::OWNERSHIP_STATE_HANDOFF);
  ASSERT_TRUE(machine_->CheckSafe(kNic).ok());

  absl::StatusOr<std::vector<v1::QueueRingState>> rings = node1_.arbiter->ReadHandoffRings(kNic, 2);
  ASSERT_TRUE(rings.ok()) << rings.status();
  ASSERT_EQ(node1_.arbiter->CompareAndSwap(kNic, handoff, Active("node1", 2))->owner_node(), "node1");
  ASSERT_TRUE(node1_.hook->Attach(kNic, Fence{2, 0}, *rings).ok());
  ASSERT_TRUE(node0_.hook->Release(kNic, Fence{2, 0}).ok());

  EXPECT_TRUE(machine_->CheckSettled(kNic).ok()) << machine_->CheckSettled(kNic);
  absl::StatusOr<NicView> view = machine_->Inspect(kNic);
  EXPECT_THAT(view->running_nodes, ElementsAre("node1"));
  EXPECT_THAT(view->interrupt_nodes, ElementsAre("node1", "node1", "node1", "node1"));
  EXPECT_EQ(view->rings[1].rx_next_to_use(), 100u);
  EXPECT_EQ(node0_.hook->Status(kNic)->state, HookState::kDetached);
  EXPECT_EQ(node1_.hook->Status(kNic)->epoch, 2u);
  // The reservation became the NIC's routing.
  EXPECT_EQ(view->nodes[1].reserved_vectors, 0u);
}

TEST_F(FakePlatformTest, RollbackRestoresRoutingAndResumesTheSource) {
  absl::StatusOr<std::vector<v1::MsiMessage>> reserved =
      node1_.router->ReserveTargetMessages(kNic, Fence{2, 0}, 4);
  ASSERT_TRUE(node0_.hook->Quiesce(kNic, Fence{2, 0}, absl::Seconds(1)).ok());
  absl::StatusOr<std::vector<v1::MsiMessage>> previous =
      node0_.router->Reroute(kNic, Fence{2, 0}, *reserved);
  ASSERT_TRUE(previous.ok());
  EXPECT_FALSE(machine_->CheckSettled(kNic).ok());
  ASSERT_TRUE(node0_.router->Restore(kNic, Fence{2, 0}, *previous).ok());
  ASSERT_TRUE(node1_.router->ReleaseReservation(kNic, Fence{2, 0}).ok());
  ASSERT_TRUE(node0_.arbiter->CompareAndSwap(kNic, Active("node0", 1), Active("node0", 2))->epoch() == 2);
  ASSERT_TRUE(node0_.hook->Resume(kNic, Fence{2, 0}).ok());
  EXPECT_TRUE(machine_->CheckSettled(kNic).ok()) << machine_->CheckSettled(kNic);
  EXPECT_EQ(machine_->Inspect(kNic)->nodes[1].reserved_vectors, 0u);
}

TEST_F(FakePlatformTest, HookRefusesAnEpochBelowTheHighestSeen) {
  ASSERT_TRUE(node0_.arbiter->CompareAndSwap(kNic, Active("node0", 1), Active("node0", 4)).ok());
  ASSERT_TRUE(node0_.hook->Quiesce(kNic, Fence{5, 0}, absl::Seconds(1)).ok());
  absl::Status stale = node0_.hook->Resume(kNic, Fence{4, 0});
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stale.message(), HasSubstr("highest accepted for the device (epoch 5 op 0.0)"));
  EXPECT_EQ(node0_.hook->Status(kNic)->state, HookState::kQuiesced);
  EXPECT_EQ(node0_.router->Reroute(kNic, Fence{4, 0}, node0_.router->ReadMessages(kNic).value())
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(node0_.hook->Resume(kNic, Fence{5, 0}).ok());
}

// Issue 16.5: a hook never adopts an epoch the record has not reached (at
// most the record's next, a handover's epoch before its PREPARING CAS).
TEST_F(FakePlatformTest, HookRefusesAnEpochBeyondTheRecordsNext) {
  absl::Status poisoned =
      node1_.router->ReserveTargetMessages(kNic, Fence{uint64_t{1} << 39, 0}, 3).status();
  EXPECT_EQ(poisoned.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(poisoned.message(), HasSubstr("record is at epoch 1"));
  EXPECT_EQ(node0_.hook->Resume(kNic, Fence{3, 0}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(node1_.hook->Status(kNic)->epoch, 0u);
  EXPECT_TRUE(node1_.router->ReserveTargetMessages(kNic, Fence{2, 0}, 3).ok());
}

TEST_F(FakePlatformTest, OperationsOutOfOrderAreRefused) {
  // node1 does not run the NIC.
  EXPECT_EQ(node1_.hook->Quiesce(kNic, Fence{2, 0}, absl::Seconds(1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(node1_.hook->Resume(kNic, Fence{2, 0}).code(), absl::StatusCode::kFailedPrecondition);
  // Release and reroute need the NIC quiesced first.
  EXPECT_EQ(node0_.hook->Release(kNic, Fence{2, 0}).code(), absl::StatusCode::kFailedPrecondition);
  std::vector<v1::MsiMessage> messages = node0_.router->ReadMessages(kNic).value();
  EXPECT_EQ(node0_.router->Reroute(kNic, Fence{2, 0}, messages).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(node0_.hook->Quiesce(kNic, Fence{2, 0}, absl::Seconds(1)).ok());
  messages.pop_back();
  EXPECT_EQ(node0_.router->Reroute(kNic, Fence{2, 0}, messages).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Nothing above changed the routing.
  EXPECT_THAT(machine_->Inspect(kNic)->interrupt_nodes, ElementsAre("node0", "node0", "node0", "node0"));
}

TEST_F(FakePlatformTest, AttachWithoutADriverAndRerouteUnderRemappingAreRefused) {
  FakeMachineSpec spec = SimpleMachineSpec(2, 1, {kNic}, 2);
  (*spec.mutable_nics(0)->mutable_drivers())["node1"] = "";
  spec.mutable_nics(0)->set_default_driver("");
  (*spec.mutable_nics(0)->mutable_drivers())["node0"] = "e1000e";
  spec.mutable_nics(0)->set_interrupt_remapping(true);
  ASSERT_TRUE(machine_->Create(spec).ok());
  absl::Status attach = node1_.hook->Attach(kNic, Fence{2, 0}, {});
  EXPECT_EQ(attach.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(attach.message(), HasSubstr("no driver"));
  ASSERT_TRUE(node0_.hook->Quiesce(kNic, Fence{2, 0}, absl::Seconds(1)).ok());
  absl::Status reroute =
      node0_.router->Reroute(kNic, Fence{2, 0}, node0_.router->ReadMessages(kNic).value()).status();
  EXPECT_EQ(reroute.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(reroute.message(), HasSubstr("interrupt remapping"));
}

TEST_F(FakePlatformTest, ReservationsAreFreeVectorsRoundRobinOnTheTargetsCpus) {
  absl::StatusOr<std::vector<v1::MsiMessage>> first =
      node1_.router->ReserveTargetMessages(kNic, Fence{2, 0}, 4);
  ASSERT_TRUE(first.ok()) << first.status();
  std::vector<std::pair<uint32_t, uint32_t>> routes;
  for (const v1::MsiMessage& message : *first) {
    routes.emplace_back(MsiDestinationApic(message), MsiVector(message));
  }
  // node1's CPUs have APIC IDs 16 and 17; its range starts at 0x40.
  EXPECT_THAT(routes, ElementsAre(std::make_pair(16u, 0x40u), std::make_pair(17u, 0x40u),
                                  std::make_pair(16u, 0x41u), std::make_pair(17u, 0x41u)));
  EXPECT_EQ((*first)[0].address(), 0xFEE10000u);
  // A retried offer gets the same messages; another NIC gets other vectors.
  EXPECT_EQ(node1_.router->ReserveTargetMessages(kNic, Fence{2, 0}, 4)->at(3).data(),
            (*first)[3].data());
  absl::StatusOr<std::vector<v1::MsiMessage>> other =
      node1_.router->ReserveTargetMessages(kOtherNic, Fence{2, 0}, 2);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(MsiVector((*other)[0]), 0x42u);
  // A late release for an older offer is refused and keeps the newer
  // reservation.
  EXPECT_EQ(node1_.router->ReleaseReservation(kNic, Fence{1, 0}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(machine_->Inspect(kNic)->nodes[1].reserved_vectors, 4u);
  ASSERT_TRUE(node1_.router->ReleaseReservation(kNic, Fence{2, 0}).ok());
  EXPECT_EQ(machine_->Inspect(kNic)->nodes[1].reserved_vectors, 0u);
}

// A retried offer's reserve is an accepted call like any other: its fence
// becomes the highest, so a late call of the same epoch made before it (a
// release of the first attempt's reservation) is refused and keeps it.
TEST_F(FakePlatformTest, RetriedReserveRaisesTheFenceLikeAnyAcceptedCall) {
  absl::StatusOr<std::vector<v1::MsiMessage>> first =
      node1_.router->ReserveTargetMessages(kNic, Fence{2, 5}, 2);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::vector<v1::MsiMessage>> retried =
      node1_.router->ReserveTargetMessages(kNic, Fence{2, 7}, 2);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ((*retried)[1].data(), (*first)[1].data());
  absl::Status late = node1_.router->ReleaseReservation(kNic, Fence{2, 6});
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(late.message(), HasSubstr("overtaken by a newer operation"));
  EXPECT_EQ(machine_->Inspect(kNic)->nodes[1].reserved_vectors, 2u);
}

TEST_F(FakePlatformTest, ReservationBeyondTheVectorRangeIsResourceExhausted) {
  FakeMachineSpec spec = SimpleMachineSpec(2, 1, {kNic}, 4);
  spec.mutable_nodes(1)->set_first_vector(0x50);
  spec.mutable_nodes(1)->set_last_vector(0x52);
  ASSERT_TRUE(machine_->Create(spec).ok());
  absl::Status status = node1_.router->ReserveTargetMessages(kNic, Fence{2, 0}, 4).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("no free vector"));
  EXPECT_TRUE(node1_.router->ReserveTargetMessages(kNic, Fence{2, 0}, 3).ok());
}

TEST_F(FakePlatformTest, CompareAndSwapChangesTheRecordOnlyWhenItMatches) {
  v1::OwnershipRecord after =
      node1_.arbiter->CompareAndSwap(kNic, Active("node1", 1), Active("node1", 2)).value();
  EXPECT_EQ(after.owner_node(), "node0");
  EXPECT_EQ(after.epoch(), 1u);
  EXPECT_EQ(node0_.arbiter->CompareAndSwap(kNic, Active("node0", 1), Active("node0", 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(node0_.arbiter->Read(kNic)->epoch(), 1u);
  EXPECT_EQ(node0_.arbiter->Read("0000:09:00.0").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FakePlatformTest, HandoffRingsAreFoundOnlyForTheirEpoch) {
  v1::QueueRingState ring;
  ring.set_queue(0);
  ring.set_tx_next_to_use(42);
  ASSERT_TRUE(node0_.arbiter->WriteHandoffRings(kNic, Fence{3, 0}, {ring}).ok());
  EXPECT_EQ(node1_.arbiter->ReadHandoffRings(kNic, 3)->at(0).tx_next_to_use(), 42u);
  EXPECT_EQ(node1_.arbiter->ReadHandoffRings(kNic, 2).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FakePlatformTest, FailKnobFailsOnceThenTheOperationWorks) {
  ASSERT_TRUE(machine_->SetFault(Fault("node0", FAKE_OP_QUIESCE, absl::StatusCode::kUnavailable)).ok());
  absl::Status failed = node0_.hook->Quiesce(kNic, Fence{2, 0}, absl::Seconds(1)).status();
  EXPECT_EQ(failed.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(failed.message(), HasSubstr("injected fault"));
  // The failed call changed nothing.
  EXPECT_EQ(node0_.hook->Status(kNic)->state, HookState::kRunning);
  EXPECT_EQ(node0_.hook->Status(kNic)->epoch, 1u);
  EXPECT_TRUE(node0_.hook->Quiesce(kNic, Fence{2, 0}, absl::Seconds(1)).ok());
  EXPECT_EQ(machine_->FaultHits("node0", FAKE_OP_QUIESCE).value(), 1u);
}

TEST_F(FakePlatformTest, FailKnobCountsTimesOrFailsAlwaysAndStaysOnItsNode) {
  FakeFault twice = Fault("node1", FAKE_OP_READ_RECORD, absl::StatusCode::kInternal);
  twice.set_fail_times(2);
  ASSERT_TRUE(machine_->SetFault(twice).ok());
  EXPECT_TRUE(node0_.arbiter->Read(kNic).ok());
  EXPECT_EQ(node1_.arbiter->Read(kNic).status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(node1_.arbiter->Read(kNic).status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(node1_.arbiter->Read(kNic).ok());

  FakeFault always = Fault("", FAKE_OP_COMPARE_AND_SWAP, absl::StatusCode::kUnavailable);
  always.set_fail_always(true);
  ASSERT_TRUE(machine_->SetFault(always).ok());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(node0_.arbiter->CompareAndSwap(kNic, Active("node0", 1), Active("node0", 2)).status().code(),
              absl::StatusCode::kUnavailable);
    EXPECT_EQ(node1_.arbiter->CompareAndSwap(kNic, Active("node0", 1), Active("node0", 2)).status().code(),
              absl::StatusCode::kUnavailable);
  }
  EXPECT_EQ(node0_.arbiter->Read(kNic)->epoch(), 1u);
  ASSERT_TRUE(machine_->ClearFaults("", FAKE_OP_UNSPECIFIED).ok());
  EXPECT_EQ(node0_.arbiter->CompareAndSwap(kNic, Active("node0", 1), Active("node0", 2))->epoch(), 2u);
}

TEST_F(FakePlatformTest, HangKnobBlocksUntilCleared) {
  FakeFault hang;
  hang.set_node_id("node1");
  hang.set_operation(FAKE_OP_ATTACH);
  hang.set_hang(true);
  ASSERT_TRUE(machine_->SetFault(hang).ok());
  std::atomic<bool> done{false};
  absl::Status attach;
  std::thread caller([&] {
    attach = node1_.hook->Attach(kNic, Fence{2, 0}, {});
    done = true;
  });
  while (machine_->FaultHits("node1", FAKE_OP_ATTACH).value() == 0) absl::SleepFor(absl::Milliseconds(1));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(done) << "attach returned while its hang knob was set";
  EXPECT_EQ(node1_.hook->Status(kNic)->state, HookState::kDetached);
  ASSERT_TRUE(machine_->ClearFaults("node1", FAKE_OP_ATTACH).ok());
  caller.join();
  EXPECT_TRUE(attach.ok()) << attach;
  EXPECT_EQ(node1_.hook->Status(kNic)->state, HookState::kRunning);
}

TEST_F(FakePlatformTest, HangKnobWithAMaximumEndsAndThenFailsIfAsked) {
  FakeFault hang = Fault("node0", FAKE_OP_READ_MESSAGES, absl::StatusCode::kAborted);
  hang.set_hang(true);
  hang.set_hang_max_ms(20);
  ASSERT_TRUE(machine_->SetFault(hang).ok());
  EXPECT_EQ(node0_.router->ReadMessages(kNic).status().code(), absl::StatusCode::kAborted);
}

TEST_F(FakePlatformTest, QuiesceHungPastItsTimeoutLeavesTheGatesClosed) {
  FakeFault hang;
  hang.set_node_id("node0");
  hang.set_operation(FAKE_OP_QUIESCE);
  hang.set_hang(true);
  ASSERT_TRUE(machine_->SetFault(hang).ok());
  absl::Status status = node0_.hook->Quiesce(kNic, Fence{2, 0}, absl::Milliseconds(20)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(node0_.hook->Status(kNic)->state, HookState::kQuiesced);
  EXPECT_THAT(machine_->Inspect(kNic)->masked, ElementsAre(true, true, true, true));
  // Resume reopens them.
  EXPECT_TRUE(node0_.hook->Resume(kNic, Fence{2, 0}).ok());
  EXPECT_EQ(node0_.hook->Status(kNic)->state, HookState::kRunning);
  EXPECT_THAT(machine_->Inspect(kNic)->masked, ElementsAre(false, false, false, false));
}

// Two processes race to bump the epoch by CAS; with an atomic CAS no bump is
// lost, whichever interleaving the scheduler picks.
TEST_F(FakePlatformTest, CompareAndSwapIsAtomicAcrossProcesses) {
  constexpr int kBumpsPerProcess = 60;
  std::vector<pid_t> children;
  for (const char* node : {"node0", "node1"}) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      absl::StatusOr<Platform> platform = MakeFakePlatform(path_, node);
      if (!platform.ok()) _exit(2);
      for (int won = 0; won < kBumpsPerProcess;) {
        absl::StatusOr<v1::OwnershipRecord> current = platform->arbiter->Read(kNic);
        if (!current.ok()) _exit(3);
        v1::OwnershipRecord next = *current;
        next.set_epoch(current->epoch() + 1);
        next.set_owner_node(node);  // so a loser cannot mistake the winner's record for its own
        absl::StatusOr<v1::OwnershipRecord> after =
            platform->arbiter->CompareAndSwap(kNic, *current, next);
        if (!after.ok()) _exit(4);
        if (after->SerializeAsString() == next.SerializeAsString()) {
          ++won;
        }
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  EXPECT_EQ(node0_.arbiter->Read(kNic)->epoch(), 1u + 2 * kBumpsPerProcess);
}

// A daemon killed in the middle of its work leaves the machine as it was:
// what it did stays done, and the file still parses.
TEST_F(FakePlatformTest, StateSurvivesADaemonKilledMidOperation) {
  FakeFault hang;
  hang.set_node_id("node0");
  hang.set_operation(FAKE_OP_REROUTE);
  hang.set_hang(true);
  ASSERT_TRUE(machine_->SetFault(hang).ok());
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    absl::StatusOr<Platform> platform = MakeFakePlatform(path_, "node0");
    if (!platform.ok()) _exit(2);
    platform->arbiter->CompareAndSwap(kNic, Active("node0", 1),
                                      Record(v1::OWNERSHIP_STATE_PREPARING, "node0", "node1", 2))
        .IgnoreError();
    platform->hook->Quiesce(kNic, Fence{2, 0}, absl::Seconds(1)).IgnoreError();
    std::vector<v1::MsiMessage> messages = platform->router->ReadMessages(kNic).value();
    platform->router->Reroute(kNic, Fence{2, 0}, messages).IgnoreError();  // hangs
    _exit(0);
  }
  while (machine_->FaultHits("node0", FAKE_OP_REROUTE).value() == 0) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));

  absl::StatusOr<NicView> view = machine_->Inspect(kNic);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->ownership.state(), v1::OWNERSHIP_STATE_PREPARING);
  EXPECT_EQ(view->nodes[0].state, FAKE_HOOK_QUIESCED);
  EXPECT_EQ(view->nodes[0].hook_epoch, 2u);
  EXPECT_TRUE(view->running_nodes.empty());
  // The restarted daemon rolls back from there.
  ASSERT_TRUE(machine_->ClearFaults("", FAKE_OP_UNSPECIFIED).ok());
  Platform restarted = Open("node0");
  ASSERT_EQ(restarted.arbiter
                ->CompareAndSwap(kNic, Record(v1::OWNERSHIP_STATE_PREPARING, "node0", "node1", 2),
                                 Active("node0", 2))
                ->state(),
            v1::OWNERSHIP_STATE_ACTIVE);
  ASSERT_TRUE(restarted.hook->Resume(kNic, Fence{2, 0}).ok());
  EXPECT_TRUE(machine_->CheckSettled(kNic).ok()) << machine_->CheckSettled(kNic);
}

// ---------------------------------------------------------------- kernel commit path

// The target's kernel (in its daemon's WaitEvents) wakes on the doorbell a
// source's HandOff rings while it waits, not at the end of its timeout.
TEST_F(FakePlatformTest, AWaitingTargetKernelWakesOnTheDoorbellAndCommits) {
  const uint64_t e1 = 2;
  auto reserved = node1_.router->ReserveTargetMessages(kNic, Fence{e1, 1}, 4);
  ASSERT_TRUE(reserved.ok()) << reserved.status();
  const v1::OwnershipRecord handoff = Record(v1::OWNERSHIP_STATE_HANDOFF, "node0", "node1", e1);
  const v1::OwnershipRecord preparing =
      Record(v1::OWNERSHIP_STATE_PREPARING, "node0", "node1", e1);
  ASSERT_TRUE(node1_.fast_path->Arm(kNic, Fence{e1, 2}, handoff).ok());
  ASSERT_TRUE(node0_.arbiter->CompareAndSwap(kNic, Active("node0", 1), preparing).ok());

  // A wait far longer than the test: it must end because the doorbell rang.
  constexpr absl::Duration kLongWait = absl::Minutes(10);
  absl::StatusOr<KernelEvents> events;
  absl::Time woke;
  std::thread kernel([&] {
    events = node1_.fast_path->WaitEvents(0, kLongWait);
    woke = absl::Now();
  });
  // The kernel's first look creates its entry in the machine; from then on
  // its watch on the file is open.
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (absl::Now() < give_up) {
    absl::StatusOr<FakeMachineState> state = machine_->State();
    ASSERT_TRUE(state.ok()) << state.status();
    if (state->kernels_size() > 0) break;
    absl::SleepFor(absl::Milliseconds(1));
  }
  HandOffRequest request;
  request.bdf = kNic;
  request.fence = Fence{e1, 3};
  request.expected = preparing;
  request.desired = handoff;
  request.target_messages = *reserved;
  request.drain_timeout = absl::Seconds(30);
  const absl::Time rung = absl::Now();
  absl::StatusOr<HandOffResult> result = node0_.fast_path->HandOff(request);
  kernel.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->reached, HandOffStage::kDoorbellRung);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->events.size(), 1u);
  EXPECT_EQ(events->events[0].kind, KernelEvent::Kind::kCommitted) << events->events[0].message;
  EXPECT_LT(woke - rung, kLongWait / 2);
  // The NIC runs on node1 with node1's vectors, the arm and reservation used up.
  absl::StatusOr<NicView> view = machine_->Inspect(kNic);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_THAT(view->running_nodes, ElementsAre("node1"));
  EXPECT_TRUE(machine_->CheckSettled(kNic).ok()) << machine_->CheckSettled(kNic);
  absl::StatusOr<FakeMachineState> state = machine_->State();
  ASSERT_TRUE(state.ok());
  for (const FakeNic& nic : state->nics()) {
    EXPECT_EQ(nic.arms_size(), 0) << nic.bdf();
    EXPECT_EQ(nic.reservations_size(), 0) << nic.bdf();
  }
}

// ReleaseReservation disarms: a doorbell after it is ignored, the record
// stays where the source left it.
TEST_F(FakePlatformTest, ReleasingTheReservationDisarmsTheKernel) {
  const uint64_t e1 = 2;
  const v1::OwnershipRecord handoff = Record(v1::OWNERSHIP_STATE_HANDOFF, "node0", "node1", e1);
  ASSERT_TRUE(node1_.router->ReserveTargetMessages(kNic, Fence{e1, 1}, 4).ok());
  ASSERT_TRUE(node1_.fast_path->Arm(kNic, Fence{e1, 2}, handoff).ok());
  ASSERT_TRUE(node1_.router->ReleaseReservation(kNic, Fence{e1, 3}).ok());
  // The record as if the source's HandOff had won, then its doorbell.
  ASSERT_TRUE(machine_->State().ok());
  ASSERT_TRUE(MachineFile(path_)
                  .Update([&](FakeMachineState* state) {
                    for (FakeNic& nic : *state->mutable_nics()) {
                      if (nic.bdf() == kNic) *nic.mutable_ownership() = handoff;
                    }
                    RingDoorbell(state, "node1", kNic, e1);
                    return absl::OkStatus();
                  })
                  .ok());
  absl::StatusOr<KernelEvents> events = node1_.fast_path->WaitEvents(0, absl::Seconds(30));
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->events.size(), 1u);
  EXPECT_EQ(events->events[0].kind, KernelEvent::Kind::kNotCommitted);
  EXPECT_THAT(events->events[0].message, HasSubstr("not armed"));
  EXPECT_EQ(node1_.arbiter->Read(kNic)->state(), v1::OWNERSHIP_STATE_HANDOFF);
  // A kernel reader that restarted its count (after_seq beyond the kernel's
  // newest) gets everything the kernel has.
  events = node1_.fast_path->WaitEvents(99, absl::Milliseconds(1));
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_EQ(events->events.size(), 1u);
  EXPECT_EQ(events->last_seq, 1u);
}

}  // namespace
}  // namespace fake
}  // namespace platform
}  // namespace nichandover
