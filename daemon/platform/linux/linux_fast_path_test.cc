// The kernel commit path of the Linux backend (Arm, HandOff, WaitEvents)
// against two fake hook modules, a source node's and a target node's, that
// share the simulated machine's record word as their kernels share its
// memory, and whose doorbell reaches the other's commit work.
#include "daemon/platform/linux/linux_fast_path.h"

#include <memory>
#include <string>
#include <vector>

#include "daemon/platform/linux/fake_hook_module.h"
#include "daemon/platform/linux/linux_router.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace platform {
namespace linux_backend {
namespace {

using testing::FakeFunction;
using testing::FakeHookModule;
using testing::FakeMachineRecord;

constexpr char kNic[] = "0000:05:00.0";
const std::vector<std::string> kNodes = {"node-a", "node-b"};

v1::OwnershipRecord Record(v1::OwnershipState state, const std::string& owner,
                           const std::string& target, uint64_t epoch) {
  v1::OwnershipRecord r;
  r.set_state(state);
  r.set_owner_node(owner);
  r.set_target_node(target);
  r.set_epoch(epoch);
  return r;
}

bool Same(const v1::OwnershipRecord& a, const v1::OwnershipRecord& b) {
  return a.state() == b.state() && a.owner_node() == b.owner_node() &&
         a.target_node() == b.target_node() && a.epoch() == b.epoch();
}

// nh_simnic on the node that runs the NIC: two MSI-X entries to its CPU.
FakeFunction SimNicRunning(std::shared_ptr<FakeMachineRecord> record) {
  FakeFunction f;
  f.handover_mode = hook::HandoverMode::kContract;
  f.state = hook::DeviceState::kRunning;
  f.driver = "nh_simnic";
  f.ifname = "nhsim0";
  f.vectors = {{0, 0xfee01000, 0x40, false, 0, 0}, {1, 0xfee01000, 0x41, false, 0, 0}};
  f.msix_entries = 2;
  f.rings = {{0, 17, 16, 9, 9}};
  f.kernel_commit = true;
  f.record = std::move(record);
  return f;
}

// The same driver on the node the NIC is handed to: on standby.
FakeFunction SimNicOnStandby(std::shared_ptr<FakeMachineRecord> record) {
  FakeFunction f = SimNicRunning(std::move(record));
  f.state = hook::DeviceState::kStandby;
  f.rings.clear();
  for (hook::MsiVector& v : f.vectors) v.masked = true;
  return f;
}

class LinuxFastPathTest : public ::testing::Test {
 protected:
  LinuxFastPathTest()
      : record_(std::make_shared<FakeMachineRecord>()),
        source_(ModuleConnection(source_module_.Factory()), RecordWords(kNodes), "node-a"),
        target_(ModuleConnection(target_module_.Factory()), RecordWords(kNodes), "node-b"),
        target_router_(ModuleConnection(target_module_.Factory())) {
    source_module_.AddFunction(kNic, SimNicRunning(record_));
    target_module_.AddFunction(kNic, SimNicOnStandby(record_));
    source_module_.set_doorbell([this](const std::string& bdf, uint64_t epoch) {
      target_module_.RingDoorbell(bdf, epoch);
    });
    SetRecord(Record(v1::OWNERSHIP_STATE_PREPARING, "node-a", "node-b", 7));
  }

  void SetRecord(const v1::OwnershipRecord& r) {
    absl::StatusOr<uint64_t> word = RecordWords(kNodes).Encode(r);
    ASSERT_TRUE(word.ok()) << word.status();
    absl::MutexLock lock(&record_->mu);
    record_->word = *word;
  }
  void WriteRings(uint64_t epoch, std::vector<hook::RingState> rings) {
    absl::MutexLock lock(&record_->mu);
    record_->rings_epoch = epoch;
    record_->rings = std::move(rings);
  }
  v1::OwnershipRecord RecordNow() {
    uint64_t word;
    {
      absl::MutexLock lock(&record_->mu);
      word = record_->word;
    }
    absl::StatusOr<v1::OwnershipRecord> r = RecordWords(kNodes).Decode(word);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::OwnershipRecord();
  }

