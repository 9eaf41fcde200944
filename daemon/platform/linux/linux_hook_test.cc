// The Hook and Router over the hook module's netlink family, against a fake
// module that keeps the kernel's state rules.
#include "daemon/platform/linux/linux_hook.h"

#include <string>
#include <vector>

#include "daemon/platform/linux/fake_hook_module.h"
#include "daemon/platform/linux/linux_router.h"
#include "gtest/gtest.h"
#include "hook/kmod/nichandover_genl.h"

namespace nichandover {
namespace platform {
namespace linux_backend {
namespace {

using testing::FakeFunction;
using testing::FakeHookModule;

constexpr char kBdf[] = "0000:03:00.0";

// e1000e's three MSI-X vectors (rx, tx, other) on CPU 0, listed out of
// index order as a module walking its descriptors may.
FakeFunction E1000e() {
  FakeFunction f;
  f.vectors = {{2, 0xfee00000, 0x4023, false, 26, 0},
               {0, 0xfee00000, 0x4021, false, 24, 0},
               {1, 0xfee00000, 0x4022, false, 25, 0}};
  return f;
}

// The simulated NIC under its contract driver on a node that does not own
// it: registered on standby, its MSI-X entries read through the driver's
// window (all masked), one queue pair.
constexpr char kSimNic[] = "0000:05:00.0";
FakeFunction SimNicOnStandby() {
  FakeFunction f;
  f.handover_mode = hook::HandoverMode::kContract;
  f.state = hook::DeviceState::kStandby;
  f.driver = "nh_simnic";
  f.ifname = "nhsim0";
  f.vectors = {{0, 0xfee00000, 0x30, true, 0, 0}, {1, 0xfee00000, 0x31, true, 0, 0}};
  f.msix_entries = 2;
  return f;
}

v1::QueueRingState Ring(uint32_t queue, uint32_t rx_ntc, uint32_t rx_ntu, uint32_t tx_ntc,
                        uint32_t tx_ntu) {
  v1::QueueRingState r;
  r.set_queue(queue);
  r.set_rx_next_to_clean(rx_ntc);
  r.set_rx_next_to_use(rx_ntu);
  r.set_tx_next_to_clean(tx_ntc);
  r.set_tx_next_to_use(tx_ntu);
  return r;
}

v1::MsiMessage Message(uint64_t address, uint32_t data) {
  v1::MsiMessage m;
  m.set_address(address);
  m.set_data(data);
  return m;
}

class LinuxHookTest : public ::testing::Test {
 protected:
  LinuxHookTest()
      : hook_(ModuleConnection(module_.Factory())), router_(ModuleConnection(module_.Factory())) {
    module_.AddFunction(kBdf, E1000e());
    module_.AddFunction(kSimNic, SimNicOnStandby());
  }
  FakeFunction& device() { return module_.function(kBdf); }
  FakeFunction& simnic() { return module_.function(kSimNic); }

  FakeHookModule module_;
  LinuxHook hook_;
  LinuxRouter router_;
};

TEST_F(LinuxHookTest, QuiesceSendsEpochAndTimeoutAndReportsWhatTheModuleDrained) {
  device().drain_tx_packets = 7;
  device().drain_rx_packets = 3;
  device().xmits_to_hold = 12;
  device().drain_tx_bytes = 9000;

  auto result = hook_.Quiesce(kBdf, Fence{5, 0}, absl::Milliseconds(1500));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->drained_tx_packets, 7u);
  EXPECT_EQ(result->drained_rx_packets, 3u);
  EXPECT_EQ(result->held_xmits, 12u);
  EXPECT_EQ(result->polls_while_quiesced, 0u);

  ASSERT_EQ(module_.requests().size(), 1u);
  const auto& sent = module_.requests()[0];
  EXPECT_EQ(sent.cmd, NH_CMD_QUIESCE);
  EXPECT_EQ(sent.dev, kBdf);
  EXPECT_EQ(sent.epoch, 5u);
  EXPECT_EQ(sent.timeout_ms, 1500u);

