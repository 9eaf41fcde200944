// Unit tests of HandoverMachine's API contract; the protocol's behaviour is
// covered by the scenario scripts (scenario_test) and random_fault_test.
#include "daemon/protocol/handover_machine.h"

#include <algorithm>
#include <string>
#include <vector>

#include "daemon/protocol/records.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "daemon/protocol/testing/world.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace protocol {
namespace {

TEST(NormalizeBdfTest, AcceptsFullShortAndResourceForms) {
  EXPECT_EQ(*NormalizeBdf("0000:03:00.0", "nic"), "0000:03:00.0");
  EXPECT_EQ(*NormalizeBdf("03:00.1", "nic"), "0000:03:00.1");
  EXPECT_EQ(*NormalizeBdf("nics/0000:3B:1F.7", "nic"), "0000:3b:1f.7");
}

TEST(NormalizeBdfTest, RefusesMalformedNamingTheField) {
  for (const char* bad : {"", "03:00", "0000:03:00", "0000:03:20.0", "0000:03:00.8", "zz:00.0",
                          "0000:003:00.0", "eth0"}) {
    absl::StatusOr<std::string> bdf = NormalizeBdf(bad, "nic");
    ASSERT_FALSE(bdf.ok()) << bad;
    EXPECT_EQ(bdf.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(bdf.status().message().rfind("nic: ", 0), 0u) << bdf.status();
  }
}

MachineConfig OneNicConfig() {
  MachineConfig config;
  config.node_id = "n1";
  config.peers = {"n2"};
  platform::NicInfo nic;
  nic.bdf = "0000:03:00.0";
  nic.driver = "e1000e";
  nic.interrupts.set_mode(v1::INTERRUPT_MODE_MSIX);
  nic.interrupts.set_vectors_enabled(2);
  config.nics.push_back(nic);
  return config;
}

// Drives the source side by hand, as the daemon would, and checks the
// persistence rule on the Readys themselves: the Offer leaves in the same
// Ready as the SOURCE_STARTED record that the daemon must sync first, and
// the answer to CreateHandover never precedes it.
// The first journal format carried the handover and messages as `bytes`
// fields holding their serialized form; the same wire bytes must read as
// today's embedded messages, or an upgraded daemon would lose its journal.
TEST(JournalRecordTest, FirstFormatStillReads) {
  v1::Handover handover;
  handover.set_handover_id("h1");
  handover.set_bdf("0000:03:00.0");
  handover.set_to_epoch(2);
  v1::MsiMessage message;
  message.set_address(0xfee01000);
  message.set_data(0x41);
  std::string old_bytes;
  {
    google::protobuf::io::StringOutputStream raw(&old_bytes);
    google::protobuf::io::CodedOutputStream out(&raw);
    out.WriteTag(1 << 3 | 0);  // kind, varint
    out.WriteVarint32(JournalRecord::SOURCE_STARTED);
    const std::string h = handover.SerializeAsString();
    out.WriteTag(2 << 3 | 2);  // handover, bytes
    out.WriteVarint32(h.size());
    out.WriteString(h);
    const std::string m = message.SerializeAsString();
    out.WriteTag(3 << 3 | 2);  // messages, repeated bytes
    out.WriteVarint32(m.size());
    out.WriteString(m);
  }
  JournalRecord record;
  ASSERT_TRUE(record.ParseFromString(old_bytes));
  auto unpacked = UnpackJournalRecord(record);
  ASSERT_TRUE(unpacked.ok()) << unpacked.status();
  EXPECT_EQ(unpacked->kind, JournalRecord::SOURCE_STARTED);
  EXPECT_EQ(unpacked->handover.handover_id(), "h1");
  EXPECT_EQ(unpacked->handover.to_epoch(), 2u);
  ASSERT_EQ(unpacked->messages.size(), 1u);
  EXPECT_EQ(unpacked->messages[0].data(), 0x41u);
  // And today's records are those same bytes.
  EXPECT_EQ(MakeJournalRecord(JournalRecord::SOURCE_STARTED, handover, {message})
                .SerializeAsString(),
            old_bytes);
}

TEST(HandoverMachineTest, StartRecordTravelsWithTheOfferItAnnounces) {
  HandoverMachine machine(OneNicConfig());
  RecoverEvent recover;
  recover.records["0000:03:00.0"] = ActiveRecord("n1", 7);
  machine.Step(recover);
  EXPECT_TRUE(machine.TakeReady().ops.empty());

  machine.Step(CreateHandoverEvent{1, "h1", "r1", "0000:03:00.0", "n2", absl::ZeroDuration()});
  Ready read = machine.TakeReady();
  ASSERT_EQ(read.ops.size(), 1u);
  EXPECT_EQ(read.ops[0].kind, OpKind::kReadRecord);
  EXPECT_TRUE(read.records.empty());
  EXPECT_TRUE(read.answers.empty());

  OpResult record;
  record.record = ActiveRecord("n1", 7);
  machine.Step(OpDoneEvent{read.ops[0].op_id, record});
  Ready messages = machine.TakeReady();
  ASSERT_EQ(messages.ops.size(), 1u);
  EXPECT_EQ(messages.ops[0].kind, OpKind::kReadMessages);

  OpResult routing;
  routing.messages.resize(2);
  machine.Step(OpDoneEvent{messages.ops[0].op_id, routing});
  Ready offer = machine.TakeReady();
  ASSERT_EQ(offer.records.size(), 1u);
  EXPECT_EQ(offer.records[0].kind(), JournalRecord::SOURCE_STARTED);
  ASSERT_EQ(offer.sends.size(), 1u);
  const auto* request = std::get_if<v1::OfferRequest>(&offer.sends[0].body);
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(request->new_epoch(), 8u);
  EXPECT_EQ(request->vector_count(), 2u);
  ASSERT_EQ(offer.answers.size(), 1u);
  ASSERT_TRUE(offer.answers[0].handover.ok());
  EXPECT_EQ(offer.answers[0].handover->from_epoch(), 7u);
  EXPECT_EQ(offer.answers[0].handover->to_epoch(), 8u);

  // A late answer to an op the machine no longer waits for changes nothing.
  machine.Step(OpDoneEvent{read.ops[0].op_id, record});
  EXPECT_FALSE(machine.HasReady());
}

// A target restarted with a reservation in its journal answers Query from it
// and, the record still PREPARING, keeps waiting for the Commit.
TEST(HandoverMachineTest, RecoveredReservationAnswersQuery) {
  MachineConfig config = OneNicConfig();
  config.node_id = "n2";
  config.peers = {"n1"};
  HandoverMachine machine(config);
  v1::Handover reserved;
  reserved.set_handover_id("h1");
  reserved.set_bdf("0000:03:00.0");
  reserved.set_source_node("n1");
  reserved.set_target_node("n2");
  reserved.set_from_epoch(4);
  reserved.set_to_epoch(5);
  reserved.set_phase(v1::HANDOVER_PHASE_OFFERING);
  RecoverEvent recover;
  recover.journal.push_back(
      MakeJournalRecord(JournalRecord::TARGET_RESERVED, reserved, {v1::MsiMessage()}));
  recover.records["0000:03:00.0"] = PreparingRecord("n1", "n2", 5);
  machine.Step(recover);
  Ready ready = machine.TakeReady();
  EXPECT_TRUE(ready.ops.empty());
  ASSERT_EQ(ready.timers.size(), 1u);  // waiting for the Commit

  v1::QueryHandoverRequest query;
  query.set_handover_id("h1");
  machine.Step(PeerRequestEvent{9, "n1", query});
  ready = machine.TakeReady();
  ASSERT_EQ(ready.peer_answers.size(), 1u);
  EXPECT_EQ(ready.peer_answers[0].call_token, 9u);
  const auto& answer = std::get<v1::QueryHandoverResponse>(ready.peer_answers[0].body);
  EXPECT_EQ(answer.state(), v1::PEER_HANDOVER_STATE_RESERVED);
  EXPECT_EQ(answer.ownership().state(), v1::OWNERSHIP_STATE_PREPARING);

  query.set_handover_id("h404");
  machine.Step(PeerRequestEvent{10, "n1", query});
  ready = machine.TakeReady();
  ASSERT_EQ(ready.peer_answers.size(), 1u);
  EXPECT_EQ(std::get<v1::QueryHandoverResponse>(ready.peer_answers[0].body).state(),
            v1::PEER_HANDOVER_STATE_UNKNOWN);
  EXPECT_EQ(machine.LiveHandovers().size(), 1u);
}

TEST(HandoverMachineTest, RefusesEventsBeforeRecover) {
  EXPECT_DEATH(
      {
        HandoverMachine machine(OneNicConfig());
        machine.Step(TimerFiredEvent{1});
      },
      "first event must be Recover");
}


// The blackout runs from the source's quiesce to the target's attach. No
// journal record (and so no fsync) may sit on that path: everything the
// protocol needs there is in the shared record and the handoff rings.
TEST(HandoverMachineTest, NoJournalSyncBetweenQuiesceAndAttach) {
  std::vector<std::string> lines;
  testing::World world([&](const std::string& line) { lines.push_back(line); });
  world.AddNode("n1");
  world.AddNode("n2");
  testing::NicSpec nic;
  nic.owner = "n1";
  world.AddNic(nic);
  world.StartAll();
  world.Create("n1", "h1", "r1", nic.bdf, "n2");
  world.Stabilize();
  ASSERT_TRUE(world.CheckSettled().empty());
  ASSERT_EQ(world.RecordOwner(nic.bdf), "n2");
  size_t quiesce = lines.size(), attach = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind("n1: quiesce ", 0) == 0) quiesce = i;
    if (lines[i].rfind("n2: attach ", 0) == 0) attach = i;
  }
  ASSERT_LT(quiesce, attach);
  for (size_t i = quiesce; i < attach; ++i) {
    EXPECT_EQ(lines[i].find(": persist "), std::string::npos) << lines[i];
  }
}

