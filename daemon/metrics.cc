#include "daemon/metrics.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/version.h"

namespace nichandover {
namespace daemon {
namespace {

// Handover phases and blackouts: from sub-millisecond (the fake platform) to
// the default handover timeout of 30 s.
const std::vector<double> kPhaseBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,    0.25,  0.5,    1,     2.5,  5,     10, 30};
// An fsync: tens of microseconds on tmpfs to a second on a busy disk.
const std::vector<double> kSyncBuckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                          0.005,   0.01,   0.025,   0.05,   0.1,   0.25, 1};

const char* Role(bool is_source) { return is_source ? "source" : "target"; }

const char* Outcome(v1::HandoverPhase phase) {
  switch (phase) {
    case v1::HANDOVER_PHASE_COMMITTED:
      return "committed";
    case v1::HANDOVER_PHASE_ROLLED_BACK:
      return "rolled_back";
    default:
      return "failed";
  }
}

// Which platform interface a call goes to (daemon/platform/platform.h).
const char* Interface(protocol::OpKind kind) {
  using protocol::OpKind;
  switch (kind) {
    case OpKind::kReadRecord:
    case OpKind::kCompareAndSwap:
    case OpKind::kWriteHandoffRings:
    case OpKind::kReadHandoffRings:
      return "arbiter";
    case OpKind::kQuiesce:
    case OpKind::kResume:
    case OpKind::kAttach:
    case OpKind::kRelease:
      return "hook";
    case OpKind::kArm:
    case OpKind::kHandOff:
      return "fast_path";
    default:
      return "router";
  }
}

const char* NicStateLabel(NicMetricState state) {
  switch (state) {
    case NicMetricState::kRunningHere:
      return "running_here";
    case NicMetricState::kHeldForMaintenance:
      return "held_for_maintenance";
    case NicMetricState::kRunningElsewhere:
      return "running_elsewhere";
    case NicMetricState::kInHandover:
      return "in_handover";
    case NicMetricState::kNoRecord:
      return "no_record";
  }
  return "unknown";
}

bool Unreachable(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kDeadlineExceeded;
}

std::string CodeLabel(const absl::Status& status) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(status.code()));
}

// Label values may hold any UTF-8; backslash, quote and newline are escaped.
std::string EscapeLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrFormat("%.0f", v);
  return absl::StrFormat("%.9g", v);
}

std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "" : ",", names[i], "=\"", EscapeLabel(values[i]), "\"");
  }
  if (!extra.empty()) absl::StrAppend(&out, out.empty() ? "" : ",", extra);
  return out.empty() ? "" : absl::StrCat("{", out, "}");
}

}  // namespace

std::string Metrics::PhaseLabel(v1::HandoverPhase phase) {
  return absl::AsciiStrToLower(
      absl::StripPrefix(v1::HandoverPhase_Name(phase), "HANDOVER_PHASE_"));
}

Metrics::Family* Metrics::Add(std::string name, std::string help, Type type,
                              std::vector<std::string> labels,
                              const std::vector<double>* buckets) {
  auto family = std::make_unique<Family>();
  family->name = std::move(name);
  family->help = std::move(help);
  family->type = type;
  family->label_names = std::move(labels);
  family->buckets = buckets;
  // A metric without labels exists from the start, at 0.
  if (family->label_names.empty()) {
    if (type == Type::kHistogram) {
      family->histograms[{}].counts.assign(buckets->size(), 0);
    } else {
      family->values[{}] = 0;
    }
  }
  families_.push_back(std::move(family));
  return families_.back().get();
}

