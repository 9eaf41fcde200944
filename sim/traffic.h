// Traffic with sequence numbers in both directions on every NIC and every
// queue of the machine, and the sink that checks it. Each (NIC, queue) is a
// flow with its own sequence numbers per direction. Inbound packets go onto
// the NIC's wire (the device receives them on the flow's RX queue, the
// running kernel delivers them to the flow's socket receive buffer);
// outbound packets go into the flow's socket send buffer (the running kernel
// transmits them on the flow's TX queue, the device puts them on the wire). The sink counts per direction what it
// received, duplicates, packets that arrived after a later one (reordered),
// and what never arrived; and, each time the node that carried the packets
// changes (a handover), the arrival times of the last packet the old node
// carried and the first the new node carried: the blackout as the traffic
// saw it.
//
// Echo mode (a QEMU guest on the node runs an echo, tests/vm/frame_echo.cc):
// only inbound packets are generated; the node sends each one's payload back
// (direction OUTBOUND, its own node index, the same sequence number), so the
// outbound stream the sink sees is the round trip of the inbound one. Its
// statistics (lost/duplicated/reordered, the blackout per node change) are
// then the round trip's: `outbound.sent` is the number of inbound packets.
#ifndef NICHANDOVER_SIM_TRAFFIC_H_
#define NICHANDOVER_SIM_TRAFFIC_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "sim/machine.h"

namespace nichandover {
namespace sim {

struct TrafficOptions {
  // Per NIC, spread evenly over its queues.
  double inbound_pps = 10000;
  double outbound_pps = 10000;
  // The generator wakes this often and sends what is due (up to 1 ms of it
  // after a stall: the rest is skipped, never numbered nor counted sent).
  absl::Duration tick = absl::Microseconds(200);
  // The node echoes inbound packets; outbound_pps is ignored.
  bool echo = false;
};

struct NodeChange {
  uint32_t from_node = 0;
  uint32_t to_node = 0;
  uint64_t last_seq_before = 0;
  uint64_t first_seq_after = 0;
  int64_t last_before_ns = 0;   // arrival of the old node's last packet
  int64_t first_after_ns = 0;   // arrival of the new node's first packet
  int64_t blackout_ns() const { return first_after_ns - last_before_ns; }
};

struct DirectionStats {
  uint64_t sent = 0;         // sequence numbers handed to the wire / socket
  uint64_t refused = 0;      // socket send buffer full: never sent, no number
  uint64_t wire_drops = 0;   // sent, but the wire queue to the device was full
  uint64_t received = 0;     // every arrival, duplicates included
  uint64_t unique = 0;
  uint64_t duplicated = 0;
  uint64_t out_of_order = 0;  // arrived after a higher sequence number
  uint64_t lost = 0;          // sent - unique, when the report was taken
  // Sent before this run started (by an earlier run, e.g. frames a
  // quiesced node left in the device's ring): not counted above.
  uint64_t stale = 0;
  std::vector<NodeChange> node_changes;
};

// Adds `from`'s counters to `into` and appends its node changes.
void Accumulate(const DirectionStats& from, DirectionStats& into);

struct FlowReport {  // one queue of one NIC
  DirectionStats inbound;
  DirectionStats outbound;
};

struct NicTrafficReport {
  std::string bdf;
  DirectionStats inbound;   // its flows summed
  DirectionStats outbound;
  std::vector<FlowReport> queues;
  uint64_t rx_missed = 0;        // this run: the device's RX rings were full
  uint64_t rx_socket_drops = 0;  // this run: a kernel's socket buffer was full
  // The longest pause any of its flows saw in either direction (0 without
  // node changes): the NIC's blackout when it moved once.
  int64_t max_blackout_ns() const;
};

struct TrafficReport {
  DirectionStats inbound;   // every NIC's flows summed
  DirectionStats outbound;
  std::vector<NicTrafficReport> nics;
  int64_t duration_ns = 0;
  bool echo = false;  // outbound = the echoes of inbound (round trip)
};

std::string TrafficReportJson(const TrafficReport& report, const Machine& machine);

class Traffic {
 public:
  Traffic(Machine& machine, const TrafficOptions& options);
  ~Traffic();
  void Start();
  // After Start: the generator and the sink under SCHED_FIFO at `priority`
  // (sim/realtime.h: the data path on CPUs of its own). Both sleep when idle
  // (the generator between ticks, the sink on its doorbell).
  absl::Status SetRealtimePriority(int priority);
  // Stops the generator; the sink keeps counting.
  void StopSending();
  // After StopSending: waits until every sent packet arrived, or `timeout`.
  // True if all arrived (minus the drops the machine counted, see Accounted).
  bool WaitDelivered(absl::Duration timeout);
  void Stop();
  TrafficReport Report() const;

 private:
  // The sequence numbers that arrived: one bit each, in chunks allocated
  // as the numbers grow. Never copied: the sink records under mu_, which the
  // generator takes each tick, so a doubling resize of one flat array (8 MB
  // at 4 M packets) stopped the traffic for ≈ 13 ms inside a handover's
  // blackout as the sink measured it (docs/performance.md).
  class SeenSet {
   public:
    // Whether `seq` was there already; marks it.
    bool TestAndSet(uint64_t seq);

   private:
    static constexpr uint64_t kBitsPerChunk = uint64_t{1} << 16;  // 8 KiB
    std::vector<std::unique_ptr<uint64_t[]>> chunks_;
  };
  struct Tracker {
    SeenSet seen;
    uint64_t max_seq = 0;
    bool any = false;
    uint32_t last_node = kNoNode;
    uint64_t last_seq = 0;
    int64_t last_arrival_ns = 0;
  };
  struct Flow {
    DirectionStats inbound, outbound;
    Tracker inbound_tracker, outbound_tracker;
  };
  struct NicFlows {
    std::vector<Flow> flows;           // one per queue
    uint64_t rx_missed_at_start = 0;   // the device's drops before this run
    uint64_t socket_drops_at_start = 0;
  };
  void GeneratorLoop();
  void SinkLoop();
  void Record(const WirePacket& packet, int64_t now, DirectionStats& stats, Tracker& tracker);
  uint64_t RxMissed(int nic) const;
  uint64_t SocketDrops(int nic) const;

  Machine& machine_;
  const TrafficOptions options_;
  std::atomic<bool> sending_{false};
  std::atomic<bool> stop_{false};
  std::thread generator_;
  std::thread sink_;
  int64_t start_ns_ = 0;
  mutable std::mutex mu_;  // guards the flows' stats
  std::vector<NicFlows> nics_;
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_TRAFFIC_H_
