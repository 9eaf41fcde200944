// Logs each finished handover in one line. Under systemd, whose journal
// reads the daemon's stderr, the line goes to the journal directly with the
// handover in structured fields (NICHANDOVER_HANDOVER_ID, _NIC, _SOURCE,
// _TARGET, _OUTCOME, _ROLE), so
//   journalctl -u nichandoverd NICHANDOVER_HANDOVER_ID=node0-17...-3
// finds it.
#ifndef NICHANDOVER_DAEMON_HANDOVER_LOG_H_
#define NICHANDOVER_DAEMON_HANDOVER_LOG_H_

#include <string>

#include "daemon/engine/observer.h"

namespace nichandover {
namespace daemon {

class HandoverLog : public engine::EngineObserver {
 public:
  // Whether stderr is the journal's stream (systemd sets JOURNAL_STREAM).
  HandoverLog();

  // "handover ID: NIC source -> target committed in 12.3ms (blackout 4.1ms)"
  static std::string Describe(const v1::Handover& handover, bool is_source);

  void HandoverFinished(const v1::Handover& handover, bool is_source) override;
  void JournalSynced(absl::Duration, const absl::Status&) override {}
  void PlatformCallDone(protocol::OpKind, absl::Duration, const absl::Status&) override {}
  void PeerCallDone(const std::string&, absl::Duration, const absl::Status&) override {}

 private:
  bool to_journal_ = false;
};

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_HANDOVER_LOG_H_
