#include "sim/machine.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <new>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "pci/bdf.h"
#include "sim/doorbell.h"
#include "sim/config_space_image.h"

namespace nichandover {
namespace sim {
namespace {

absl::Status ErrnoError(const std::string& what, int err) {
  std::string message = absl::StrFormat("%s: %s", what, std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

absl::Status ValidateSpec(const MachineSpec& spec) {
  if (spec.nodes.empty() || spec.nodes.size() > kMaxNodes) {
    return absl::InvalidArgumentError(absl::StrFormat("1..%d nodes, not %d", kMaxNodes,
                                                      spec.nodes.size()));
  }
  if (spec.ring_size < kMinRingSize || spec.ring_size > kMaxRingSize ||
      (spec.ring_size & (spec.ring_size - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ring size %d: a power of two in %d..%d", spec.ring_size, kMinRingSize, kMaxRingSize));
  }
  if (!NicMacFromBdf(spec.bdf).ok()) return NicMacFromBdf(spec.bdf).status();
  if (spec.nic_count < 1 || spec.nic_count > kMaxNics) {
    return absl::InvalidArgumentError(
        absl::StrFormat("1..%d NICs, not %d", kMaxNics, spec.nic_count));
  }
  if (spec.queue_count < 1 || spec.queue_count > kMaxQueues) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "1..%d queue pairs per NIC (the I210's), not %d", kMaxQueues, spec.queue_count));
  }
  for (uint32_t i = 0; i < spec.nic_count; ++i) {
    absl::StatusOr<std::string> bdf = NicBdf(spec.bdf, i);
    if (!bdf.ok()) return bdf.status();
    if (!NicMacFromBdf(*bdf).ok()) return NicMacFromBdf(*bdf).status();
  }
  bool owner_found = false;
  std::vector<uint32_t> seen_apic;
  for (size_t i = 0; i < spec.nodes.size(); ++i) {
    const NodeSpec& node = spec.nodes[i];
    if (node.node_id.empty() || node.node_id.size() >= kNodeIdSize) {
      return absl::InvalidArgumentError(absl::StrFormat("bad node id '%s'", node.node_id));
    }
    for (size_t j = 0; j < i; ++j) {
      if (spec.nodes[j].node_id == node.node_id) {
        return absl::InvalidArgumentError(absl::StrFormat("node %s twice", node.node_id));
      }
    }
    if (node.apic_ids.empty() || node.apic_ids.size() > kMaxApicIdsPerNode) {
      return absl::InvalidArgumentError(
          absl::StrFormat("node %s: 1..%d APIC IDs", node.node_id, kMaxApicIdsPerNode));
    }
    for (uint32_t apic : node.apic_ids) {
      if (apic > 0xff) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "node %s: APIC ID %d needs x2APIC addressing, which MSI cannot name", node.node_id,
            apic));
      }
      for (uint32_t other : seen_apic) {
        if (other == apic) {
          return absl::InvalidArgumentError(absl::StrFormat("APIC ID %d on two CPUs", apic));
        }
      }
      seen_apic.push_back(apic);
    }
    if (node.node_id == spec.initial_owner) owner_found = true;
  }
  if (!owner_found) {
    return absl::InvalidArgumentError(
        absl::StrFormat("initial owner '%s' is not a node", spec.initial_owner));
  }
  return absl::OkStatus();
}

// Where NIC 0's `member` is, from the start of the memory.
template <typename Member>
uint64_t NicOffset(Member NicState::*member) {
  const NicState* nic = nullptr;
  return offsetof(MachineLayout, nics) +
         static_cast<uint64_t>(reinterpret_cast<const char*>(&(nic->*member)) -
                               reinterpret_cast<const char*>(nic));
}

// The directory a guest reads first (guest_abi.h): NIC 0, queue 0.
void WriteDirectory(MachineLayout& m, const std::array<uint8_t, 6>& mac) {
  const NicState& nic = m.nics[0];
  const uint64_t rings = nic.area_offset +
                         NicAreaLayout::QueueRings(m.queue_count, nic.ring_size, 0);
  nh_sim_directory& d = m.directory;
  d.abi_version = NH_SIM_GUEST_ABI_VERSION;
  d.node_count = m.node_count;
  d.max_nodes = kMaxNodes;
  d.node_stride = sizeof(NodeSlot);
  d.nodes_offset = offsetof(MachineLayout, nodes);
  d.machine_peer_id = kMachinePeerId;
  d.nic_count = m.nic_count;
  d.nic_bdf_offset = NicOffset(&NicState::bdf);
  d.nic_config_offset = NicOffset(&NicState::config);
  d.nic_msix_offset = NicOffset(&NicState::msix_bar);
  d.nic_msix_pba_offset = kMsixPbaOffset;
  d.nic_msix_entries = kMsixTableEntries;
  d.nic_regs_offset = NicOffset(&NicState::regs);
  d.nic_rx_ring_offset = rings;
  d.nic_tx_ring_offset = rings + NicAreaLayout::RingSize(nic.ring_size);
  d.nic_rx_buf_offset = rings + 2 * NicAreaLayout::RingSize(nic.ring_size);
  d.nic_tx_buf_offset = d.nic_rx_buf_offset + NicAreaLayout::BuffersSize(nic.ring_size);
  d.nic_ring_size = nic.ring_size;
  d.nic_buf_size = kPacketBufferSize;
  d.nic_ownership_offset = NicOffset(&NicState::ownership);
  d.nic_handoff_offset = NicOffset(&NicState::handoff);
  d.nic_initialized_offset = NicOffset(&NicState::initialized);
  d.nic_running_node_offset = NicOffset(&NicState::running_node);
  d.nic_other_entry = kOtherVectorEntry;
  d.nic_queue_entry = kQueueVectorEntry;
  d.cas_test_offset = offsetof(MachineLayout, cas_test);
  std::memcpy(d.nic_mac, mac.data(), mac.size());
}

// Maps `size` bytes of `fd` and checks that a machine of this layout is there.
absl::StatusOr<MachineLayout*> MapExisting(int fd, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoError("fstat " + path, errno);
  if (static_cast<uint64_t>(st.st_size) < sizeof(MachineLayout)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: size %d is smaller than a simulated machine of layout version %d (%d bytes)", path,
        st.st_size, kLayoutVersion, sizeof(MachineLayout)));
  }
  void* p = mmap(nullptr, sizeof(MachineLayout), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return ErrnoError("mmap " + path, errno);
  auto* m = static_cast<MachineLayout*>(p);
  if (__atomic_load_n(&m->magic, __ATOMIC_ACQUIRE) != kMachineMagic ||
      m->version != kLayoutVersion || m->total_size < sizeof(MachineLayout) ||
      m->directory.abi_version != NH_SIM_GUEST_ABI_VERSION) {
    munmap(m, sizeof(MachineLayout));
    return absl::FailedPreconditionError(
        absl::StrFormat("%s is not a simulated machine of layout version %d", path,
                        kLayoutVersion));
  }
  // The NICs' areas follow the layout: map as much as the machine says it has.
  const uint64_t total = m->total_size;
  const uint64_t needed = kNicAreasOffset + uint64_t{m->nic_count} * m->nic_area_size;
  munmap(m, sizeof(MachineLayout));
  if (static_cast<uint64_t>(st.st_size) < total || total < needed) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: size %d is smaller than its machine's %d bytes", path, st.st_size, total));
  }
  p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return ErrnoError("mmap " + path, errno);
  return static_cast<MachineLayout*>(p);
}

}  // namespace