Metrics::Metrics(std::string node_id, const std::vector<std::string>& peers, NicReader nics)
    : node_id_(std::move(node_id)), read_nics_(std::move(nics)) {
  build_info_ = Add("nichandover_build_info",
                    "Always 1; the labels say which nichandoverd serves these metrics.",
                    Type::kGauge, {"version", "api_version", "node"});
  build_info_->values[{kVersion, kApiVersion, node_id_}] = 1;
  handovers_ = Add("nichandover_handovers_total",
                   "Handovers that reached a terminal phase, by this node's role and the outcome.",
                   Type::kCounter, {"role", "outcome"});
  for (bool source : {true, false}) {
    for (auto phase : {v1::HANDOVER_PHASE_COMMITTED, v1::HANDOVER_PHASE_ROLLED_BACK,
                       v1::HANDOVER_PHASE_FAILED}) {
      handovers_->values[{Role(source), Outcome(phase)}] = 0;
    }
  }
  handover_duration_ =
      Add("nichandover_handover_duration_seconds",
          "Time from creation to the terminal phase of finished handovers, as this node saw it.",
          Type::kHistogram, {"role", "outcome"}, &kPhaseBuckets);
  phase_duration_ = Add("nichandover_handover_phase_duration_seconds",
                        "Time finished handovers spent in each phase, as this node saw it.",
                        Type::kHistogram, {"role", "phase"}, &kPhaseBuckets);
  blackout_ = Add("nichandover_handover_blackout_seconds",
                  "Committed handovers' blackout as the source sees it: from its gates closing "
                  "until the target runs the NIC (an upper bound of the data path's pause).",
                  Type::kHistogram, {}, &kPhaseBuckets);
  journal_sync_ = Add("nichandover_journal_sync_duration_seconds",
                      "Appending and fsyncing a batch of journal records.", Type::kHistogram, {},
                      &kSyncBuckets);
  journal_errors_ = Add("nichandover_journal_sync_errors_total",
                        "Journal appends or fsyncs that failed (the daemon stops on one).",
                        Type::kCounter, {});
  platform_calls_ = Add("nichandover_platform_call_duration_seconds",
                        "Calls into the platform: the kernel hook, the interrupt router and the "
                        "ownership-record arbiter.",
                        Type::kHistogram, {"interface", "call"}, &kPhaseBuckets);
  platform_errors_ = Add("nichandover_platform_call_errors_total",
                         "Platform calls that returned an error, by status code.", Type::kCounter,
                         {"interface", "call", "code"});
  peer_up_ = Add("nichandover_peer_up",
                 "1 when the peer answered the last message or probe, 0 when it could not be "
                 "reached; absent until the first contact.",
                 Type::kGauge, {"peer"});
  peer_messages_ = Add("nichandover_peer_message_duration_seconds",
                       "Protocol messages to a peer, from sending to its answer.", Type::kHistogram,
                       {"peer"}, &kPhaseBuckets);
  peer_errors_ = Add("nichandover_peer_message_errors_total",
                     "Protocol messages to a peer that failed, by status code.", Type::kCounter,
                     {"peer", "code"});
  for (const auto& peer : peers) peer_messages_->histograms[{peer}];
  kernel_events_ = Add("nichandover_kernel_events_total",
                       "Events this node's kernel reported on the kernel commit path, by kind "
                       "(committed: it took a NIC alone; not_committed: a doorbell it ignored).",
                       Type::kCounter, {"kind"});
  nics_ = Add("nichandover_nics", "NICs this node sees, by state.", Type::kGauge, {"state"});
  nic_read_errors_ = Add("nichandover_nic_read_errors_total",
                         "Scrapes that could not read the NICs' state from the platform.",
                         Type::kCounter, {});
}

void Metrics::Observe(Family* family, const Labels& labels, absl::Duration value) {
  Histogram& h = family->histograms[labels];
  if (h.counts.empty()) h.counts.assign(family->buckets->size(), 0);
  const double seconds = absl::ToDoubleSeconds(value);
  for (size_t i = 0; i < family->buckets->size(); ++i) {
    if (seconds <= (*family->buckets)[i]) {
      ++h.counts[i];
      break;
    }
  }
  h.sum += seconds;
  ++h.count;
}

void Metrics::PeerReached(const std::string& peer, const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  peer_up_->values[{peer}] = Unreachable(status) ? 0 : 1;
}

