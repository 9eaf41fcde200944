#include "sim/traffic.h"

#include <sys/prctl.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sim/doorbell.h"
#include "sim/packet_queue.h"
#include "sim/realtime.h"

namespace nichandover {
namespace sim {
namespace {

constexpr uint64_t kMaxBurst = 4096;

std::string DirectionJson(const DirectionStats& s, const Machine& machine, bool with_changes) {
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
      "\"duplicated\":%d,\"out_of_order\":%d,\"lost\":%d,\"stale\":%d%s}",
      s.sent, s.refused, s.wire_drops, s.received, s.unique, s.duplicated, s.out_of_order, s.lost,
      s.stale, with_changes ? absl::StrCat(",\"handovers\":[", changes, "]") : "");
}

std::string NicJson(const NicTrafficReport& nic, const Machine& machine) {
  std::string queues;
  for (const FlowReport& flow : nic.queues) {
    if (!queues.empty()) queues += ",";
    absl::StrAppend(&queues, "{\"inbound\":", DirectionJson(flow.inbound, machine, false),
                    ",\"outbound\":", DirectionJson(flow.outbound, machine, false), "}");
  }
  return absl::StrFormat(
      "{\"bdf\":\"%s\",\"inbound\":%s,\"outbound\":%s,\"rx_missed\":%d,\"rx_socket_drops\":%d,"
      "\"max_blackout_us\":%.1f,\"queues\":[%s]}",
      nic.bdf, DirectionJson(nic.inbound, machine, true), DirectionJson(nic.outbound, machine, true),
      nic.rx_missed, nic.rx_socket_drops, nic.max_blackout_ns() / 1000.0, queues);
}

}  // namespace

void Accumulate(const DirectionStats& from, DirectionStats& into) {
  into.sent += from.sent;
  into.refused += from.refused;
  into.wire_drops += from.wire_drops;
  into.received += from.received;
  into.unique += from.unique;
  into.duplicated += from.duplicated;
  into.out_of_order += from.out_of_order;
  into.lost += from.lost;
  into.stale += from.stale;
  into.node_changes.insert(into.node_changes.end(), from.node_changes.begin(),
                           from.node_changes.end());
}

int64_t NicTrafficReport::max_blackout_ns() const {
  int64_t longest = 0;
  for (const DirectionStats* d : {&inbound, &outbound}) {
    for (const NodeChange& c : d->node_changes) longest = std::max(longest, c.blackout_ns());
  }
  return longest;
}

std::string TrafficReportJson(const TrafficReport& report, const Machine& machine) {
  Machine& m = const_cast<Machine&>(machine);
  uint64_t rx_missed = 0, rx_packets = 0, tx_packets = 0, foreign = 0, socket_drops = 0;
  for (int i = 0; i < m.nic_count(); ++i) {
    const DeviceRegisters& regs = m.nic(i).regs;
    rx_missed += regs.rx_missed.load();
    rx_packets += regs.rx_packets.load();
    tx_packets += regs.tx_packets.load();
    foreign += regs.tx_foreign_frames.load();
  }
  for (int i = 0; i < m.node_count(); ++i) {
    socket_drops += m.node(i).counters.rx_socket_drops.load();
  }
  std::string nics;
  for (const NicTrafficReport& nic : report.nics) {
    if (!nics.empty()) nics += ",";
    nics += NicJson(nic, machine);
  }
  return absl::StrFormat(
      "{\"duration_s\":%.3f,\"mode\":\"%s\",\"inbound\":%s,\"outbound\":%s,"
      "\"device\":{\"rx_missed\":%d,\"rx_packets\":%d,\"tx_packets\":%d,"
      "\"tx_foreign_frames\":%d},\"rx_socket_drops\":%d,\"nics\":[%s]}\n",
      report.duration_ns / 1e9, report.echo ? "echo" : "streams",
      DirectionJson(report.inbound, machine, true), DirectionJson(report.outbound, machine, true),
      rx_missed, rx_packets, tx_packets, foreign, socket_drops, nics);
}

Traffic::Traffic(Machine& machine, const TrafficOptions& options)
    : machine_(machine), options_(options) {
  nics_.resize(machine.nic_count());
  for (NicFlows& nic : nics_) nic.flows.resize(machine.queue_count());
}

Traffic::~Traffic() { Stop(); }

uint64_t Traffic::RxMissed(int nic) const {
  return machine_.nic(nic).regs.rx_missed.load();
}

uint64_t Traffic::SocketDrops(int nic) const {
  uint64_t drops = 0;
  for (uint32_t q = 0; q < machine_.queue_count(); ++q) {
    drops += machine_.nic(nic).regs.queue_stats[q].rx_socket_drops.load();
  }
  return drops;
}

void Traffic::Start() {
  start_ns_ = MonotonicNanos();
  for (int i = 0; i < machine_.nic_count(); ++i) {
    nics_[i].rx_missed_at_start = RxMissed(i);
    nics_[i].socket_drops_at_start = SocketDrops(i);
  }
  sending_ = true;
  sink_ = std::thread([this] { SinkLoop(); });
  generator_ = std::thread([this] { GeneratorLoop(); });
}

absl::Status Traffic::SetRealtimePriority(int priority) {
  if (absl::Status s = sim::SetRealtimePriority(generator_.native_handle(), priority,
                                                "the traffic generator");
      !s.ok()) {
    return s;
  }
  return sim::SetRealtimePriority(sink_.native_handle(), priority, "the traffic sink");
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

namespace {

// How many of the packets due to go now a paced sender sends: what came due
// since the last round, but no more than 1 ms of them (at least 64). A
// generator kept off the CPU for longer skips the rest, as a paced
// application does, rather than send it in one burst: 50 ms of backlog at
// 20,000 packets/s is a burst larger than a 1024-descriptor ring, a loss
// that would be the generator's, not the NIC's. `done` counts what was sent
// or skipped; a skipped packet gets no sequence number and is not sent.
uint64_t TakeDue(uint64_t due, double pps, uint64_t& done) {
  const uint64_t backlog = due - std::min(due, done);
  const uint64_t cap = std::min(kMaxBurst, std::max<uint64_t>(64, static_cast<uint64_t>(pps / 1000)));
  if (backlog > cap) done += backlog - cap;
  return std::min(backlog, cap);
}

}  // namespace

void Traffic::GeneratorLoop() {
  MachineLayout& m = machine_.layout();
  const int nic_count = machine_.nic_count();
  const uint32_t queues = machine_.queue_count();
  // Per NIC: packets due so far; per flow: the next sequence number.
  struct Sender {
    uint64_t in_done = 0, out_done = 0;
    std::vector<uint64_t> in_seq, out_seq;
  };
  std::vector<Sender> senders(nic_count);
  for (Sender& s : senders) {
    s.in_seq.assign(queues, 0);
    s.out_seq.assign(queues, 0);
  }
  std::vector<bool> wake(machine_.node_count());
  // Ticks on an absolute schedule with 1 us of timer slack (the default
  // 50 us would stretch a short tick by half again): how long the sink sees
  // a flow pause is quantized by this period, so it must be the period asked
  // for, not the period plus the work plus the wake-up.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  const int64_t tick_ns = absl::ToInt64Nanoseconds(options_.tick);
  int64_t next_tick_ns = MonotonicNanos();
  while (sending_.load(std::memory_order_relaxed)) {
    int64_t now = MonotonicNanos();
    double elapsed = (now - start_ns_) / 1e9;
    uint64_t in_due = static_cast<uint64_t>(options_.inbound_pps * elapsed);
    uint64_t out_due =
        options_.echo ? 0 : static_cast<uint64_t>(options_.outbound_pps * elapsed);
    bool any_inbound = false;
    std::fill(wake.begin(), wake.end(), false);
    for (int nic = 0; nic < nic_count; ++nic) {
      Sender& s = senders[nic];
      PacketQueue wire(machine_.wire_in(nic));
      const uint64_t in_n = TakeDue(in_due, options_.inbound_pps, s.in_done);
      const uint64_t out_n = TakeDue(out_due, options_.outbound_pps, s.out_done);
      // Round robin over the flows: packet k of the NIC is flow k % queues.
      std::vector<uint64_t> wire_drops(queues, 0), refused(queues, 0);
      bool out_sent = false;
      for (uint64_t i = 0; i < in_n; ++i) {
        const uint32_t flow = static_cast<uint32_t>((s.in_done + i) % queues);
        WirePacket p;
        p.seq = s.in_seq[flow]++;
        p.sent_ns = now;
        p.direction = Direction::kInbound;
        p.flow = flow;
        if (!wire.TryPush(p)) ++wire_drops[flow];
      }
      for (uint64_t i = 0; i < out_n; ++i) {
        const uint32_t flow = static_cast<uint32_t>((s.out_done + i) % queues);
        PacketQueue socket(machine_.app_tx(nic, flow));
        WirePacket p;
        p.seq = s.out_seq[flow];
        p.sent_ns = now;
        p.direction = Direction::kOutbound;
        p.flow = flow;
        if (socket.TryPush(p)) {
          ++s.out_seq[flow];
          out_sent = true;
        } else {
          ++refused[flow];  // EAGAIN: the application retries with the same number later
        }
      }
      s.in_done += in_n;
      s.out_done += out_n;
      any_inbound |= in_n > 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (uint32_t q = 0; q < queues; ++q) {
          Flow& flow = nics_[nic].flows[q];
          flow.inbound.sent = s.in_seq[q];
          flow.inbound.wire_drops += wire_drops[q];
          flow.outbound.sent = s.out_seq[q];
          flow.outbound.refused += refused[q];
        }
      }
      if (out_sent) {
        int32_t running = machine_.nic(nic).running_node.load(std::memory_order_relaxed);
        if (running >= 0 && running < machine_.node_count()) wake[running] = true;
      }
    }
    if (any_inbound) DoorbellRing(m.device_bell);
    for (int node = 0; node < machine_.node_count(); ++node) {
      if (wake[node]) DoorbellRing(m.nodes[node].bell);
    }
    next_tick_ns += tick_ns;
    const int64_t after_work_ns = MonotonicNanos();
    // Late by more than a tick (descheduled): start the schedule again
    // from now rather than firing the missed ticks back to back (what is
    // due is counted from the elapsed time either way).
    if (next_tick_ns <= after_work_ns) next_tick_ns = after_work_ns + tick_ns;
    struct timespec at;
    at.tv_sec = next_tick_ns / 1000000000;
    at.tv_nsec = next_tick_ns % 1000000000;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) == EINTR) {
    }
  }
}

