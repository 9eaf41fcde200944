#include "daemon/metrics.h"

#include <string>

#include "daemon/config.h"
#include "daemon/handover_log.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace daemon {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

google::protobuf::Duration Millis(int ms) {
  google::protobuf::Duration d;
  d.set_nanos(ms * 1000000);
  return d;
}

TEST(MetricsTest, CountsAFinishedHandoverWithItsPhasesAndBlackout) {
  Metrics metrics("node0", {"node1"}, nullptr);
  v1::Handover h;
  h.set_phase(v1::HANDOVER_PHASE_COMMITTED);
  h.set_done(true);
  auto* quiesce = h.add_phases();
  quiesce->set_phase(v1::HANDOVER_PHASE_QUIESCING);
  *quiesce->mutable_duration() = Millis(3);
  *h.mutable_stats()->mutable_blackout() = Millis(20);
  metrics.HandoverFinished(h, /*is_source=*/true);
  const std::string text = metrics.Render();
  EXPECT_TRUE(Has(text, "nichandover_handovers_total{role=\"source\",outcome=\"committed\"} 1"))
      << text;
  EXPECT_TRUE(Has(text, "nichandover_handovers_total{role=\"target\",outcome=\"committed\"} 0"));
  // Buckets are cumulative: 3 ms is above 2.5 ms and within 5 ms.
  EXPECT_TRUE(Has(text, "nichandover_handover_phase_duration_seconds_bucket{role=\"source\","
                        "phase=\"quiescing\",le=\"0.0025\"} 0"));
  EXPECT_TRUE(Has(text, "nichandover_handover_phase_duration_seconds_bucket{role=\"source\","
                        "phase=\"quiescing\",le=\"0.005\"} 1"));
  EXPECT_TRUE(Has(text, "nichandover_handover_phase_duration_seconds_bucket{role=\"source\","
                        "phase=\"quiescing\",le=\"30\"} 1"));
  EXPECT_TRUE(Has(text, "nichandover_handover_blackout_seconds_count 1"));
  EXPECT_TRUE(Has(text, "nichandover_handover_blackout_seconds_sum 0.02"));
  EXPECT_TRUE(Has(text, "nichandover_handover_blackout_seconds_bucket{le=\"+Inf\"} 1"));
}

TEST(MetricsTest, CountsKernelEventsAndFastPathCalls) {
  Metrics metrics("node0", {"node1"}, nullptr);
  platform::KernelEvent event;
  event.kind = platform::KernelEvent::Kind::kCommitted;
  metrics.KernelEventStepped(event);
  metrics.KernelEventStepped(event);
  event.kind = platform::KernelEvent::Kind::kNotCommitted;
  metrics.KernelEventStepped(event);
  metrics.PlatformCallDone(protocol::OpKind::kHandOff, absl::Milliseconds(1),
                           absl::DeadlineExceededError("drain"));
  std::string text = metrics.Render();
  EXPECT_TRUE(Has(text, "nichandover_kernel_events_total{kind=\"committed\"} 2")) << text;
  EXPECT_TRUE(Has(text, "nichandover_kernel_events_total{kind=\"not_committed\"} 1")) << text;
  EXPECT_TRUE(Has(text, "nichandover_platform_call_errors_total{interface=\"fast_path\","
                        "call=\"hand-off\",code=\"deadline_exceeded\"} 1"))
      << text;
}

TEST(MetricsTest, PlatformErrorsAndPeerReachability) {
  Metrics metrics("node0", {"node1"}, nullptr);
  metrics.PlatformCallDone(protocol::OpKind::kQuiesce, absl::Milliseconds(1),
                           absl::DeadlineExceededError("driver stuck"));
  metrics.PeerCallDone("node1", absl::Milliseconds(1), absl::UnavailableError("down"));
  std::string text = metrics.Render();
  EXPECT_TRUE(Has(text, "nichandover_platform_call_errors_total{interface=\"hook\","
                        "call=\"quiesce\",code=\"deadline_exceeded\"} 1"))
      << text;
  EXPECT_TRUE(Has(text, "nichandover_peer_up{peer=\"node1\"} 0"));
  // A peer that answers with an error is reachable.
  metrics.PeerReached("node1", absl::UnauthenticatedError("wrong secret"));
  EXPECT_TRUE(Has(metrics.Render(), "nichandover_peer_up{peer=\"node1\"} 1"));
}