  auto status = hook_.Status(kBdf);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->state, HookState::kQuiesced);
  EXPECT_EQ(status->epoch, 5u);
  EXPECT_EQ(status->held_xmits, 12u);
  EXPECT_EQ(status->drained_tx_packets, 7u);
}

TEST_F(LinuxHookTest, ResumeReopensAndStatusSaysRunning) {
  ASSERT_TRUE(hook_.Quiesce(kBdf, Fence{5, 0}, absl::Seconds(1)).ok());
  ASSERT_TRUE(hook_.Resume(kBdf, Fence{5, 0}).ok());
  EXPECT_EQ(device().state, hook::DeviceState::kRunning);
  EXPECT_EQ(hook_.Status(kBdf)->state, HookState::kRunning);
}

TEST_F(LinuxHookTest, StaleEpochIsRefusedWithTheModulesReasonAndChangesNothing) {
  ASSERT_TRUE(hook_.Quiesce(kBdf, Fence{5, 0}, absl::Seconds(1)).ok());
  absl::Status resume = hook_.Resume(kBdf, Fence{4, 0});
  EXPECT_EQ(resume.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(resume.message().find("epoch is lower than the highest seen"), std::string::npos)
      << resume;
  EXPECT_EQ(hook_.Status(kBdf)->state, HookState::kQuiesced);
  EXPECT_EQ(hook_.Status(kBdf)->epoch, 5u);
}

TEST_F(LinuxHookTest, DrainPastTheDeadlineIsDeadlineExceededAndLeavesTheGatesClosed) {
  device().drain_times_out = true;
  auto result = hook_.Quiesce(kBdf, Fence{2, 0}, absl::Milliseconds(100));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
  // Gated counts as quiesced: it is not running, and Resume reopens it.
  EXPECT_EQ(hook_.Status(kBdf)->state, HookState::kQuiesced);
  ASSERT_TRUE(hook_.Resume(kBdf, Fence{2, 0}).ok());
  EXPECT_EQ(hook_.Status(kBdf)->state, HookState::kRunning);
}

TEST_F(LinuxHookTest, AGateThatLeakedFailsTheQuiesce) {
  device().leaked_polls = 2;
  auto result = hook_.Quiesce(kBdf, Fence{3, 0}, absl::Seconds(1));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(result.status().message().find("2 NAPI polls"), std::string::npos) << result.status();
  EXPECT_EQ(hook_.Status(kBdf)->polls_while_quiesced, 2u);
}

TEST_F(LinuxHookTest, ReleasedIsDetachedUntilAnAttachAtAHigherEpoch) {
  EXPECT_EQ(hook_.Release(kBdf, Fence{1, 0}).code(), absl::StatusCode::kFailedPrecondition)
      << "a running device must be quiesced before it is released";
  ASSERT_TRUE(hook_.Quiesce(kBdf, Fence{4, 0}, absl::Seconds(1)).ok());
  ASSERT_TRUE(hook_.Release(kBdf, Fence{4, 0}).ok());
  EXPECT_EQ(hook_.Status(kBdf)->state, HookState::kDetached);
  EXPECT_EQ(hook_.Resume(kBdf, Fence{4, 0}).code(), absl::StatusCode::kFailedPrecondition);

  // Cold mode: the driver sets its rings up anew, so none are sent.
  ASSERT_TRUE(hook_.Attach(kBdf, Fence{6, 0}, {}).ok());
  EXPECT_FALSE(module_.requests().back().rings.has_value());
  EXPECT_EQ(hook_.Status(kBdf)->state, HookState::kRunning);
  EXPECT_EQ(hook_.Status(kBdf)->epoch, 6u);
}

TEST_F(LinuxHookTest, RingsForAColdModeDeviceAreRefusedAndChangeNothing) {
  ASSERT_TRUE(hook_.Quiesce(kBdf, Fence{4, 0}, absl::Seconds(1)).ok());
  ASSERT_TRUE(hook_.Release(kBdf, Fence{4, 0}).ok());
  absl::Status attach = hook_.Attach(kBdf, Fence{6, 0}, {Ring(0, 1, 2, 3, 4)});
  EXPECT_EQ(attach.code(), absl::StatusCode::kInvalidArgument) << attach;
  EXPECT_NE(attach.message().find("cold-mode"), std::string::npos) << attach;
  EXPECT_EQ(hook_.Status(kBdf)->state, HookState::kDetached);
}

TEST_F(LinuxHookTest, ShortAddressesAreSentInFullAndBadOnesNeverLeave) {
  ASSERT_TRUE(hook_.Status("03:00.0").ok());
  EXPECT_EQ(module_.requests().back().dev, kBdf);
  size_t sent = module_.requests().size();
  EXPECT_EQ(hook_.Quiesce("3:0.0", Fence{1, 0}, absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(module_.requests().size(), sent);
}

TEST_F(LinuxHookTest, UnknownFunctionIsNotFound) {
  EXPECT_EQ(hook_.Status("0000:09:00.0").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LinuxHookTest, ModuleNotLoadedIsUnavailable) {
  module_.set_loaded(false);
  auto status = hook_.Status(kBdf);
  EXPECT_EQ(status.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(status.status().message().find("nichandover_hook module"), std::string::npos);
}

TEST_F(LinuxHookTest, ReadMessagesListsTheVectorsInIndexOrder) {
  auto messages = router_.ReadMessages(kBdf);
  ASSERT_TRUE(messages.ok()) << messages.status();
  ASSERT_EQ(messages->size(), 3u);
  EXPECT_EQ((*messages)[0].data(), 0x4021u);
  EXPECT_EQ((*messages)[1].data(), 0x4022u);
  EXPECT_EQ((*messages)[2].data(), 0x4023u);
  EXPECT_EQ((*messages)[2].address(), 0xfee00000u);
}

TEST_F(LinuxHookTest, RerouteWritesEachVectorsMessageRawAndRestorePutsThePreviousBack) {
  ASSERT_TRUE(hook_.Quiesce(kBdf, Fence{8, 0}, absl::Seconds(1)).ok());
  // The target node's CPU (APIC ID 1), vectors 0x41..0x43.
  std::vector<v1::MsiMessage> target = {Message(0xfee01000, 0x41), Message(0xfee01000, 0x42),
                                        Message(0xfee01000, 0x43)};
  auto previous = router_.Reroute(kBdf, Fence{8, 0}, target);
  ASSERT_TRUE(previous.ok()) << previous.status();

  const auto& sent = module_.requests().back();
  EXPECT_EQ(sent.cmd, NH_CMD_REROUTE);
  EXPECT_EQ(sent.reroute_mode, static_cast<uint32_t>(NH_REROUTE_RAW));
  EXPECT_EQ(sent.epoch, 8u);
  ASSERT_EQ(sent.messages.size(), 3u);
  EXPECT_EQ(sent.messages[0].index, 0u);
  EXPECT_EQ(sent.messages[0].data, 0x41u);
  EXPECT_EQ(sent.messages[2].index, 2u);
  EXPECT_EQ(sent.messages[2].data, 0x43u);

  for (const hook::MsiVector& v : device().vectors) {
    EXPECT_EQ(v.address, 0xfee01000u);
    EXPECT_EQ(v.data, 0x41u + v.index);
  }
  ASSERT_EQ(previous->size(), 3u);
  EXPECT_EQ((*previous)[0].data(), 0x4021u);
  EXPECT_EQ((*previous)[1].data(), 0x4022u);
  EXPECT_EQ((*previous)[2].data(), 0x4023u);

  ASSERT_TRUE(router_.Restore(kBdf, Fence{8, 0}, *previous).ok());
  for (const hook::MsiVector& v : device().vectors) {
    EXPECT_EQ(v.address, 0xfee00000u);
    EXPECT_EQ(v.data, 0x4021u + v.index);
  }
}

TEST_F(LinuxHookTest, RerouteNeedsOneMessagePerVectorAndWritesNothingOtherwise) {
  auto result = router_.Reroute(kBdf, Fence{1, 0}, {Message(0xfee01000, 0x41)});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("3 vectors but 1 messages"), std::string::npos)
      << result.status();
  for (const auto& request : module_.requests()) EXPECT_NE(request.cmd, NH_CMD_REROUTE);
}

TEST_F(LinuxHookTest, RerouteWithInterruptRemappingIsAFailedPrecondition) {
  device().interrupt_remapping = true;
  ASSERT_TRUE(hook_.Quiesce(kBdf, Fence{1, 0}, absl::Seconds(1)).ok());
  auto result =
      router_.Reroute(kBdf, Fence{1, 0}, std::vector<v1::MsiMessage>(3, Message(0xfee01000, 0x41)));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status().message().find("interrupt remapping"), std::string::npos);
  EXPECT_EQ(device().vectors[1].data, 0x4021u);
}

TEST_F(LinuxHookTest, RerouteAtAStaleEpochIsRefused) {
  ASSERT_TRUE(hook_.Quiesce(kBdf, Fence{9, 0}, absl::Seconds(1)).ok());
  auto result =
      router_.Reroute(kBdf, Fence{7, 0}, std::vector<v1::MsiMessage>(3, Message(0xfee01000, 0x41)));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(device().vectors[0].data, 0x4023u);
}

TEST_F(LinuxHookTest, ARunningDeviceIsNotReroutedAndItsUnchangedTableNeedsNoRestore) {
  const std::vector<v1::MsiMessage> target(3, Message(0xfee01000, 0x41));
  auto rerouted = router_.Reroute(kBdf, Fence{2, 0}, target);
  EXPECT_EQ(rerouted.status().code(), absl::StatusCode::kFailedPrecondition) << rerouted.status();
  EXPECT_EQ(device().vectors[1].data, 0x4021u);

  // A source daemon that restarted before its quiesce rolls back with a
  // Restore of the messages the table still holds: done, nothing written.
  auto current = router_.ReadMessages(kBdf);
  ASSERT_TRUE(current.ok()) << current.status();
  size_t sent = module_.requests().size();
  ASSERT_TRUE(router_.Restore(kBdf, Fence{3, 0}, *current).ok());
  for (size_t i = sent; i < module_.requests().size(); ++i) {
    EXPECT_NE(module_.requests()[i].cmd, NH_CMD_REROUTE);
  }
  // Other messages are still not written into a running device's table.
  EXPECT_EQ(router_.Restore(kBdf, Fence{3, 0}, target).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(device().vectors[1].data, 0x4021u);
  EXPECT_EQ(hook_.Status(kBdf)->state, HookState::kRunning);
}

TEST_F(LinuxHookTest, ARollbackAtTheAbortEpochTakesTheQuiescedDeviceOver) {
  // Quiesced and rerouted at 6 by a source daemon that was killed; the one
  // that restarted rolled the record back to 7.
  ASSERT_TRUE(hook_.Quiesce(kBdf, Fence{6, 0}, absl::Seconds(1)).ok());
  auto previous =
      router_.Reroute(kBdf, Fence{6, 0}, std::vector<v1::MsiMessage>(3, Message(0xfee01000, 0x41)));
  ASSERT_TRUE(previous.ok()) << previous.status();

  absl::Status restored = router_.Restore(kBdf, Fence{7, 0}, *previous);
  ASSERT_TRUE(restored.ok()) << restored;
  EXPECT_EQ(device().vectors[0].data, 0x4023u);
  ASSERT_TRUE(hook_.Resume(kBdf, Fence{7, 0}).ok());
  EXPECT_EQ(hook_.Status(kBdf)->state, HookState::kRunning);
  EXPECT_EQ(hook_.Status(kBdf)->epoch, 7u);
  // The killed daemon's epoch is fenced off.
  EXPECT_EQ(hook_.Quiesce(kBdf, Fence{6, 0}, absl::Seconds(1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(LinuxHookTest, AReleasedDeviceIsReroutedOnlyAtItsReleaseEpoch) {
  ASSERT_TRUE(hook_.Quiesce(kBdf, Fence{4, 0}, absl::Seconds(1)).ok());
  ASSERT_TRUE(hook_.Release(kBdf, Fence{4, 0}).ok());
  auto moved =
      router_.Reroute(kBdf, Fence{5, 0}, std::vector<v1::MsiMessage>(3, Message(0xfee01000, 0x41)));
  EXPECT_EQ(moved.status().code(), absl::StatusCode::kFailedPrecondition) << moved.status();
  EXPECT_EQ(device().vectors[1].data, 0x4021u);
  EXPECT_EQ(hook_.Status(kBdf)->epoch, 4u);
}

TEST_F(LinuxHookTest, AReadBackThatDiffersFromTheWriteIsDataLoss) {
  device().misreport_read_back = true;
  ASSERT_TRUE(hook_.Quiesce(kBdf, Fence{1, 0}, absl::Seconds(1)).ok());
  auto result = router_.Reroute(
      kBdf, Fence{1, 0},
      {Message(0xfee01000, 0x41), Message(0xfee01000, 0x42), Message(0xfee01000, 0x43)});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss) << result.status();
}

TEST_F(LinuxHookTest, AsATargetAContractDeviceIsReservedThenAttachedWithTheSourcesRings) {
  EXPECT_EQ(hook_.Status(kSimNic)->state, HookState::kDetached);  // standby

  auto reserved = router_.ReserveTargetMessages(kSimNic, Fence{7, 0}, 2);
  ASSERT_TRUE(reserved.ok()) << reserved.status();
  ASSERT_EQ(reserved->size(), 2u);
  // Messages that reach this node: its APIC ID, the vectors it set aside.
  EXPECT_EQ((*reserved)[0].address(), 0xfee02000u);
  EXPECT_EQ((*reserved)[0].data(), 0x40u);
  EXPECT_EQ((*reserved)[1].data(), 0x41u);
  EXPECT_EQ(module_.requests().back().cmd, NH_CMD_RESERVE);
  EXPECT_EQ(module_.requests().back().epoch, 7u);
  EXPECT_EQ(module_.requests().back().vector_count, 2u);
  EXPECT_EQ(simnic().free_vectors, 14u);

  ASSERT_TRUE(hook_.Attach(kSimNic, Fence{7, 0}, {Ring(0, 100, 355, 90, 93)}).ok());
  ASSERT_TRUE(module_.requests().back().rings.has_value());
  ASSERT_EQ(simnic().rings.size(), 1u);
  EXPECT_EQ(simnic().rings[0], (hook::RingState{0, 100, 355, 90, 93}));
  auto status = hook_.Status(kSimNic);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->state, HookState::kRunning);
  EXPECT_EQ(status->epoch, 7u);
  // The table now holds the reserved messages, unmasked: the router reads them.
  auto messages = router_.ReadMessages(kSimNic);
  ASSERT_TRUE(messages.ok()) << messages.status();
  ASSERT_EQ(messages->size(), 2u);
  EXPECT_EQ((*messages)[1].address(), 0xfee02000u);
  EXPECT_EQ((*messages)[1].data(), 0x41u);
}

TEST_F(LinuxHookTest, ARetriedAttachOfAContractDeviceAtItsEpochSucceeds) {
  ASSERT_TRUE(router_.ReserveTargetMessages(kSimNic, Fence{7, 0}, 2).ok());
  ASSERT_TRUE(hook_.Attach(kSimNic, Fence{7, 0}, {Ring(0, 100, 355, 90, 93)}).ok());
  // The target daemon restarted while its ATTACH ran: it asks again.
  absl::Status retried = hook_.Attach(kSimNic, Fence{7, 0}, {Ring(0, 100, 355, 90, 93)});
  EXPECT_TRUE(retried.ok()) << retried;
  EXPECT_EQ(hook_.Status(kSimNic)->state, HookState::kRunning);
  // At another epoch the device running here is a contradiction.
  absl::Status other = hook_.Attach(kSimNic, Fence{8, 0}, {Ring(0, 100, 355, 90, 93)});
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition) << other;
  EXPECT_NE(other.message().find("runs on this node already"), std::string::npos) << other;
  EXPECT_EQ(hook_.Status(kSimNic)->epoch, 7u);
}

TEST_F(LinuxHookTest, AsASourceAContractDeviceHandsOverItsRingsAndGoesToStandby) {
  simnic().state = hook::DeviceState::kRunning;
  simnic().max_epoch = 3;
  simnic().rings = {{0, 12, 267, 40, 41}};

  auto result = hook_.Quiesce(kSimNic, Fence{4, 0}, absl::Seconds(1));
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->rings.size(), 1u);
  EXPECT_EQ(result->rings[0].queue(), 0u);
  EXPECT_EQ(result->rings[0].rx_next_to_clean(), 12u);
  EXPECT_EQ(result->rings[0].rx_next_to_use(), 267u);
  EXPECT_EQ(result->rings[0].tx_next_to_clean(), 40u);
  EXPECT_EQ(result->rings[0].tx_next_to_use(), 41u);

  // The target's messages go into the window's table, then the release.
  auto previous =
      router_.Reroute(kSimNic, Fence{4, 0}, {Message(0xfee02000, 0x40), Message(0xfee02000, 0x41)});
  ASSERT_TRUE(previous.ok()) << previous.status();
  EXPECT_EQ((*previous)[1].data(), 0x31u);
  ASSERT_TRUE(hook_.Release(kSimNic, Fence{4, 0}).ok());
  EXPECT_EQ(hook_.Status(kSimNic)->state, HookState::kDetached);
  EXPECT_EQ(hook_.Resume(kSimNic, Fence{4, 0}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(LinuxHookTest, AColdQuiesceHasNoRings) {
  auto result = hook_.Quiesce(kBdf, Fence{2, 0}, absl::Seconds(1));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->rings.empty());
}

TEST_F(LinuxHookTest, TooFewFreeVectorsIsResourceExhaustedAndReservesNothing) {
  simnic().free_vectors = 1;
  auto reserved = router_.ReserveTargetMessages(kSimNic, Fence{7, 0}, 2);
  EXPECT_EQ(reserved.status().code(), absl::StatusCode::kResourceExhausted) << reserved.status();
  EXPECT_NE(reserved.status().message().find("too few free vectors"), std::string::npos);
  EXPECT_TRUE(simnic().reserved.empty());
  EXPECT_EQ(simnic().free_vectors, 1u);
}

TEST_F(LinuxHookTest, AColdModeDeviceCannotBeReservedForAndTheErrorSaysWhy) {
  ASSERT_TRUE(hook_.Quiesce(kBdf, Fence{2, 0}, absl::Seconds(1)).ok());
  ASSERT_TRUE(hook_.Release(kBdf, Fence{2, 0}).ok());
  auto reserved = router_.ReserveTargetMessages(kBdf, Fence{3, 0}, 2);
  EXPECT_EQ(reserved.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(reserved.status().message().find("cold mode"), std::string::npos) << reserved.status();
  EXPECT_NE(reserved.status().message().find("no handover contract"), std::string::npos)
      << reserved.status();
}

TEST_F(LinuxHookTest, ADeviceThisNodeRunsCannotBeReservedFor) {
  simnic().state = hook::DeviceState::kRunning;
  auto reserved = router_.ReserveTargetMessages(kSimNic, Fence{7, 0}, 2);
  EXPECT_EQ(reserved.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(reserved.status().message().find("this node runs the device"), std::string::npos)
      << reserved.status();
}

TEST_F(LinuxHookTest, AReservationAtAStaleEpochIsRefused) {
  simnic().max_epoch = 9;
  EXPECT_EQ(router_.ReserveTargetMessages(kSimNic, Fence{8, 0}, 2).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(simnic().reserved.empty());
}

TEST_F(LinuxHookTest, ReleaseReservationGivesTheVectorsBackAndIsANoOpWithoutOne) {
  ASSERT_TRUE(router_.ReserveTargetMessages(kSimNic, Fence{7, 0}, 2).ok());
  EXPECT_EQ(simnic().free_vectors, 14u);
  ASSERT_TRUE(router_.ReleaseReservation(kSimNic, Fence{7, 0}).ok());
  EXPECT_EQ(module_.requests().back().cmd, NH_CMD_UNRESERVE);
  EXPECT_TRUE(simnic().reserved.empty());
  EXPECT_EQ(simnic().free_vectors, 16u);
  EXPECT_TRUE(router_.ReleaseReservation(kSimNic, Fence{7, 0}).ok());
  EXPECT_EQ(simnic().free_vectors, 16u);
}

}  // namespace
}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