  // The target's side before the blackout: reserve at e1, then arm.
  std::vector<v1::MsiMessage> ReserveAndArm(uint64_t epoch) {
    auto messages = target_router_.ReserveTargetMessages(kNic, Fence{epoch, 3}, 2);
    EXPECT_TRUE(messages.ok()) << messages.status();
    absl::Status armed = target_.Arm(
        kNic, Fence{epoch, 4}, Record(v1::OWNERSHIP_STATE_HANDOFF, "node-a", "node-b", epoch));
    EXPECT_TRUE(armed.ok()) << armed;
    return messages.ok() ? *messages : std::vector<v1::MsiMessage>{};
  }

  HandOffRequest Request(uint64_t epoch, std::vector<v1::MsiMessage> messages) {
    HandOffRequest request;
    request.bdf = kNic;
    request.fence = Fence{epoch, 11};
    request.expected = Record(v1::OWNERSHIP_STATE_PREPARING, "node-a", "node-b", epoch);
    request.desired = Record(v1::OWNERSHIP_STATE_HANDOFF, "node-a", "node-b", epoch);
    request.target_messages = std::move(messages);
    request.drain_timeout = absl::Seconds(2);
    return request;
  }

  std::shared_ptr<FakeMachineRecord> record_;
  FakeHookModule source_module_;
  FakeHookModule target_module_;
  LinuxFastPath source_;
  LinuxFastPath target_;
  LinuxRouter target_router_;
};

TEST_F(LinuxFastPathTest, OneCallHandsOffAndTheArmedTargetKernelCommitsAndAttachesAlone) {
  std::vector<v1::MsiMessage> target_messages = ReserveAndArm(7);
  ASSERT_EQ(target_messages.size(), 2u);

  absl::StatusOr<HandOffResult> result = source_.HandOff(Request(7, target_messages));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->reached, HandOffStage::kDoorbellRung);
  EXPECT_TRUE(Same(result->record, Record(v1::OWNERSHIP_STATE_HANDOFF, "node-a", "node-b", 7)))
      << result->record.ShortDebugString();
  ASSERT_EQ(result->quiesce.rings.size(), 1u);
  EXPECT_EQ(result->quiesce.rings[0].rx_next_to_clean(), 17u);
  ASSERT_EQ(result->previous.size(), 2u);
  EXPECT_EQ(result->previous[0].address(), 0xfee01000u);
  EXPECT_EQ(result->previous[1].data(), 0x41u);

  // The source released the NIC, its table holds the target's messages.
  FakeFunction source = source_module_.Snapshot(kNic);
  EXPECT_EQ(source.state, hook::DeviceState::kReleased);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(source.vectors[i].address, target_messages[i].address());
    EXPECT_EQ(source.vectors[i].data, target_messages[i].data());
  }
  // The target's kernel took the record and runs the NIC from the rings
  // the source wrote beside it, with no daemon call in between.
  EXPECT_TRUE(Same(RecordNow(), Record(v1::OWNERSHIP_STATE_ACTIVE, "node-b", "", 7)))
      << RecordNow().ShortDebugString();
  FakeFunction target = target_module_.Snapshot(kNic);
  EXPECT_EQ(target.state, hook::DeviceState::kRunning);
  ASSERT_EQ(target.rings.size(), 1u);
  EXPECT_EQ(target.rings[0].rx_next_to_clean, 17u);
  EXPECT_EQ(target.max_epoch, 7u);