absl::StatusOr<std::string> NicBdf(absl::string_view first, uint32_t index) {
  unsigned domain, bus, device, function;
  char tail;
  std::string text(first);
  if (std::sscanf(text.c_str(), "%4x:%2x:%2x.%1x%c", &domain, &bus, &device, &function, &tail) !=
      4) {
    return absl::InvalidArgumentError(absl::StrFormat("bad BDF '%s': want DDDD:BB:DD.F", first));
  }
  if (bus + index > 0xff) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "NIC %d would be on bus 0x%x: start at a lower bus than %s", index, bus + index, first));
  }
  return absl::StrFormat("%04x:%02x:%02x.%x", domain, bus + index, device, function);
}

absl::StatusOr<std::array<uint8_t, 6>> NicMacFromBdf(absl::string_view bdf) {
  // The machine compares BDFs as text: only the full form is one.
  absl::StatusOr<pci::Bdf> parsed = pci::ParseBdf(bdf);
  if (!parsed.ok() || parsed->ToString() != bdf || bdf.size() >= sizeof(NicState::bdf)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad BDF '%s': want DDDD:BB:DD.F in lower case%s", bdf,
                        parsed.ok() ? "" : absl::StrCat(" (", parsed.status().message(), ")")));
  }
  const uint32_t domain = parsed->domain;
  const uint32_t bus = parsed->bus;
  const uint32_t device = parsed->device;
  const uint32_t function = parsed->function;
  // 02: locally administered, unicast; "NH"; then domain (low byte), bus, devfn.
  std::array<uint8_t, 6> mac = {0x02,
                                0x4e,
                                0x48,
                                static_cast<uint8_t>(domain & 0xff),
                                static_cast<uint8_t>(bus),
                                static_cast<uint8_t>(device << 3 | function)};
  const uint8_t peer[] = NH_SIM_WIRE_PEER_MAC;
  if (std::memcmp(mac.data(), peer, sizeof(peer)) == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("BDF '%s' would give the NIC the wire peer's MAC", bdf));
  }
  return mac;
}