bool Traffic::SeenSet::TestAndSet(uint64_t seq) {
  const uint64_t chunk = seq / kBitsPerChunk;
  if (chunk >= chunks_.size()) chunks_.resize(chunk + 1);
  if (chunks_[chunk] == nullptr) {
    chunks_[chunk] = std::make_unique<uint64_t[]>(kBitsPerChunk / 64);  // zeroed
  }
  uint64_t& word = chunks_[chunk][(seq % kBitsPerChunk) / 64];
  const uint64_t bit = uint64_t{1} << (seq % 64);
  const bool was = word & bit;
  word |= bit;
  return was;
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
  if (tracker.seen.TestAndSet(packet.seq)) {
    ++stats.duplicated;
  } else {
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
  const uint32_t queues = machine_.queue_count();
  while (!stop_.load(std::memory_order_relaxed)) {
    uint32_t snapshot = DoorbellSnapshot(m.sink_bell);
    int n = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      int64_t now = MonotonicNanos();
      for (int nic = 0; nic < machine_.nic_count(); ++nic) {
        std::vector<Flow>& flows = nics_[nic].flows;
        for (uint32_t q = 0; q < queues; ++q) {
          PacketQueue delivered(machine_.app_rx(nic, q));
          while (auto p = delivered.TryPop()) {
            Record(*p, now, flows[q].inbound, flows[q].inbound_tracker);
            ++n;
          }
        }
        PacketQueue wire(machine_.wire_out(nic));
        while (auto p = wire.TryPop()) {
          // An echo or a guest's packet names its flow; past the NIC's
          // queues it cannot be one of ours.
          Flow& flow = flows[p->flow < queues ? p->flow : 0];
          Record(*p, now, flow.outbound, flow.outbound_tracker);
          ++n;
        }
      }
    }
    if (n == 0) DoorbellWait(m.sink_bell, snapshot, absl::Milliseconds(1));
  }
}

