#include "daemon/handover_log.h"

#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/metrics.h"

namespace nichandover {
namespace daemon {
namespace {

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Duration Between(const google::protobuf::Timestamp& a, const google::protobuf::Timestamp& b) {
  return absl::Seconds(b.seconds() - a.seconds()) + absl::Nanoseconds(b.nanos() - a.nanos());
}

}  // namespace

HandoverLog::HandoverLog() {
  // JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected stderr
  // to; a process that redirected stderr elsewhere keeps the variable.
  const char* stream = std::getenv("JOURNAL_STREAM");
  struct stat st;
  if (stream != nullptr && ::fstat(2, &st) == 0) {
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(stream, "%llu:%llu", &dev, &ino) == 2) {
      to_journal_ = dev == static_cast<unsigned long long>(st.st_dev) &&
                    ino == static_cast<unsigned long long>(st.st_ino);
    }
  }
}

std::string HandoverLog::Describe(const v1::Handover& h, bool is_source) {
  std::string out = absl::StrCat("handover ", h.handover_id(), ": ", h.bdf(), " ", h.source_node(),
                                 " -> ", h.target_node(), " ", Metrics::PhaseLabel(h.phase()));
  if (h.has_create_time() && h.has_end_time()) {
    absl::StrAppend(&out, " in ", absl::FormatDuration(Between(h.create_time(), h.end_time())));
  }
  if (is_source && h.stats().has_blackout()) {
    absl::StrAppend(&out, " (blackout ", absl::FormatDuration(FromProto(h.stats().blackout())),
                    ")");
  }
  if (h.has_error() && !h.error().message().empty()) {
    absl::StrAppend(&out, ": ", h.error().message());
  }
  absl::StrAppend(&out, " [", is_source ? "source" : "target", "]");
  return out;
}

void HandoverLog::HandoverFinished(const v1::Handover& h, bool is_source) {
  const std::string message = Describe(h, is_source);
  const bool ok = h.phase() == v1::HANDOVER_PHASE_COMMITTED;
  if (!to_journal_) {
    if (ok) {
      NH_LOG(INFO) << message;
    } else {
      NH_LOG(WARNING) << message;
    }
    return;
  }
  sd_journal_send("MESSAGE=%s", message.c_str(), "PRIORITY=%d", ok ? LOG_INFO : LOG_WARNING,
                  "SYSLOG_IDENTIFIER=nichandoverd", "NICHANDOVER_HANDOVER_ID=%s",
                  h.handover_id().c_str(), "NICHANDOVER_NIC=%s", h.bdf().c_str(),
                  "NICHANDOVER_SOURCE=%s", h.source_node().c_str(), "NICHANDOVER_TARGET=%s",
                  h.target_node().c_str(), "NICHANDOVER_OUTCOME=%s",
                  Metrics::PhaseLabel(h.phase()).c_str(), "NICHANDOVER_ROLE=%s",
                  is_source ? "source" : "target", nullptr);
}

}  // namespace daemon
}  // namespace nichandover