uint64_t EncodeOwnership(const Ownership& o) {
  return static_cast<uint64_t>(o.state) | (static_cast<uint64_t>(o.owner & 0xff) << 8) |
         (static_cast<uint64_t>(o.target & 0xff) << 16) | ((o.epoch & kMaxEpoch) << 24);
}

Ownership DecodeOwnership(uint64_t word) {
  Ownership o;
  o.state = static_cast<OwnershipState>(word & 0xff);
  o.owner = static_cast<int>((word >> 8) & 0xff);
  o.target = static_cast<int>((word >> 16) & 0xff);
  o.epoch = word >> 24;
  return o;
}

absl::StatusOr<std::unique_ptr<Machine>> Machine::Create(const std::string& path,
                                                         const MachineSpec& spec) {
  if (absl::Status s = ValidateSpec(spec); !s.ok()) return s;
  // A fresh file: processes still mapping an old machine keep the old inode.
  std::string tmp = path + ".creating";
  int fd = open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("open " + tmp, errno);
  const uint64_t size = MachineMemorySize(spec.nic_count, spec.queue_count, spec.ring_size);
  if (ftruncate(fd, size) != 0) {
    int err = errno;
    close(fd);
    return ErrnoError("ftruncate " + tmp, err);
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int mmap_errno = errno;
  close(fd);
  if (p == MAP_FAILED) return ErrnoError("mmap " + tmp, mmap_errno);
  auto* m = static_cast<MachineLayout*>(p);  // zero-filled by ftruncate: every atomic is 0
  m->version = kLayoutVersion;
  m->node_count = static_cast<uint32_t>(spec.nodes.size());
  m->total_size = size;
  m->nic_count = spec.nic_count;
  m->queue_count = spec.queue_count;
  m->nic_area_size = NicAreaLayout::Size(spec.queue_count, spec.ring_size);
  m->created_unix_ns = absl::ToUnixNanos(absl::Now());
  for (size_t i = 0; i < spec.nodes.size(); ++i) {
    NodeSlot& slot = m->nodes[i];
    std::snprintf(slot.node_id, sizeof(slot.node_id), "%s", spec.nodes[i].node_id.c_str());
    slot.apic_count = static_cast<uint32_t>(spec.nodes[i].apic_ids.size());
    for (size_t j = 0; j < spec.nodes[i].apic_ids.size(); ++j) {
      slot.apic_ids[j] = spec.nodes[i].apic_ids[j];
    }
  }
  auto machine = std::unique_ptr<Machine>(new Machine(path, m, size));
  const int owner = *machine->NodeIndex(spec.initial_owner);
  for (uint32_t i = 0; i < spec.nic_count; ++i) {
    NicState& nic = m->nics[i];
    const std::string bdf = *NicBdf(spec.bdf, i);
    std::snprintf(nic.bdf, sizeof(nic.bdf), "%s", bdf.c_str());
    const std::array<uint8_t, 6> mac = *NicMacFromBdf(bdf);
    std::memcpy(nic.mac, mac.data(), mac.size());
    nic.ring_size = spec.ring_size;
    nic.queue_count = spec.queue_count;
    nic.area_offset = kNicAreasOffset + i * m->nic_area_size;
    nic.running_node.store(-1);
    PowerOnNic(nic);
    Ownership initial;
    initial.state = OwnershipState::kActive;
    initial.owner = spec.spread_owners ? static_cast<int>(i % spec.nodes.size()) : owner;
    initial.epoch = 1;
    nic.ownership.word.store(EncodeOwnership(initial));
  }
  WriteDirectory(*m, machine->nic_mac(0));
  // The magic last: a process that opens the file early sees no machine.
  __atomic_store_n(&m->magic, kMachineMagic, __ATOMIC_RELEASE);
  if (rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("rename to " + path, errno);
  return machine;
}

absl::StatusOr<std::unique_ptr<Machine>> Machine::Open(const std::string& path) {
  return AttachExisting(path);
}

absl::StatusOr<std::unique_ptr<Machine>> Machine::AttachExisting(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open " + path, errno);
  absl::StatusOr<MachineLayout*> mapped = MapExisting(fd, path);
  close(fd);
  if (!mapped.ok()) return mapped.status();
  return std::unique_ptr<Machine>(new Machine(path, *mapped, (*mapped)->total_size));
}

absl::Status Machine::Destroy(const std::string& path) {
  if (unlink(path.c_str()) != 0) return ErrnoError("unlink " + path, errno);
  return absl::OkStatus();
}

Machine::~Machine() { munmap(layout_, mapped_size_); }

absl::StatusOr<int> Machine::NicIndex(absl::string_view bdf) const {
  for (uint32_t i = 0; i < layout_->nic_count; ++i) {
    if (bdf == layout_->nics[i].bdf) return static_cast<int>(i);
  }
  return absl::NotFoundError(absl::StrFormat("the machine has no NIC %s", bdf));
}

QueueRings Machine::rings(int nic, uint32_t queue) {
  const uint32_t size = layout_->nics[nic].ring_size;
  const uint64_t base = NicAreaLayout::QueueRings(layout_->queue_count, size, queue);
  QueueRings r;
  r.rx_ring = &Area<RxDescriptor>(nic, base);
  r.tx_ring = &Area<TxDescriptor>(nic, base + NicAreaLayout::RingSize(size));
  using Buffer = uint8_t[kPacketBufferSize];
  r.rx_buffers = &Area<Buffer>(nic, base + 2 * NicAreaLayout::RingSize(size));
  r.tx_buffers = &Area<Buffer>(
      nic, base + 2 * NicAreaLayout::RingSize(size) + NicAreaLayout::BuffersSize(size));
  return r;
}

std::string Machine::node_id(int index) const {
  if (index < 0 || index >= static_cast<int>(layout_->node_count)) return "";
  return layout_->nodes[index].node_id;
}

absl::StatusOr<int> Machine::NodeIndex(absl::string_view node_id) const {
  for (uint32_t i = 0; i < layout_->node_count; ++i) {
    if (node_id == layout_->nodes[i].node_id) return static_cast<int>(i);
  }
  return absl::NotFoundError(absl::StrFormat("the machine has no node '%s'", node_id));
}

int Machine::NodeOfApicId(uint32_t apic_id) const {
  for (uint32_t i = 0; i < layout_->node_count; ++i) {
    const NodeSlot& slot = layout_->nodes[i];
    for (uint32_t j = 0; j < slot.apic_count; ++j) {
      if (slot.apic_ids[j] == apic_id) return static_cast<int>(i);
    }
  }
  return kNoNode;
}

Ownership Machine::ReadOwnership(int nic) const {
  return DecodeOwnership(layout_->nics[nic].ownership.word.load(std::memory_order_seq_cst));
}

Ownership Machine::CompareAndSwapOwnership(const Ownership& expected, const Ownership& desired,
                                           int nic) {
  uint64_t want = EncodeOwnership(expected);
  uint64_t next = EncodeOwnership(desired);
  if (layout_->nics[nic].ownership.word.compare_exchange_strong(want, next,
                                                                std::memory_order_seq_cst)) {
    if (expected.state == OwnershipState::kPreparing && desired.state == OwnershipState::kHandoff) {
      StampTimeline(&HandoverTimeline::handed_off_ns, desired.epoch, nic);
    } else if (expected.state == OwnershipState::kHandoff &&
               desired.state == OwnershipState::kActive) {
      StampTimeline(&HandoverTimeline::target_committed_ns, desired.epoch, nic);
    }
    return desired;
  }
  return DecodeOwnership(want);  // the record that was there
}

void Machine::ResetTimeline(uint64_t epoch, int nic) {
  HandoverTimeline& t = layout_->nics[nic].timeline;
  t.epoch.store(0, std::memory_order_seq_cst);  // no stamp lands while the fields clear
  for (std::atomic<int64_t> HandoverTimeline::*field :
       {&HandoverTimeline::gate_closed_ns, &HandoverTimeline::drained_ns,
        &HandoverTimeline::rerouted_ns, &HandoverTimeline::handed_off_ns,
        &HandoverTimeline::doorbell_ns, &HandoverTimeline::target_woken_ns,
        &HandoverTimeline::target_committed_ns, &HandoverTimeline::target_attached_ns,
        &HandoverTimeline::first_rx_poll_ns}) {
    (t.*field).store(0, std::memory_order_relaxed);
  }
  t.epoch.store(epoch, std::memory_order_seq_cst);
}

void Machine::StampTimeline(std::atomic<int64_t> HandoverTimeline::*field, uint64_t epoch,
                            int nic, int64_t at_ns) {
  HandoverTimeline& t = layout_->nics[nic].timeline;
  if (t.epoch.load(std::memory_order_seq_cst) != epoch) return;
  (t.*field).store(at_ns != 0 ? at_ns : MonotonicNanos(), std::memory_order_seq_cst);
}

namespace {

// Queue `queue`'s words of a handoff slot (queue 0's at the guest ABI's offsets).
struct HandoffWords {
  std::atomic<uint32_t>& rx_next_to_clean;
  std::atomic<uint32_t>& rx_next_to_use;
  std::atomic<uint32_t>& tx_next_to_clean;
  std::atomic<uint32_t>& tx_next_to_use;
};
HandoffWords Words(HandoffSlot& h, uint32_t queue) {
  if (queue == 0) {
    return {h.rx_next_to_clean, h.rx_next_to_use, h.tx_next_to_clean, h.tx_next_to_use};
  }
  HandoffRingWords& w = h.more_queues[queue - 1];
  return {w.rx_next_to_clean, w.rx_next_to_use, w.tx_next_to_clean, w.tx_next_to_use};
}

}  // namespace

absl::Status Machine::WriteHandoff(const Fence& fence, const std::vector<RingState>& rings,
                                  int nic) {
  if (rings.size() != layout_->queue_count) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d ring states for a NIC of %d queues", rings.size(), layout_->queue_count));
  }
  HandoffSlot& h = layout_->nics[nic].handoff;
  // Take the seqlock (even -> odd) so that the fence check and the write are
  // one step against other writers; a writer stuck odd that long is dead.
  constexpr absl::Duration kHandoffWriterTakeover = absl::Seconds(1);
  uint32_t seq = h.seq.load(std::memory_order_relaxed);
  uint32_t stuck = seq;
  absl::Time stuck_since = absl::Now();
  for (;;) {
    if (seq % 2 == 0) {
      if (h.seq.compare_exchange_weak(seq, seq + 1, std::memory_order_acq_rel)) break;
      continue;
    }
    if (seq != stuck) {
      stuck = seq;
      stuck_since = absl::Now();
    } else if (absl::Now() - stuck_since > kHandoffWriterTakeover &&
               h.seq.compare_exchange_strong(seq, seq + 2, std::memory_order_acq_rel)) {
      break;
    }
    std::this_thread::yield();
    seq = h.seq.load(std::memory_order_relaxed);
  }
  const uint32_t held = h.seq.load(std::memory_order_relaxed);  // odd: ours
  const Fence stored{h.epoch.load(std::memory_order_relaxed),
                     h.op_id.load(std::memory_order_relaxed)};
  absl::Status admitted = h.count.load(std::memory_order_relaxed) == 0
                              ? absl::OkStatus()
                              : CheckFence(stored, fence, "handoff rings write");
  if (admitted.ok()) {
    h.epoch.store(fence.epoch, std::memory_order_relaxed);
    h.op_id.store(fence.op_id, std::memory_order_relaxed);
    h.count.store(static_cast<uint32_t>(rings.size()), std::memory_order_relaxed);
    for (uint32_t q = 0; q < rings.size(); ++q) {
      HandoffWords w = Words(h, q);
      w.rx_next_to_clean.store(rings[q].rx_next_to_clean, std::memory_order_relaxed);
      w.rx_next_to_use.store(rings[q].rx_next_to_use, std::memory_order_relaxed);
      w.tx_next_to_clean.store(rings[q].tx_next_to_clean, std::memory_order_relaxed);
      w.tx_next_to_use.store(rings[q].tx_next_to_use, std::memory_order_relaxed);
    }
  }
  h.seq.store(held + 1, std::memory_order_seq_cst);
  return admitted;
}

absl::StatusOr<std::vector<RingState>> Machine::ReadHandoff(uint64_t epoch, int nic) const {
  HandoffSlot& h = layout_->nics[nic].handoff;
  for (int busy = 0;; ++busy) {
    uint32_t before = h.seq.load(std::memory_order_seq_cst);
    if (before & 1) {
      // A writer is mid-way: it finishes in nanoseconds if it runs. The
      // reader may be a SCHED_FIFO commit worker (sim/realtime.h) and the
      // writer a normal thread on the same CPU, which a spinning reader
      // would never let run: after a few tries, sleep so it can.
      if (busy >= 64) absl::SleepFor(absl::Microseconds(20));
      continue;
    }
    uint64_t stored_epoch = h.epoch.load(std::memory_order_relaxed);
    uint32_t count = std::min(h.count.load(std::memory_order_relaxed), kMaxQueues);
    std::vector<RingState> rings(count);
    for (uint32_t q = 0; q < count; ++q) {
      HandoffWords w = Words(h, q);
      rings[q].rx_next_to_clean = w.rx_next_to_clean.load(std::memory_order_relaxed);
      rings[q].rx_next_to_use = w.rx_next_to_use.load(std::memory_order_relaxed);
      rings[q].tx_next_to_clean = w.tx_next_to_clean.load(std::memory_order_relaxed);
      rings[q].tx_next_to_use = w.tx_next_to_use.load(std::memory_order_relaxed);
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (h.seq.load(std::memory_order_seq_cst) != before) continue;
    if (count == 0 || stored_epoch != epoch) {
      return absl::NotFoundError(
          absl::StrFormat("no ring state handed off for epoch %d", epoch));
    }
    return rings;
  }
}

}  // namespace sim
}  // namespace nichandover
