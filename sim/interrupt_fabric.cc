#include "sim/interrupt_fabric.h"

#include <algorithm>

#include "pci/x86_msi.h"
#include "sim/doorbell.h"

namespace nichandover {
namespace sim {

MsiOutcome InterruptFabric::Deliver(uint64_t address, uint32_t data) {
  pci::X86MsiMessage message = pci::DecodeX86Msi(address, data);
  int node_index = kNoNode;
  if (message.IsInterruptAddress() && !message.remappable && !message.logical_destination) {
    node_index = machine_.NodeOfApicId(message.destination_apic_id);
  }
  if (node_index == kNoNode) {
    machine_.layout().unroutable_msi.fetch_add(1, std::memory_order_relaxed);
    return MsiOutcome::kUnroutable;
  }
  NodeSlot& node = machine_.node(node_index);
  const int cpu = CpuOfApicId(node, message.destination_apic_id);
  node.delivered[message.vector].fetch_add(1, std::memory_order_relaxed);
  if (node.kind.load(std::memory_order_acquire) == NodeKind::kGuest) {
    uint8_t line = node.guest_vector[message.vector].load(std::memory_order_acquire);
    if (line == 0 || guests_ == nullptr || !guests_->Raise(node_index, line - 1u)) {
      node.spurious.fetch_add(1, std::memory_order_relaxed);
      return MsiOutcome::kSpurious;
    }
    return MsiOutcome::kDelivered;
  }
  if (!IsVectorRegistered(node, cpu, message.vector)) {
    node.spurious.fetch_add(1, std::memory_order_relaxed);
    return MsiOutcome::kSpurious;
  }
  node.irr[cpu][message.vector / 64].fetch_or(uint64_t{1} << (message.vector % 64),
                                         std::memory_order_seq_cst);
  DoorbellRing(node.bell);
  return MsiOutcome::kDelivered;
}

MsiOutcome InterruptFabric::RingHandoffDoorbell(int node_index, int nic, uint64_t epoch) {
  if (node_index < 0 || node_index >= machine_.node_count() || nic < 0 ||
      nic >= machine_.nic_count()) {
    machine_.layout().unroutable_msi.fetch_add(1, std::memory_order_relaxed);
    return MsiOutcome::kUnroutable;
  }
  NodeSlot& node = machine_.node(node_index);
  // The mailbox before the interrupt: the handler that sees the vector sees
  // the epoch (seq_cst, as the IRR bit below).
  node.handoff_mailbox[nic].store(epoch, std::memory_order_seq_cst);
  node.delivered[kHandoffDoorbellVector].fetch_add(1, std::memory_order_relaxed);
  constexpr int kFirstCpu = 0;
  if (node.kind.load(std::memory_order_acquire) != NodeKind::kSimKernel ||
      !IsVectorRegistered(node, kFirstCpu, kHandoffDoorbellVector)) {
    node.spurious.fetch_add(1, std::memory_order_relaxed);
    return MsiOutcome::kSpurious;
  }
  node.irr[kFirstCpu][kHandoffDoorbellVector / 64].fetch_or(
      uint64_t{1} << (kHandoffDoorbellVector % 64), std::memory_order_seq_cst);
  DoorbellRing(node.bell);
  return MsiOutcome::kDelivered;
}

int CpuOfApicId(const NodeSlot& node, uint32_t apic_id) {
  for (uint32_t i = 0; i < node.apic_count && i < kMaxApicIdsPerNode; ++i) {
    if (node.apic_ids[i] == apic_id) return static_cast<int>(i);
  }
  return -1;
}

void RegisterVector(NodeSlot& node, int cpu, uint8_t vector) {
  node.registered[cpu][vector / 64].fetch_or(uint64_t{1} << (vector % 64),
                                             std::memory_order_seq_cst);
}

void UnregisterVector(NodeSlot& node, int cpu, uint8_t vector) {
  node.registered[cpu][vector / 64].fetch_and(~(uint64_t{1} << (vector % 64)),
                                              std::memory_order_seq_cst);
}

bool IsVectorRegistered(const NodeSlot& node, int cpu, uint8_t vector) {
  if (cpu < 0 || cpu >= kMaxApicIdsPerNode) return false;
  return (node.registered[cpu][vector / 64].load(std::memory_order_seq_cst) >> (vector % 64)) & 1;
}

std::vector<CpuVector> TakePendingVectors(NodeSlot& node) {
  std::vector<CpuVector> vectors;
  const int cpus = static_cast<int>(std::min<uint32_t>(node.apic_count, kMaxApicIdsPerNode));
  for (int cpu = 0; cpu < cpus; ++cpu) {
    for (int word = 0; word < 4; ++word) {
      uint64_t bits = node.irr[cpu][word].exchange(0, std::memory_order_seq_cst);
      while (bits != 0) {
        int bit = __builtin_ctzll(bits);
        bits &= bits - 1;
        vectors.push_back({cpu, static_cast<uint8_t>(word * 64 + bit)});
      }
    }
  }
  return vectors;
}

}  // namespace sim
}  // namespace nichandover
