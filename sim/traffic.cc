#include "sim/traffic.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sim/doorbell.h"
#include "sim/packet_queue.h"

namespace nichandover {
namespace sim {
namespace {

constexpr uint64_t kMaxBurst = 4096;

// Frames the kernels dropped for a full socket buffer, since the machine started.
uint64_t SocketDrops(Machine& machine) {
  uint64_t drops = 0;
  for (int i = 0; i < machine.node_count(); ++i) {
    drops += machine.node(i).counters.rx_socket_drops.load();
  }
  return drops;
}

std::string DirectionJson(const DirectionStats& s, const Machine& machine) {
  std::string changes;
  for (const NodeChange& c : s.node_changes) {
    if (!changes.empty()) changes += ",";
    absl::StrAppendFormat(&changes,
                          "{\"from\":\"%s\",\"to\":\"%s\",\"last_seq_before\":%d,"
                          "\"first_seq_after\":%d,\"last_before_ns\":%d,\"first_after_ns\":%d,"
                          "\"blackout_us\":%.1f}",
                          machine.node_id(c.from_node), machine.node_id(c.to_node),
                          c.last_seq_before, c.first_seq_after, c.last_before_ns,
                          c.first_after_ns, c.blackout_ns() / 1000.0);
  }
  return absl::StrFormat(
      "{\"sent\":%d,\"refused\":%d,\"wire_drops\":%d,\"received\":%d,\"unique\":%d,"
      "\"duplicated\":%d,\"out_of_order\":%d,\"lost\":%d,\"stale\":%d,\"handovers\":[%s]}",
      s.sent, s.refused, s.wire_drops, s.received, s.unique, s.duplicated, s.out_of_order, s.lost,
      s.stale, changes);
}

}  // namespace

std::string TrafficReportJson(const TrafficReport& report, const Machine& machine) {
  Machine& m = const_cast<Machine&>(machine);
  const DeviceRegisters& regs = m.nic().regs;
  uint64_t socket_drops = SocketDrops(m);
  return absl::StrFormat(
      "{\"duration_s\":%.3f,\"mode\":\"%s\",\"inbound\":%s,\"outbound\":%s,"
      "\"device\":{\"rx_missed\":%d,\"rx_packets\":%d,\"tx_packets\":%d,"
      "\"tx_foreign_frames\":%d},\"rx_socket_drops\":%d}\n",
      report.duration_ns / 1e9, report.echo ? "echo" : "streams",
      DirectionJson(report.inbound, machine), DirectionJson(report.outbound, machine),
      regs.rx_missed.load(), regs.rx_packets.load(), regs.tx_packets.load(),
      regs.tx_foreign_frames.load(), socket_drops);
}

Traffic::Traffic(Machine& machine, const TrafficOptions& options)
    : machine_(machine), options_(options) {}

Traffic::~Traffic() { Stop(); }

void Traffic::Start() {
  start_ns_ = MonotonicNanos();
  rx_missed_at_start_ = machine_.nic().regs.rx_missed.load();
  socket_drops_at_start_ = SocketDrops(machine_);
  sending_ = true;
  sink_ = std::thread([this] { SinkLoop(); });
  generator_ = std::thread([this] { GeneratorLoop(); });
}

void Traffic::StopSending() {
  sending_ = false;
  if (generator_.joinable()) generator_.join();
}

void Traffic::Stop() {
  StopSending();
  stop_ = true;
  DoorbellRing(machine_.layout().sink_bell);
  if (sink_.joinable()) sink_.join();
}

void Traffic::GeneratorLoop() {
  MachineLayout& m = machine_.layout();
  PacketQueue wire(m.wire_in);
  PacketQueue socket(m.app_tx);
  uint64_t in_seq = 0, out_seq = 0, out_due_done = 0;
  while (sending_.load(std::memory_order_relaxed)) {
    int64_t now = MonotonicNanos();
    double elapsed = (now - start_ns_) / 1e9;
    uint64_t in_due = static_cast<uint64_t>(options_.inbound_pps * elapsed);
    uint64_t out_due =
        options_.echo ? 0 : static_cast<uint64_t>(options_.outbound_pps * elapsed);
    uint64_t in_n = std::min(in_due - std::min(in_due, in_seq), kMaxBurst);
    uint64_t out_n = std::min(out_due - std::min(out_due, out_due_done), kMaxBurst);
    uint64_t wire_drops = 0, refused = 0, out_sent = 0;
    for (uint64_t i = 0; i < in_n; ++i) {
      WirePacket p;
      p.seq = in_seq++;
      p.sent_ns = now;
      p.direction = Direction::kInbound;
      if (!wire.TryPush(p)) ++wire_drops;
    }
    for (uint64_t i = 0; i < out_n; ++i) {
      WirePacket p;
      p.seq = out_seq;
      p.sent_ns = now;
      p.direction = Direction::kOutbound;
      if (socket.TryPush(p)) {
        ++out_seq;
        ++out_sent;
      } else {
        ++refused;  // EAGAIN: the application retries with the same number later
      }
    }
    out_due_done += out_n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      inbound_.sent = in_seq;
      inbound_.wire_drops += wire_drops;
      outbound_.sent = out_seq;
      outbound_.refused += refused;
    }
    if (in_n > 0) DoorbellRing(m.device_bell);
    if (out_sent > 0) {
      int32_t running = m.nic.running_node.load(std::memory_order_relaxed);
      if (running >= 0 && running < machine_.node_count()) DoorbellRing(m.nodes[running].bell);
    }
    absl::SleepFor(options_.tick);
  }
}

void Traffic::Record(const WirePacket& packet, int64_t now, DirectionStats& stats,
                     Tracker& tracker) {
  // Sequence numbers start at 0 in every run: an earlier run's packet would
  // pass for one of this run's.
  if (packet.sent_ns < start_ns_) {
    ++stats.stale;
    return;
  }
  ++stats.received;
  if (packet.seq >= tracker.seen.size()) {
    tracker.seen.resize(std::max<size_t>(packet.seq + 1, tracker.seen.size() * 2), 0);
  }
  if (tracker.seen[packet.seq]) {
    ++stats.duplicated;
  } else {
    tracker.seen[packet.seq] = 1;
    ++stats.unique;
    if (tracker.any && packet.seq < tracker.max_seq) ++stats.out_of_order;
  }
  if (tracker.any && packet.node != tracker.last_node) {
    NodeChange change;
    change.from_node = tracker.last_node;
    change.to_node = packet.node;
    change.last_seq_before = tracker.last_seq;
    change.first_seq_after = packet.seq;
    change.last_before_ns = tracker.last_arrival_ns;
    change.first_after_ns = now;
    stats.node_changes.push_back(change);
  }
  tracker.any = true;
  tracker.max_seq = std::max(tracker.max_seq, packet.seq);
  tracker.last_node = packet.node;
  tracker.last_seq = packet.seq;
  tracker.last_arrival_ns = now;
}

void Traffic::SinkLoop() {
  MachineLayout& m = machine_.layout();
  PacketQueue delivered(m.app_rx);
  PacketQueue wire(m.wire_out);
  while (!stop_.load(std::memory_order_relaxed)) {
    uint32_t snapshot = DoorbellSnapshot(m.sink_bell);
    int n = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      int64_t now = MonotonicNanos();
      while (auto p = delivered.TryPop()) {
        Record(*p, now, inbound_, inbound_tracker_);
        ++n;
      }
      while (auto p = wire.TryPop()) {
        Record(*p, now, outbound_, outbound_tracker_);
        ++n;
      }
    }
    if (n == 0) DoorbellWait(m.sink_bell, snapshot, absl::Milliseconds(1));
  }
}