// On the kernel commit path the blackout holds no daemon at all: from the
// source kernel's HandOff to the target kernel's commit and attach, no
// journal record, no peer message and no daemon platform call.
TEST(HandoverMachineTest, KernelPathBlackoutHoldsNoDaemonStep) {
  std::vector<std::string> lines;
  testing::World world([&](const std::string& line) { lines.push_back(line); });
  world.AddNode("n1");
  world.AddNode("n2");
  world.SetKernelCommit("n1", true);
  world.SetKernelCommit("n2", true);
  testing::NicSpec nic;
  nic.owner = "n1";
  world.AddNic(nic);
  world.StartAll();
  world.Create("n1", "h1", "r1", nic.bdf, "n2");
  world.Deliver({"", "", "Offer", -1});
  world.Deliver({"", "", "Accept", -1});
  ASSERT_EQ(world.DeliverDoorbells("n2", -1), 1);
  world.Stabilize();
  ASSERT_TRUE(world.CheckSettled().empty());
  ASSERT_EQ(world.RecordOwner(nic.bdf), "n2");
  size_t handoff = lines.size(), commit = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind("n1: hand-off ", 0) == 0) handoff = i;
    if (lines[i].rfind("n2: kernel-commit ", 0) == 0) commit = i;
  }
  ASSERT_LT(handoff, commit);
  EXPECT_EQ(lines[commit].substr(lines[commit].size() - 6), " => ok");
  for (size_t i = handoff + 1; i < commit; ++i) {
    EXPECT_EQ(lines[i].find(": persist "), std::string::npos) << lines[i];
    EXPECT_EQ(lines[i].find(" -> n2: "), std::string::npos) << lines[i];
    EXPECT_EQ(lines[i].rfind("n2: ", 0), std::string::npos) << lines[i];
  }
  EXPECT_TRUE(world.violations().empty());
}

