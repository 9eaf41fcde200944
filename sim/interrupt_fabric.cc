#include "sim/interrupt_fabric.h"

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
  node.delivered[message.vector].fetch_add(1, std::memory_order_relaxed);
  if (node.kind.load(std::memory_order_acquire) == NodeKind::kGuest) {
    uint8_t line = node.guest_vector[message.vector].load(std::memory_order_acquire);
    if (line == 0 || guests_ == nullptr || !guests_->Raise(node_index, line - 1u)) {
      node.spurious.fetch_add(1, std::memory_order_relaxed);
      return MsiOutcome::kSpurious;
    }
    return MsiOutcome::kDelivered;
  }
  if (!IsVectorRegistered(node, message.vector)) {
    node.spurious.fetch_add(1, std::memory_order_relaxed);
    return MsiOutcome::kSpurious;
  }
  node.irr[message.vector / 64].fetch_or(uint64_t{1} << (message.vector % 64),
                                         std::memory_order_seq_cst);
  DoorbellRing(node.bell);
  return MsiOutcome::kDelivered;
}

void RegisterVector(NodeSlot& node, uint8_t vector) {
  node.registered[vector / 64].fetch_or(uint64_t{1} << (vector % 64), std::memory_order_seq_cst);
}

void UnregisterVector(NodeSlot& node, uint8_t vector) {
  node.registered[vector / 64].fetch_and(~(uint64_t{1} << (vector % 64)),
                                         std::memory_order_seq_cst);
}

bool IsVectorRegistered(const NodeSlot& node, uint8_t vector) {
  return (node.registered[vector / 64].load(std::memory_order_seq_cst) >> (vector % 64)) & 1;
}

std::vector<uint8_t> TakePendingVectors(NodeSlot& node) {
  std::vector<uint8_t> vectors;
  for (int word = 0; word < 4; ++word) {
    uint64_t bits = node.irr[word].exchange(0, std::memory_order_seq_cst);
    while (bits != 0) {
      int bit = __builtin_ctzll(bits);
      bits &= bits - 1;
      vectors.push_back(static_cast<uint8_t>(word * 64 + bit));
    }
  }
  return vectors;
}

}  // namespace sim
}  // namespace nichandover
