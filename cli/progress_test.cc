#include "cli/progress.h"

#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "cli/handover_text.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace cli {
namespace {

using google::protobuf::util::TimeUtil;

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

google::protobuf::Timestamp At(absl::Duration offset) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(kStart + offset));
}

// Adds a phase that started at `start`; `length` < 0 leaves it running.
void AddPhase(v1::Handover* h, v1::HandoverPhase phase, absl::Duration start,
              absl::Duration length, const std::string& detail = "") {
  v1::PhaseRecord* p = h->add_phases();
  p->set_phase(phase);
  *p->mutable_start_time() = At(start);
  if (length >= absl::ZeroDuration()) {
    *p->mutable_end_time() = At(start + length);
    *p->mutable_duration() = TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(length));
  }
  p->set_detail(detail);
  h->set_phase(phase);
}

v1::Handover Started() {
  v1::Handover h;
  h.set_handover_id("h1");
  h.set_bdf("0000:03:00.0");
  h.set_source_node("node0");
  h.set_target_node("node1");
  h.set_from_epoch(1);
  h.set_to_epoch(2);
  *h.mutable_create_time() = At(absl::ZeroDuration());
  return h;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST(ProgressPrinterTest, PrintsEachPhaseOnceWhenItCompletes) {
  std::ostringstream out;
  ProgressPrinter printer(out, /*live=*/false);
  v1::Handover h = Started();
  AddPhase(&h, v1::HANDOVER_PHASE_OFFERING, absl::ZeroDuration(), absl::Milliseconds(-1));
  printer.Update(h, kStart + absl::Milliseconds(1));
  EXPECT_EQ(out.str(), "") << "a running phase prints nothing without a terminal";

  // Offering ended when quiescing began (its record carries the duration).
  h.clear_phases();
  AddPhase(&h, v1::HANDOVER_PHASE_OFFERING, absl::ZeroDuration(), absl::Microseconds(2500));
  AddPhase(&h, v1::HANDOVER_PHASE_QUIESCING, absl::Microseconds(2500), absl::Milliseconds(-1),
           "accepted by node1");
  printer.Update(h, kStart + absl::Milliseconds(3));
  printer.Update(h, kStart + absl::Milliseconds(4));  // nothing new
  std::vector<std::string> lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 1u) << out.str();
  EXPECT_TRUE(absl::StrContains(lines[0], "offering")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "2.5ms")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "accepted by node1")) << lines[0];
  EXPECT_FALSE(absl::StrContains(out.str(), "\r")) << "no terminal control without a terminal";
  EXPECT_FALSE(absl::StrContains(out.str(), "\033"));
}

TEST(ProgressPrinterTest, LiveLineRedrawsRunningPhaseAndGivesWayToCompleteLines) {
  std::ostringstream out;
  ProgressPrinter printer(out, /*live=*/true);
  v1::Handover h = Started();
  AddPhase(&h, v1::HANDOVER_PHASE_OFFERING, absl::ZeroDuration(), absl::Milliseconds(-1));
  printer.Update(h, kStart + absl::Milliseconds(300));
  printer.Tick(kStart + absl::Milliseconds(1500));
  EXPECT_TRUE(absl::StrContains(out.str(), "\r\033[K  offering")) << out.str();
  EXPECT_TRUE(absl::StrContains(out.str(), "300.0ms")) << out.str();
  EXPECT_TRUE(absl::StrContains(out.str(), "1.50s")) << "elapsed time grows: " << out.str();
  out.str("");
  h.clear_phases();
  AddPhase(&h, v1::HANDOVER_PHASE_OFFERING, absl::ZeroDuration(), absl::Milliseconds(1600));
  AddPhase(&h, v1::HANDOVER_PHASE_QUIESCING, absl::Milliseconds(1600), absl::Milliseconds(-1));
  printer.Update(h, kStart + absl::Milliseconds(1700));
  // The status line is erased, the complete line printed, then the new status line.
  EXPECT_EQ(out.str().rfind("\r\033[K  offering", 0), 0u) << out.str();
  EXPECT_TRUE(absl::StrContains(out.str(), "1.60s\n")) << out.str();
  EXPECT_TRUE(absl::StrContains(out.str(), "\n\r\033[K  quiescing")) << out.str();
}

