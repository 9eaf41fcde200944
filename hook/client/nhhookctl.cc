// nhhookctl: drives the nichandover kernel hook from a shell.
//
//   nhhookctl list
//   nhhookctl status BDF
//   nhhookctl quiesce BDF EPOCH [TIMEOUT_MS]
//   nhhookctl resume|release|unreserve|reclaim BDF EPOCH
//   nhhookctl attach BDF EPOCH [QUEUE:RX_NTC:RX_NTU:TX_NTC:TX_NTU...]
//   nhhookctl reserve BDF EPOCH COUNT
//   nhhookctl read-msi BDF
//   nhhookctl reroute BDF EPOCH cpu CPU
//   nhhookctl reroute BDF EPOCH raw INDEX:ADDRESS:DATA...
//   nhhookctl arm BDF EPOCH HANDOFF_WORD ACTIVE_WORD
//   nhhookctl handoff BDF EPOCH EXPECTED_WORD DESIRED_WORD INDEX:ADDRESS:DATA...
//   nhhookctl events AFTER_SEQ [WAIT_MS]
//
// arm/handoff/events are the kernel commit path (docs/hook.md); record words
// are the machine's encoding (guest_abi.h for the simulated machine).
// Output is one "key=value" per line (vectors and rings: one line each; list:
// a "device id=..." line, then that device's keys), for scripts. A quiesce
// prints the ring state in the form attach takes.
// Exit status: 0 success, 1 the hook refused or failed (reason on stderr),
// 2 usage.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "hook/client/hook_client.h"

namespace nichandover {
namespace hook {
namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: nhhookctl list\n"
               "       nhhookctl status BDF\n"
               "       nhhookctl quiesce BDF EPOCH [TIMEOUT_MS]\n"
               "       nhhookctl resume|release|unreserve|reclaim BDF EPOCH\n"
               "       nhhookctl attach BDF EPOCH [QUEUE:RX_NTC:RX_NTU:TX_NTC:TX_NTU...]\n"
               "       nhhookctl reserve BDF EPOCH COUNT\n"
               "       nhhookctl read-msi BDF\n"
               "       nhhookctl reroute BDF EPOCH cpu CPU\n"
               "       nhhookctl reroute BDF EPOCH raw INDEX:ADDRESS:DATA...\n"
               "       nhhookctl arm BDF EPOCH HANDOFF_WORD ACTIVE_WORD\n"
               "       nhhookctl handoff BDF EPOCH EXPECTED_WORD DESIRED_WORD "
               "INDEX:ADDRESS:DATA...\n"
               "       nhhookctl events AFTER_SEQ [WAIT_MS]\n");
  return 2;
}

// Decimal or 0x-prefixed hexadecimal.
bool ParseNumber(const std::string& text, uint64_t* out) {
  if (text.rfind("0x", 0) == 0 || text.rfind("0X", 0) == 0) {
    return absl::SimpleHexAtoi(text.substr(2), out);
  }
  return absl::SimpleAtoi(text, out);
}

void PrintStatus(const DeviceStatus& s) {
  std::printf("state=%s\nepoch=%llu\nifname=%s\nifindex=%u\n", DeviceStateName(s.state),
              static_cast<unsigned long long>(s.epoch), s.ifname.c_str(), s.ifindex);
  std::printf("msi_mode=%s\n", s.msi_mode == MsiMode::kMsix  ? "msix"
                               : s.msi_mode == MsiMode::kMsi ? "msi"
                                                             : "none");
  const std::pair<const char*, uint64_t> counters[] = {
      {"held_xmits", s.held_xmits},
      {"xmits_while_quiesced", s.xmits_while_quiesced},
      {"polls_while_quiesced", s.polls_while_quiesced},
      {"drained_tx_bytes", s.drained_tx_bytes},
      {"drained_tx_packets", s.drained_tx_packets},
      {"drained_rx_packets", s.drained_rx_packets},
      {"bql_inflight", s.bql_inflight},
      {"napi_count", s.napi_count},
      {"vectors_masked", s.vectors_masked},
      {"quiesce_ns", s.quiesce_ns},
      {"kernel_commit", s.kernel_commit ? 1u : 0u},
      {"armed_epoch", s.armed_epoch},
      {"doorbells_ignored", s.doorbells_ignored},
  };
  for (const auto& [name, value] : counters) {
    std::printf("%s=%llu\n", name, static_cast<unsigned long long>(value));
  }
  std::printf("handover_mode=%s\nqueue_count=%u\n", HandoverModeName(s.handover_mode),
              s.queue_count);
  for (const RingState& r : s.rings) {
    std::printf("ring %u:%u:%u:%u:%u\n", r.queue, r.rx_next_to_clean, r.rx_next_to_use,
                r.tx_next_to_clean, r.tx_next_to_use);
  }
}