  // Its daemon learns it from the event log.
  absl::StatusOr<KernelEvents> events = target_.WaitEvents(0, absl::Seconds(30));
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->events.size(), 1u);
  const KernelEvent& e = events->events[0];
  EXPECT_EQ(e.kind, KernelEvent::Kind::kCommitted);
  EXPECT_EQ(e.bdf, kNic);
  EXPECT_EQ(e.epoch, 7u);
  EXPECT_TRUE(Same(e.record, Record(v1::OWNERSHIP_STATE_ACTIVE, "node-b", "", 7)));
  EXPECT_EQ(events->last_seq, e.seq);

  // The source daemon's later Release of the same epoch is accepted.
  FakeFunction after = source_module_.Snapshot(kNic);
  EXPECT_EQ(after.state, hook::DeviceState::kReleased);
}

TEST_F(LinuxFastPathTest, ALostCasLeavesTheSourceQuiescedAndReportsTheRecordItFound) {
  std::vector<v1::MsiMessage> target_messages = ReserveAndArm(7);
  // The handover was aborted meanwhile: the record is the source's again.
  SetRecord(Record(v1::OWNERSHIP_STATE_ACTIVE, "node-a", "", 8));

  absl::StatusOr<HandOffResult> result = source_.HandOff(Request(7, target_messages));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->reached, HandOffStage::kRingsWritten);
  EXPECT_TRUE(Same(result->record, Record(v1::OWNERSHIP_STATE_ACTIVE, "node-a", "", 8)));
  EXPECT_EQ(source_module_.Snapshot(kNic).state, hook::DeviceState::kQuiesced);
  EXPECT_EQ(target_module_.Snapshot(kNic).state, hook::DeviceState::kStandby);
  EXPECT_TRUE(target_module_.events().empty());
}

TEST_F(LinuxFastPathTest, AnUnreachableDoorbellStopsAtTheCommitPointForTheDaemonsToFinish) {
  std::vector<v1::MsiMessage> target_messages = ReserveAndArm(7);
  source_module_.function(kNic).doorbell_unreachable = true;

  absl::StatusOr<HandOffResult> result = source_.HandOff(Request(7, target_messages));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->reached, HandOffStage::kHandedOff);
  EXPECT_TRUE(Same(RecordNow(), Record(v1::OWNERSHIP_STATE_HANDOFF, "node-a", "node-b", 7)));
  EXPECT_EQ(target_module_.Snapshot(kNic).state, hook::DeviceState::kStandby);
  EXPECT_EQ(target_module_.Snapshot(kNic).armed_epoch, 7u);
}

TEST_F(LinuxFastPathTest, AStaleDoorbellIsIgnoredCountedAndReportedNotCommitted) {
  ReserveAndArm(7);
  // As the source's kernel leaves it before its doorbell: rings, then the CAS.
  WriteRings(7, {{0, 17, 16, 9, 9}});
  SetRecord(Record(v1::OWNERSHIP_STATE_HANDOFF, "node-a", "node-b", 7));
  target_module_.RingDoorbell(kNic, 6);

  FakeFunction target = target_module_.Snapshot(kNic);
  EXPECT_EQ(target.state, hook::DeviceState::kStandby);
  EXPECT_EQ(target.armed_epoch, 7u);
  EXPECT_EQ(target.doorbells_ignored, 1u);
  EXPECT_TRUE(Same(RecordNow(), Record(v1::OWNERSHIP_STATE_HANDOFF, "node-a", "node-b", 7)));
  absl::StatusOr<KernelEvents> events = target_.WaitEvents(0, absl::Seconds(30));
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->events.size(), 1u);
  EXPECT_EQ(events->events[0].kind, KernelEvent::Kind::kNotCommitted);
  EXPECT_EQ(events->events[0].epoch, 6u);

  // The right epoch still commits afterwards.
  target_module_.RingDoorbell(kNic, 7);
  events = target_.WaitEvents(events->last_seq, absl::Seconds(30));
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->events.size(), 1u);
  EXPECT_EQ(events->events[0].kind, KernelEvent::Kind::kCommitted);
  EXPECT_EQ(target_module_.Snapshot(kNic).state, hook::DeviceState::kRunning);
}