bool Traffic::WaitDelivered(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      // The machine's counters run across traffic runs: this run's drops.
      uint64_t rx_missed = machine_.nic().regs.rx_missed.load() - rx_missed_at_start_;
      uint64_t socket_drops = SocketDrops(machine_) - socket_drops_at_start_;
      uint64_t inbound_accounted =
          inbound_.unique + inbound_.wire_drops + rx_missed + socket_drops;
      uint64_t outbound_sent = options_.echo ? inbound_.sent : outbound_.sent;
      if (options_.echo) {
        // An echo exists only for a packet the node received.
        if (outbound_.unique + inbound_.wire_drops + rx_missed >= outbound_sent) {
          return true;
        }
      } else if (inbound_accounted >= inbound_.sent && outbound_.unique >= outbound_sent) {
        return true;
      }
    }
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
}

TrafficReport Traffic::Report() const {
  std::lock_guard<std::mutex> lock(mu_);
  TrafficReport report;
  report.inbound = inbound_;
  report.outbound = outbound_;
  report.echo = options_.echo;
  if (options_.echo) report.outbound.sent = inbound_.sent;  // the round trip
  report.inbound.lost = inbound_.sent - std::min(inbound_.sent, inbound_.unique);
  report.outbound.lost =
      report.outbound.sent - std::min(report.outbound.sent, outbound_.unique);
  report.duration_ns = MonotonicNanos() - start_ns_;
  return report;
}

}  // namespace sim
}  // namespace nichandover