bool Traffic::WaitDelivered(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    bool all = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int nic = 0; nic < machine_.nic_count() && all; ++nic) {
        const NicFlows& n = nics_[nic];
        DirectionStats inbound, outbound;
        for (const Flow& flow : n.flows) {
          Accumulate(flow.inbound, inbound);
          Accumulate(flow.outbound, outbound);
        }
        // The machine's counters run across traffic runs: this run's drops.
        uint64_t rx_missed = RxMissed(nic) - n.rx_missed_at_start;
        uint64_t socket_drops = SocketDrops(nic) - n.socket_drops_at_start;
        uint64_t inbound_accounted = inbound.unique + inbound.wire_drops + rx_missed + socket_drops;
        if (options_.echo) {
          // An echo exists only for a packet the node received.
          all = outbound.unique + inbound.wire_drops + rx_missed >= inbound.sent;
        } else {
          all = inbound_accounted >= inbound.sent && outbound.unique >= outbound.sent;
        }
      }
    }
    if (all) return true;
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
}

TrafficReport Traffic::Report() const {
  std::lock_guard<std::mutex> lock(mu_);
  TrafficReport report;
  report.echo = options_.echo;
  for (int nic = 0; nic < machine_.nic_count(); ++nic) {
    const NicFlows& n = nics_[nic];
    NicTrafficReport nic_report;
    nic_report.bdf = machine_.bdf(nic);
    for (const Flow& flow : n.flows) {
      FlowReport f;
      f.inbound = flow.inbound;
      f.outbound = flow.outbound;
      if (options_.echo) f.outbound.sent = flow.inbound.sent;  // the round trip
      f.inbound.lost = f.inbound.sent - std::min(f.inbound.sent, f.inbound.unique);
      f.outbound.lost = f.outbound.sent - std::min(f.outbound.sent, f.outbound.unique);
      Accumulate(f.inbound, nic_report.inbound);
      Accumulate(f.outbound, nic_report.outbound);
      nic_report.queues.push_back(std::move(f));
    }
    nic_report.rx_missed = RxMissed(nic) - n.rx_missed_at_start;
    nic_report.rx_socket_drops = SocketDrops(nic) - n.socket_drops_at_start;
    Accumulate(nic_report.inbound, report.inbound);
    Accumulate(nic_report.outbound, report.outbound);
    report.nics.push_back(std::move(nic_report));
  }
  report.duration_ns = MonotonicNanos() - start_ns_;
  return report;
}

}  // namespace sim
}  // namespace nichandover
