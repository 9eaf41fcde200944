// A single-producer single-consumer packet queue in shared memory: the wire
// between the traffic generator and the device, and the socket buffers
// between the running kernel and the traffic sink.
//
// The consumer may change between processes over time (the socket send
// buffer is drained by whichever kernel runs the NIC), but never two at
// once: the hook's gates order the source's last dequeue before the
// target's first.
#ifndef NICHANDOVER_SIM_PACKET_QUEUE_H_
#define NICHANDOVER_SIM_PACKET_QUEUE_H_

#include <optional>

#include "sim/machine_layout.h"

namespace nichandover {
namespace sim {

class PacketQueue {
 public:
  explicit PacketQueue(PacketQueueStorage& storage) : q_(storage) {}

  // False when full (the packet is not queued).
  bool TryPush(const WirePacket& packet) {
    uint64_t tail = q_.tail.load(std::memory_order_relaxed);
    if (tail - q_.head.load(std::memory_order_acquire) >= kQueueCapacity) return false;
    q_.slots[tail % kQueueCapacity] = packet;
    q_.tail.store(tail + 1, std::memory_order_release);
    return true;
  }

  // The oldest packet, left in the queue (dev_queue_xmit requeues a packet
  // the gate holds: Peek, and Pop only once the driver took it).
  std::optional<WirePacket> Peek() const {
    uint64_t head = q_.head.load(std::memory_order_relaxed);
    if (head == q_.tail.load(std::memory_order_acquire)) return std::nullopt;
    return q_.slots[head % kQueueCapacity];
  }

  void Pop() { q_.head.store(q_.head.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

  std::optional<WirePacket> TryPop() {
    std::optional<WirePacket> packet = Peek();
    if (packet.has_value()) Pop();
    return packet;
  }

  uint64_t size() const {
    return q_.tail.load(std::memory_order_acquire) - q_.head.load(std::memory_order_acquire);
  }

 private:
  PacketQueueStorage& q_;
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_PACKET_QUEUE_H_