TEST_F(LinuxFastPathTest, ACommitWithoutRingsBesideTheRecordTakesItButLeavesTheAttachToTheDaemon) {
  ReserveAndArm(7);
  SetRecord(Record(v1::OWNERSHIP_STATE_HANDOFF, "node-a", "node-b", 7));
  target_module_.RingDoorbell(kNic, 7);
  EXPECT_TRUE(Same(RecordNow(), Record(v1::OWNERSHIP_STATE_ACTIVE, "node-b", "", 7)));
  EXPECT_EQ(target_module_.Snapshot(kNic).state, hook::DeviceState::kStandby);
  absl::StatusOr<KernelEvents> events = target_.WaitEvents(0, absl::Seconds(30));
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->events.size(), 1u);
  EXPECT_EQ(events->events[0].kind, KernelEvent::Kind::kNotCommitted);
  EXPECT_TRUE(Same(events->events[0].record, Record(v1::OWNERSHIP_STATE_ACTIVE, "node-b", "", 7)));
  EXPECT_NE(events->events[0].message.find("ring state"), std::string::npos);
}

TEST_F(LinuxFastPathTest, ADoorbellWhenTheRecordIsNotTheArmedHandoffDoesNotCommit) {
  ReserveAndArm(7);  // the record is still PREPARING: the source never CASed
  target_module_.RingDoorbell(kNic, 7);
  EXPECT_EQ(target_module_.Snapshot(kNic).state, hook::DeviceState::kStandby);
  EXPECT_TRUE(Same(RecordNow(), Record(v1::OWNERSHIP_STATE_PREPARING, "node-a", "node-b", 7)));
  absl::StatusOr<KernelEvents> events = target_.WaitEvents(0, absl::Seconds(30));
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->events.size(), 1u);
  EXPECT_EQ(events->events[0].kind, KernelEvent::Kind::kNotCommitted);
  EXPECT_TRUE(Same(events->events[0].record,
                   Record(v1::OWNERSHIP_STATE_PREPARING, "node-a", "node-b", 7)));
}

TEST_F(LinuxFastPathTest, ReleasingTheReservationDisarms) {
  ReserveAndArm(7);
  ASSERT_TRUE(target_router_.ReleaseReservation(kNic, Fence{7, 5}).ok());
  EXPECT_EQ(target_module_.Snapshot(kNic).armed_epoch, 0u);
  SetRecord(Record(v1::OWNERSHIP_STATE_HANDOFF, "node-a", "node-b", 7));
  target_module_.RingDoorbell(kNic, 7);
  EXPECT_EQ(target_module_.Snapshot(kNic).state, hook::DeviceState::kStandby);
}

TEST_F(LinuxFastPathTest, ArmWithoutAReservationAtThatEpochIsFailedPrecondition) {
  absl::Status armed = target_.Arm(kNic, Fence{7, 4},
                                   Record(v1::OWNERSHIP_STATE_HANDOFF, "node-a", "node-b", 7));
  EXPECT_EQ(armed.code(), absl::StatusCode::kFailedPrecondition) << armed;
  EXPECT_EQ(target_module_.Snapshot(kNic).armed_epoch, 0u);
}