TEST(MetricsTest, NicGaugeListsEveryStateAndDropsOutWhenUnreadable) {
  bool fail = false;
  Metrics metrics("node0", {}, [&](std::vector<NicMetricState>* out) {
    if (fail) return absl::UnavailableError("kernel gone");
    *out = {NicMetricState::kRunningHere, NicMetricState::kRunningHere,
            NicMetricState::kInHandover};
    return absl::OkStatus();
  });
  std::string text = metrics.Render();
  EXPECT_TRUE(Has(text, "nichandover_nics{state=\"running_here\"} 2")) << text;
  EXPECT_TRUE(Has(text, "nichandover_nics{state=\"in_handover\"} 1"));
  EXPECT_TRUE(Has(text, "nichandover_nics{state=\"no_record\"} 0"));
  fail = true;
  text = metrics.Render();
  EXPECT_EQ(text.find("nichandover_nics{"), std::string::npos) << text;
  EXPECT_TRUE(Has(text, "nichandover_nic_read_errors_total 1"));
}

TEST(MetricsTest, EscapesLabelValues) {
  Metrics metrics("node0", {}, nullptr);
  metrics.PeerReached("a\"b\\c\nd", absl::OkStatus());
  EXPECT_TRUE(Has(metrics.Render(), "nichandover_peer_up{peer=\"a\\\"b\\\\c\\nd\"} 1"));
}

TEST(HandoverLogTest, DescribesTheOutcomeWithIdAndError) {
  v1::Handover h;
  h.set_handover_id("node0-1-2");
  h.set_bdf("0000:03:00.0");
  h.set_source_node("node0");
  h.set_target_node("node1");
  h.set_phase(v1::HANDOVER_PHASE_ROLLED_BACK);
  h.mutable_create_time()->set_seconds(100);
  h.mutable_end_time()->set_seconds(101);
  h.mutable_end_time()->set_nanos(500000000);
  h.mutable_error()->set_message("target refused: no driver");
  EXPECT_EQ(HandoverLog::Describe(h, /*is_source=*/true),
            "handover node0-1-2: 0000:03:00.0 node0 -> node1 rolled_back in 1.5s: target "
            "refused: no driver [source]");
}

constexpr char kBase[] = R"pb(
  node_id: "node1"
  cpus { cpu: 0 apic_id: 4 }
  platform { fake { state_path: "/tmp/m" } }
)pb";

absl::Status Check(const std::string& extra) {
  return ParseConfig(std::string(kBase) + extra, "m.conf").status();
}

TEST(MetricsConfigTest, LoopbackByDefault) {
  EXPECT_TRUE(Check("metrics_listen: \"127.0.0.1:9474\"").ok());
  EXPECT_TRUE(Check("metrics_listen: \"[::1]:0\"").ok());
  absl::Status remote = Check("metrics_listen: \"0.0.0.0:9474\"");
  EXPECT_EQ(remote.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(remote.message().find("metrics_allow_remote"), std::string::npos) << remote;
  EXPECT_TRUE(Check("metrics_listen: \"0.0.0.0:9474\" metrics_allow_remote: true").ok());
}

TEST(MetricsConfigTest, RefusesWhatCannotWork) {
  for (const char* bad : {"metrics_listen: \"unix:/run/m.sock\"", "metrics_listen: \"nope\"",
                          "metrics_allow_remote: true",
                          "listen: \"127.0.0.1:7401\" metrics_listen: \"127.0.0.1:7401\"",
                          "peer_listen: \"127.0.0.1:7401\" metrics_listen: \"127.0.0.1:7401\""}) {
    absl::Status s = Check(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("metrics_"), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace daemon
}  // namespace nichandover