TEST(ProgressPrinterTest, SummaryOfACommittedHandover) {
  std::ostringstream out;
  ProgressPrinter printer(out, /*live=*/false);
  v1::Handover h = Started();
  AddPhase(&h, v1::HANDOVER_PHASE_OFFERING, absl::ZeroDuration(), absl::Milliseconds(2));
  AddPhase(&h, v1::HANDOVER_PHASE_COMMITTED, absl::Milliseconds(2), absl::Milliseconds(-1));
  h.set_done(true);
  *h.mutable_end_time() = At(absl::Milliseconds(48));
  *h.mutable_stats()->mutable_blackout() = TimeUtil::MillisecondsToDuration(12);
  h.mutable_stats()->set_drained_tx_packets(7);
  h.mutable_stats()->set_drained_rx_packets(3);
  printer.Update(h, kStart + absl::Milliseconds(50));
  printer.PrintSummary(h);
  const std::string text = out.str();
  EXPECT_TRUE(absl::StrContains(text, "committed: 0000:03:00.0 is now owned by node1")) << text;
  EXPECT_TRUE(absl::StrContains(text, "owner     node0 -> node1")) << text;
  EXPECT_TRUE(absl::StrContains(text, "epoch     1 -> 2")) << text;
  EXPECT_TRUE(absl::StrContains(text, "total     48.0ms")) << text;
  EXPECT_TRUE(absl::StrContains(text, "blackout  12.0ms")) << text;
  EXPECT_TRUE(absl::StrContains(text, "drained   7 TX + 3 RX packets")) << text;
  EXPECT_FALSE(absl::StrContains(text, "  committed ")) << "terminal phase only in the summary";
}

TEST(HandoverTextTest, ExitCodeForEachOutcome) {
  v1::Handover h = Started();
  h.set_done(true);
  h.set_phase(v1::HANDOVER_PHASE_COMMITTED);
  EXPECT_EQ(ExitCodeForHandover(h), kExitOk);
  h.set_phase(v1::HANDOVER_PHASE_ROLLED_BACK);
  h.mutable_error()->set_reason("CANCELLED");
  EXPECT_EQ(ExitCodeForHandover(h), kExitRolledBack);
  h.mutable_error()->set_reason("TARGET_REFUSED");
  EXPECT_EQ(ExitCodeForHandover(h), kExitRefused);
  h.mutable_error()->set_reason("HANDOVER_TIMEOUT");
  EXPECT_EQ(ExitCodeForHandover(h), kExitTimedOut);
  h.set_phase(v1::HANDOVER_PHASE_FAILED);
  EXPECT_EQ(ExitCodeForHandover(h), kExitNeedsRecovery);
}

TEST(HandoverTextTest, AdviceNamesTheRemedy) {
  v1::Handover h = Started();
  h.set_done(true);
  h.set_phase(v1::HANDOVER_PHASE_ROLLED_BACK);
  h.mutable_error()->set_reason("TARGET_REFUSED");
  h.mutable_error()->set_message("node1 refused (NO_VECTORS): reserve: no free vector");
  EXPECT_EQ(AdviceFor(h), "free interrupt vectors on node1's CPUs, or pick another node");
  h.mutable_error()->set_message("node1 refused (NO_DRIVER): no driver for 0000:03:00.0");
  EXPECT_EQ(AdviceFor(h), "load the NIC's driver on node1, or pick another node");
  // The structured reason wins over the text.
  h.mutable_error()->set_message("node1 refused: something");
  h.mutable_error()->set_refusal_reason(v1::REFUSAL_REASON_BUSY);
  EXPECT_TRUE(absl::StrContains(AdviceFor(h), "another handover of")) << AdviceFor(h);
  h.set_phase(v1::HANDOVER_PHASE_FAILED);
  EXPECT_TRUE(absl::StrContains(AdviceFor(h), "nicctl recover 0000:03:00.0 --decide"));
}

TEST(HandoverTextTest, DestinationGroupsVectorsByNode) {
  v1::InterruptLayout layout;
  for (uint32_t apic : {16u, 17u, 16u}) {
    auto* v = layout.add_vectors();
    v->mutable_route()->set_destination_apic_id(apic);
    v->mutable_route()->set_destination_node("node1");
  }
  EXPECT_EQ(DestinationText(layout), "node1 (APIC 16,17)");
  layout.add_vectors()->mutable_route()->set_remappable(true);
  EXPECT_EQ(DestinationText(layout), "node1 (APIC 16,17), remapped (IRTE)");
  EXPECT_EQ(DestinationText(v1::InterruptLayout()), "-");
  EXPECT_EQ(DurationText(absl::Microseconds(400)), "0.4ms");
  EXPECT_EQ(DurationText(absl::Seconds(125)), "2m5s");
  EXPECT_EQ(PhaseText(v1::HANDOVER_PHASE_HANDING_OFF), "handing-off");
}

}  // namespace
}  // namespace cli
}  // namespace nichandover