TEST_F(LinuxFastPathTest, ArmForAnotherTargetOrEpochIsInvalidArgumentAndSendsNothing) {
  const size_t before = target_module_.requests().size();
  EXPECT_EQ(target_.Arm(kNic, Fence{7, 4},
                        Record(v1::OWNERSHIP_STATE_HANDOFF, "node-b", "node-a", 7))
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(target_.Arm(kNic, Fence{8, 4},
                        Record(v1::OWNERSHIP_STATE_HANDOFF, "node-a", "node-b", 7))
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(target_module_.requests().size(), before);
}

TEST_F(LinuxFastPathTest, ADriverWithoutTheKernelCommitPathIsUnimplemented) {
  target_module_.function(kNic).kernel_commit = false;
  source_module_.function(kNic).kernel_commit = false;
  ASSERT_TRUE(target_router_.ReserveTargetMessages(kNic, Fence{7, 3}, 2).ok());
  EXPECT_EQ(target_.Arm(kNic, Fence{7, 4},
                        Record(v1::OWNERSHIP_STATE_HANDOFF, "node-a", "node-b", 7))
                .code(),
            absl::StatusCode::kUnimplemented);
  absl::StatusOr<HandOffResult> result =
      source_.HandOff(Request(7, {v1::MsiMessage(), v1::MsiMessage()}));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(source_module_.Snapshot(kNic).state, hook::DeviceState::kRunning);
  EXPECT_FALSE(*ModuleHasKernelCommit(ModuleConnection(source_module_.Factory())));
}

TEST_F(LinuxFastPathTest, TheModuleReportsTheCapabilityInItsList) {
  absl::StatusOr<bool> capable = ModuleHasKernelCommit(ModuleConnection(source_module_.Factory()));
  ASSERT_TRUE(capable.ok()) << capable.status();
  EXPECT_TRUE(*capable);
  source_module_.set_loaded(false);
  EXPECT_EQ(ModuleHasKernelCommit(ModuleConnection(source_module_.Factory())).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(LinuxFastPathTest, AStaleFenceIsRefusedBeforeTheDeviceIsTouched) {
  std::vector<v1::MsiMessage> target_messages = ReserveAndArm(7);
  source_module_.function(kNic).max_epoch = 9;
  absl::StatusOr<HandOffResult> result = source_.HandOff(Request(7, target_messages));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition) << result.status();
  EXPECT_EQ(source_module_.Snapshot(kNic).state, hook::DeviceState::kRunning);
  EXPECT_TRUE(Same(RecordNow(), Record(v1::OWNERSHIP_STATE_PREPARING, "node-a", "node-b", 7)));
}

TEST_F(LinuxFastPathTest, WaitEventsReturnsNothingOnTimeoutAndEverythingAfterAModuleReload) {
  absl::StatusOr<KernelEvents> none = target_.WaitEvents(0, absl::Milliseconds(1));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->events.empty());
  EXPECT_EQ(none->last_seq, 0u);

  target_module_.RingDoorbell(kNic, 7);  // not armed: logged as not committed
  // A daemon that saw seq 40 of an earlier load of the module gets it all.
  absl::StatusOr<KernelEvents> all = target_.WaitEvents(40, absl::Seconds(30));
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->events.size(), 1u);
  EXPECT_EQ(all->events[0].seq, 1u);
  EXPECT_EQ(all->last_seq, 1u);
}

TEST(RecordWordsTest, EncodesAsTheMachineAndRoundTrips) {
  RecordWords words(kNodes);
  v1::OwnershipRecord r = Record(v1::OWNERSHIP_STATE_HANDOFF, "node-a", "node-b", 12345);
  absl::StatusOr<uint64_t> word = words.Encode(r);
  ASSERT_TRUE(word.ok()) << word.status();
  // guest_abi.h: bits 7:0 state, 15:8 source, 23:16 target, 63:24 epoch.
  EXPECT_EQ(*word & 0xff, 3u);
  EXPECT_EQ((*word >> 8) & 0xff, 0u);
  EXPECT_EQ((*word >> 16) & 0xff, 1u);
  EXPECT_EQ(*word >> 24, 12345u);
  absl::StatusOr<v1::OwnershipRecord> back = words.Decode(*word);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(Same(*back, r));
  EXPECT_EQ(words.Encode(Record(v1::OWNERSHIP_STATE_ACTIVE, "node-z", "", 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(words.Encode(Record(v1::OWNERSHIP_STATE_ACTIVE, "node-a", "", uint64_t{1} << 41))
                .status()
                .code(),
            absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