// A KernelEvent is a hint: one no live handover waits for, or one saying
// the kernel did not commit, changes nothing and asks for nothing.
TEST(HandoverMachineTest, KernelEventWithoutAWaitingHandoverIsOnlyLogged) {
  MachineConfig config = OneNicConfig();
  config.kernel_commit = true;
  HandoverMachine machine(config);
  RecoverEvent recover;
  recover.records["0000:03:00.0"] = ActiveRecord("n1", 7);
  machine.Step(recover);
  machine.TakeReady();
  for (auto kind : {platform::KernelEvent::Kind::kCommitted,
                    platform::KernelEvent::Kind::kNotCommitted}) {
    platform::KernelEvent event;
    event.kind = kind;
    event.bdf = "0000:03:00.0";
    event.epoch = 8;
    event.record = ActiveRecord("n1", 7);
    machine.Step(KernelEventEvent{event});
    EXPECT_FALSE(machine.HasReady());
  }
  EXPECT_TRUE(machine.LiveHandovers().empty());
}

// A commit path the request cannot have is refused before anything starts.
TEST(HandoverMachineTest, CreateRefusesACommitPathItCannotTake) {
  HandoverMachine machine(OneNicConfig());  // kernel_commit off
  RecoverEvent recover;
  recover.records["0000:03:00.0"] = ActiveRecord("n1", 7);
  machine.Step(recover);
  machine.TakeReady();
  CreateHandoverEvent kernel{1, "h1", "r1", "0000:03:00.0", "n2", absl::ZeroDuration()};
  kernel.commit_path = v1::COMMIT_PATH_KERNEL;
  machine.Step(kernel);
  CreateHandoverEvent unknown{2, "h2", "r2", "0000:03:00.0", "n2", absl::ZeroDuration()};
  unknown.commit_path = static_cast<v1::CommitPath>(7);
  machine.Step(unknown);
  Ready ready = machine.TakeReady();
  EXPECT_TRUE(ready.ops.empty());
  EXPECT_TRUE(ready.records.empty());
  ASSERT_EQ(ready.answers.size(), 2u);
  EXPECT_EQ(ready.answers[0].handover.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ready.answers[1].handover.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(machine.ListHandovers("").empty());
}

// A compacted journal (one record per handover) restores the same history
// and the same open handovers as the full one.
TEST(HandoverMachineTest, CompactedJournalRestoresTheSameState) {
  std::vector<std::string> lines;
  testing::World world([&](const std::string& line) { lines.push_back(line); });
  world.AddNode("n1");
  world.AddNode("n2");
  testing::NicSpec nic;
  nic.owner = "n1";
  world.AddNic(nic);
  world.StartAll();
  for (int i = 0; i < 4; ++i) {
    std::string owner = world.RecordOwner(nic.bdf);
    world.Create(owner, "h" + std::to_string(i), "r" + std::to_string(i), nic.bdf,
                 owner == "n1" ? "n2" : "n1");
    world.Stabilize();
  }
  // One more left open on the target side (Commit not delivered yet).
  world.Create("n1", "h9", "r9", nic.bdf, "n2");
  world.Deliver({"", "", "Offer", -1});
  world.Deliver({"", "", "Accept", -1});

  auto history = [&](const std::string& node) {
    lines.clear();
    world.PrintHandovers(node);
    return lines;
  };
  std::vector<std::string> before = history("n2");
  world.CompactJournal("n2");
  world.Crash("n2");
  world.Restart("n2");
  std::vector<std::string> after = history("n2");
  ASSERT_EQ(before.size(), 5u);
  ASSERT_EQ(after.size(), before.size());
  // The open one (newest first) was recovered and, the record being in
  // HANDOFF, committed by the restarted target alone; the finished ones are
  // exactly as they were.
  EXPECT_EQ(before[0], "n2: h9 n1->n2 OFFERING epoch 5->6");
  EXPECT_EQ(after[0], "n2: h9 n1->n2 COMMITTED epoch 5->6");
  for (size_t i = 1; i < before.size(); ++i) EXPECT_EQ(after[i], before[i]);
  world.Stabilize();
  world.FireTimers("n1", absl::Seconds(1));
  world.Stabilize();
  EXPECT_TRUE(world.CheckSettled().empty());
  EXPECT_EQ(world.RecordOwner(nic.bdf), "n2");
  EXPECT_TRUE(world.violations().empty());
}

// The history keeps each NIC's newest history_per_nic finished handovers:
// a busy NIC does not push a quiet NIC's last handover out, and a restart
// from a journal written with a larger limit trims it the same way.
TEST(HandoverMachineTest, HistoryKeepsTheNewestFinishedHandoversPerNic) {
  std::vector<std::string> lines;
  testing::World world([&](const std::string& line) { lines.push_back(line); });
  world.SetHistoryPerNic(3);
  world.AddNode("n1");
  world.AddNode("n2");
  testing::NicSpec busy;
  busy.bdf = "0000:03:00.0";
  busy.owner = "n1";
  testing::NicSpec quiet;
  quiet.bdf = "0000:04:00.0";
  quiet.owner = "n1";
  world.AddNic(busy);
  world.AddNic(quiet);
  world.StartAll();
  auto hand_over = [&](const testing::NicSpec& nic, const std::string& id) {
    const std::string owner = world.RecordOwner(nic.bdf);
    world.Create(owner, id, "r-" + id, nic.bdf, owner == "n1" ? "n2" : "n1");
    world.Stabilize();
  };
  auto history = [&](const std::string& node) {
    lines.clear();
    world.PrintHandovers(node);
    std::vector<std::string> ids;
    for (const std::string& line : lines) {
      // "n1: ID n1->n2 COMMITTED epoch 1->2"
      const size_t start = line.find(": ") + 2;
      ids.push_back(line.substr(start, line.find(' ', start) - start));
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  };

  hand_over(quiet, "q0");
  for (int i = 0; i < 8; ++i) hand_over(busy, "b" + std::to_string(i));
  const std::vector<std::string> kept = {"b5", "b6", "b7", "q0"};
  EXPECT_EQ(history("n1"), kept);
  EXPECT_EQ(history("n2"), kept);

  // A handover still running is never trimmed, however many finish beside it.
  world.Create("n2", "q1", "r-q1", quiet.bdf, "n1");
  world.Deliver({"", "", "Offer", -1});
  for (int i = 8; i < 12; ++i) hand_over(busy, "b" + std::to_string(i));
  EXPECT_EQ(history("n1"), (std::vector<std::string>{"b10", "b11", "b9", "q0", "q1"}));
  world.Stabilize();
  world.FireTimers("n1", absl::Seconds(1));
  world.FireTimers("n2", absl::Seconds(1));
  world.Stabilize();

  // Restarted with a smaller limit, the journal's longer history is trimmed.
  world.SetHistoryPerNic(1);
  world.Crash("n2");
  world.Restart("n2");
  EXPECT_EQ(history("n2"), (std::vector<std::string>{"b11", "q1"}));
  EXPECT_TRUE(world.CheckSettled().empty());
  EXPECT_TRUE(world.violations().empty());
}

}  // namespace
}  // namespace protocol
}  // namespace nichandover