// "QUEUE:RX_NTC:RX_NTU:TX_NTC:TX_NTU", as PrintStatus writes a ring.
bool ParseRing(const std::string& text, RingState* out) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  uint64_t v[5];
  if (parts.size() != 5) return false;
  for (int i = 0; i < 5; ++i) {
    if (!ParseNumber(parts[i], &v[i]) || v[i] > UINT32_MAX) return false;
  }
  *out = {static_cast<uint32_t>(v[0]), static_cast<uint32_t>(v[1]), static_cast<uint32_t>(v[2]),
          static_cast<uint32_t>(v[3]), static_cast<uint32_t>(v[4])};
  return true;
}

void PrintListed(const ListedDevice& d) {
  std::printf("device id=%s vendor=0x%04x device=0x%04x driver=%s config_bytes=%zu\n",
              d.id.c_str(), d.vendor_id, d.device_id, d.driver.c_str(), d.config.size());
  PrintStatus(d.status);
}

void PrintVectors(const char* label, const std::vector<MsiVector>& vectors) {
  for (const MsiVector& v : vectors) {
    std::printf("%s index=%u irq=%u cpu=%u address=0x%llx data=0x%x masked=%d\n", label, v.index,
                v.irq, v.cpu, static_cast<unsigned long long>(v.address), v.data, v.masked ? 1 : 0);
  }
}

// NHHOOKCTL_TRACE=1: every netlink exchange in hex on stderr.
class TracingTransport : public Transport {
 public:
  explicit TracingTransport(std::unique_ptr<Transport> inner) : inner_(std::move(inner)) {}
  absl::StatusOr<Bytes> Exchange(const Bytes& request) override {
    Dump("request", request);
    auto answer = inner_->Exchange(request);
    if (answer.ok()) Dump("answer", *answer);
    return answer;
  }

 private:
  static void Dump(const char* what, const Bytes& bytes) {
    std::fprintf(stderr, "%s (%zu bytes):", what, bytes.size());
    for (size_t i = 0; i < bytes.size(); ++i) {
      std::fprintf(stderr, "%s%02x", i % 16 == 0 ? "\n  " : " ", bytes[i]);
    }
    std::fprintf(stderr, "\n");
  }
  std::unique_ptr<Transport> inner_;
};

// INDEX:ADDRESS:DATA from args[first] on.
bool ParseWrites(const std::vector<std::string>& args, size_t first, std::vector<MsiWrite>* out) {
  for (size_t i = first; i < args.size(); ++i) {
    std::vector<std::string> parts = absl::StrSplit(args[i], ':');
    uint64_t index, address, data;
    if (parts.size() != 3 || !ParseNumber(parts[0], &index) || !ParseNumber(parts[1], &address) ||
        !ParseNumber(parts[2], &data)) {
      return false;
    }
    out->push_back({static_cast<uint32_t>(index), address, static_cast<uint32_t>(data)});
  }
  return true;
}

const char* HandoffStageName(HandoffStage stage) {
  switch (stage) {
    case HandoffStage::kNothing: return "nothing";
    case HandoffStage::kQuiesced: return "quiesced";
    case HandoffStage::kRerouted: return "rerouted";
    case HandoffStage::kRingsWritten: return "rings-written";
    case HandoffStage::kHandedOff: return "handed-off";
    case HandoffStage::kDoorbellRung: return "doorbell-rung";
  }
  return "?";
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "nhhookctl: %s\n", status.ToString().c_str());
  return 1;
}