void Metrics::HandoverFinished(const v1::Handover& handover, bool is_source) {
  auto seconds = [](const google::protobuf::Duration& d) {
    return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  };
  std::lock_guard<std::mutex> lock(mu_);
  const Labels role_outcome = {Role(is_source), Outcome(handover.phase())};
  handovers_->values[role_outcome] += 1;
  if (handover.has_create_time() && handover.has_end_time()) {
    const auto& c = handover.create_time();
    const auto& e = handover.end_time();
    Observe(handover_duration_, role_outcome,
            absl::Seconds(e.seconds() - c.seconds()) + absl::Nanoseconds(e.nanos() - c.nanos()));
  }
  for (const auto& phase : handover.phases()) {
    if (!phase.has_duration()) continue;
    Observe(phase_duration_, {Role(is_source), PhaseLabel(phase.phase())},
            seconds(phase.duration()));
  }
  if (is_source && handover.phase() == v1::HANDOVER_PHASE_COMMITTED &&
      handover.stats().has_blackout()) {
    Observe(blackout_, {}, seconds(handover.stats().blackout()));
  }
}

void Metrics::JournalSynced(absl::Duration latency, const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  Observe(journal_sync_, {}, latency);
  if (!status.ok()) journal_errors_->values[{}] += 1;
}

void Metrics::PlatformCallDone(protocol::OpKind kind, absl::Duration latency,
                               const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  Observe(platform_calls_, {Interface(kind), protocol::OpKindName(kind)}, latency);
  if (!status.ok()) {
    platform_errors_->values[{Interface(kind), protocol::OpKindName(kind), CodeLabel(status)}] += 1;
  }
}

void Metrics::KernelEventStepped(const platform::KernelEvent& event) {
  std::lock_guard<std::mutex> lock(mu_);
  kernel_events_->values[{event.kind == platform::KernelEvent::Kind::kCommitted
                              ? "committed"
                              : "not_committed"}] += 1;
}

void Metrics::PeerCallDone(const std::string& peer, absl::Duration latency,
                           const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  Observe(peer_messages_, {peer}, latency);
  if (!status.ok()) peer_errors_->values[{peer, CodeLabel(status)}] += 1;
  peer_up_->values[{peer}] = Unreachable(status) ? 0 : 1;
}

void Metrics::RenderFamily(const Family& family, std::string* out) {
  static const char* const kTypes[] = {"counter", "gauge", "histogram"};
  absl::StrAppend(out, "# HELP ", family.name, " ", family.help, "\n");
  absl::StrAppend(out, "# TYPE ", family.name, " ", kTypes[static_cast<int>(family.type)], "\n");
  if (family.type != Type::kHistogram) {
    for (const auto& [labels, value] : family.values) {
      absl::StrAppend(out, family.name, LabelSet(family.label_names, labels), " ",
                      FormatValue(value), "\n");
    }
    return;
  }
  for (const auto& [labels, h] : family.histograms) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < family.buckets->size(); ++i) {
      if (!h.counts.empty()) cumulative += h.counts[i];
      std::string le = absl::StrCat("le=\"", FormatValue((*family.buckets)[i]), "\"");
      absl::StrAppend(out, family.name, "_bucket", LabelSet(family.label_names, labels, le), " ",
                      cumulative, "\n");
    }
    absl::StrAppend(out, family.name, "_bucket",
                    LabelSet(family.label_names, labels, "le=\"+Inf\""), " ", h.count, "\n");
    absl::StrAppend(out, family.name, "_sum", LabelSet(family.label_names, labels), " ",
                    FormatValue(h.sum), "\n");
    absl::StrAppend(out, family.name, "_count", LabelSet(family.label_names, labels), " ",
                    h.count, "\n");
  }
}

std::string Metrics::Render() {
  std::vector<NicMetricState> nics;
  absl::Status read = read_nics_ ? read_nics_(&nics) : absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu_);
  if (read.ok()) {
    // Every state is listed, 0 included, so a NIC leaving one shows.
    for (auto state : {NicMetricState::kRunningHere, NicMetricState::kHeldForMaintenance,
                       NicMetricState::kRunningElsewhere, NicMetricState::kInHandover,
                       NicMetricState::kNoRecord}) {
      nics_->values[{NicStateLabel(state)}] = 0;
    }
    for (auto state : nics) nics_->values[{NicStateLabel(state)}] += 1;
  } else {
    // Stale numbers would lie: drop the gauge until the platform answers.
    nics_->values.clear();
    nic_read_errors_->values[{}] += 1;
  }
  std::string out;
  for (const auto& family : families_) RenderFamily(*family, &out);
  return out;
}

}  // namespace daemon
}  // namespace nichandover