int Run(const std::vector<std::string>& args) {
  if (args.empty() || (args.size() < 2 && args[0] != "list")) return Usage();
  const std::string& cmd = args[0];
  const std::string bdf = args.size() > 1 ? args[1] : "";
  uint64_t epoch = 0;
  bool needs_epoch = cmd != "status" && cmd != "read-msi" && cmd != "list" && cmd != "events";
  if (needs_epoch && (args.size() < 3 || !ParseNumber(args[2], &epoch))) return Usage();
  // The tool speaks for no daemon: no operation id, the module fences by
  // the epoch alone.
  const Fence fence{epoch, 0};
  if (cmd == "list" && args.size() != 1) return Usage();

  auto transport = OpenGenericNetlink();
  if (!transport.ok()) return Fail(transport.status());
  std::unique_ptr<Transport> chosen = *std::move(transport);
  const char* trace = std::getenv("NHHOOKCTL_TRACE");
  if (trace != nullptr && trace[0] == '1') {
    chosen = std::make_unique<TracingTransport>(std::move(chosen));
  }
  HookClient client(std::move(chosen));

  absl::StatusOr<DeviceStatus> status;
  if (cmd == "status") {
    status = client.Status(bdf);
  } else if (cmd == "quiesce") {
    uint64_t timeout_ms = 2000;
    if (args.size() > 3 && !ParseNumber(args[3], &timeout_ms)) return Usage();
    status = client.Quiesce(bdf, fence, absl::Milliseconds(timeout_ms));
  } else if (cmd == "resume") {
    status = client.Resume(bdf, fence);
  } else if (cmd == "attach") {
    std::vector<RingState> rings;
    for (size_t i = 3; i < args.size(); ++i) {
      RingState ring;
      if (!ParseRing(args[i], &ring)) return Usage();
      rings.push_back(ring);
    }
    status = client.Attach(bdf, fence, rings);
  } else if (cmd == "release") {
    status = client.Release(bdf, fence);
  } else if (cmd == "unreserve") {
    status = client.Unreserve(bdf, fence);
  } else if (cmd == "reclaim") {
    status = client.Reclaim(bdf, fence);
  } else if (cmd == "list") {
    auto devices = client.List();
    if (!devices.ok()) return Fail(devices.status());
    for (const ListedDevice& d : *devices) PrintListed(d);
    return 0;
  } else if (cmd == "reserve") {
    uint64_t count;
    if (args.size() != 4 || !ParseNumber(args[3], &count) || count > UINT32_MAX) return Usage();
    auto vectors = client.Reserve(bdf, fence, static_cast<uint32_t>(count));
    if (!vectors.ok()) return Fail(vectors.status());
    PrintVectors("reserved", *vectors);
    return 0;
  } else if (cmd == "read-msi") {
    auto vectors = client.ReadMsi(bdf);
    if (!vectors.ok()) return Fail(vectors.status());
    PrintVectors("vector", *vectors);
    return 0;
  } else if (cmd == "reroute" && args.size() >= 5) {
    absl::StatusOr<RerouteResult> result;
    if (args[3] == "cpu") {
      uint64_t cpu;
      if (args.size() != 5 || !ParseNumber(args[4], &cpu)) return Usage();
      result = client.RerouteToCpu(bdf, fence, static_cast<uint32_t>(cpu));
    } else if (args[3] == "raw") {
      std::vector<MsiWrite> writes;
      if (!ParseWrites(args, 4, &writes)) return Usage();
      result = client.RerouteRaw(bdf, fence, writes);
    } else {
      return Usage();
    }
    if (!result.ok()) return Fail(result.status());
    PrintVectors("previous", result->previous);
    PrintVectors("vector", result->current);
    PrintStatus(result->status);
    return 0;
  } else if (cmd == "arm") {
    uint64_t handoff, active;
    if (args.size() != 5 || !ParseNumber(args[3], &handoff) || !ParseNumber(args[4], &active)) {
      return Usage();
    }
    status = client.Arm(bdf, fence, handoff, active);
  } else if (cmd == "handoff") {
    uint64_t expected, desired;
    std::vector<MsiWrite> writes;
    if (args.size() < 6 || !ParseNumber(args[3], &expected) || !ParseNumber(args[4], &desired) ||
        !ParseWrites(args, 5, &writes)) {
      return Usage();
    }
    auto reply = client.Handoff(bdf, fence, expected, desired, writes, absl::Seconds(2));
    if (!reply.ok()) return Fail(reply.status());
    std::printf("stage=%s\nrecord=0x%llx\n", HandoffStageName(reply->stage),
                static_cast<unsigned long long>(reply->record));
    PrintVectors("previous", reply->previous);
    PrintStatus(reply->status);
    return 0;
  } else if (cmd == "events") {
    uint64_t after, wait_ms = 0;
    if (args.size() > 3 || !ParseNumber(args[1], &after) ||
        (args.size() == 3 && !ParseNumber(args[2], &wait_ms))) {
      return Usage();
    }
    auto log = client.Events(after, absl::Milliseconds(wait_ms));
    if (!log.ok()) return Fail(log.status());
    for (const KernelEvent& e : log->events) {
      std::printf("event seq=%llu kind=%s dev=%s epoch=%llu record=0x%llx reason=%s\n",
                  static_cast<unsigned long long>(e.seq),
                  e.kind == KernelEvent::Kind::kCommitted ? "committed" : "not-committed",
                  e.dev.c_str(), static_cast<unsigned long long>(e.epoch),
                  static_cast<unsigned long long>(e.record), e.reason.c_str());
    }
    std::printf("newest_seq=%llu\n", static_cast<unsigned long long>(log->newest_seq));
    return 0;
  } else {
    return Usage();
  }
  if (!status.ok()) return Fail(status.status());
  PrintStatus(*status);
  return 0;
}

}  // namespace
}  // namespace hook
}  // namespace nichandover

int main(int argc, char** argv) {
  return nichandover::hook::Run(std::vector<std::string>(argv + 1, argv + argc));
}
