#include "daemon/platform/shared_file/shared_file_arbiter.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "daemon/platform/ownership_record.h"
#include "pci/bdf.h"

namespace nichandover {
namespace platform {

static_assert(std::atomic<uint64_t>::is_always_lock_free, "the CAS must not take a lock");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "the seqlock must not take a lock");

namespace {

constexpr uint64_t kMagic = 0x315449425241484eULL;  // "NHARBIT1" in file byte order
constexpr uint32_t kVersion = 2;  // 2: the rings carry their writer's operation id
constexpr size_t kNameSize = 64;
constexpr size_t kBdfSize = 32;
constexpr uint8_t kNoNode = 0xff;

}  // namespace

// One queue's ring indices. Atomics (relaxed) because a reader may race the
// writer; the seqlock tells it to retry.
struct SharedArbiterRing {
  std::atomic<uint32_t> queue;
  std::atomic<uint32_t> rx_next_to_clean;
  std::atomic<uint32_t> rx_next_to_use;
  std::atomic<uint32_t> tx_next_to_clean;
  std::atomic<uint32_t> tx_next_to_use;
};

struct alignas(64) SharedArbiterNicSlot {
  char bdf[kBdfSize];               // written once by Create
  std::atomic<uint64_t> ownership;  // the record: state | owner | target | epoch
  std::atomic<uint32_t> rings_seq;  // odd while a write is in progress; 0 = never written
  std::atomic<uint32_t> ring_count;
  std::atomic<uint64_t> rings_epoch;
  std::atomic<uint64_t> rings_op_id;  // with rings_epoch: the fence of the write
  SharedArbiterRing rings[SharedFileArbiter::kMaxQueues];
};

struct alignas(64) SharedArbiterLayout {
  uint64_t magic;
  uint32_t version;
  uint32_t node_count;
  uint32_t nic_count;
  uint32_t max_queues;
  uint64_t file_size;
  char nodes[SharedFileArbiter::kMaxNodes][kNameSize];
  // nic_count SharedArbiterNicSlot follow.
};

namespace {

SharedArbiterNicSlot* NicSlots(SharedArbiterLayout* layout) {
  return reinterpret_cast<SharedArbiterNicSlot*>(reinterpret_cast<char*>(layout) +
                                                 sizeof(SharedArbiterLayout));
}

size_t FileSize(size_t nic_count) {
  return sizeof(SharedArbiterLayout) + nic_count * sizeof(SharedArbiterNicSlot);
}

// The word: bits 0-7 state, 8-15 owner index, 16-23 target index, 24-63 epoch.
uint64_t Pack(uint8_t state, uint8_t owner, uint8_t target, uint64_t epoch) {
  return uint64_t{state} | uint64_t{owner} << 8 | uint64_t{target} << 16 | epoch << 24;
}

absl::StatusOr<std::string> FullBdf(const std::string& bdf) {
  auto parsed = pci::ParseBdf(bdf);
  if (!parsed.ok()) return parsed.status();
  return parsed->ToString();
}

v1::OwnershipRecord DecodeRecord(const std::vector<std::string>& nodes, uint64_t word) {
  v1::OwnershipRecord record;
  record.set_state(static_cast<v1::OwnershipState>(word & 0xff));
  const uint8_t owner = (word >> 8) & 0xff;
  const uint8_t target = (word >> 16) & 0xff;
  if (owner < nodes.size()) record.set_owner_node(nodes[owner]);
  if (target < nodes.size()) record.set_target_node(nodes[target]);
  record.set_epoch(word >> 24);
  return record;
}

// INVALID_ARGUMENT naming what cannot be encoded.
absl::StatusOr<uint64_t> EncodeRecord(const std::vector<std::string>& nodes,
                                      const v1::OwnershipRecord& record) {
  auto index = [&nodes](const std::string& node) -> absl::StatusOr<uint8_t> {
    if (node.empty()) return kNoNode;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i] == node) return static_cast<uint8_t>(i);
    }
    return absl::InvalidArgumentError(
        absl::StrCat("node \"", node, "\" is not in the arbiter file"));
  };
  if (record.state() < 0 || record.state() > 0xff) {
    return absl::InvalidArgumentError(absl::StrCat("ownership state ", record.state()));
  }
  if (record.epoch() > SharedFileArbiter::kMaxEpoch) {
    return absl::InvalidArgumentError(absl::StrCat("epoch ", record.epoch(), " exceeds the file's ",
                                                   SharedFileArbiter::kMaxEpoch));
  }
  auto owner = index(record.owner_node());
  if (!owner.ok()) return owner.status();
  auto target = index(record.target_node());
  if (!target.ok()) return target.status();
  return Pack(static_cast<uint8_t>(record.state()), *owner, *target, record.epoch());
}

absl::Status ErrnoError(const std::string& what) {
  int err = errno;
  std::string text = absl::StrCat(what, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(text);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(text);
  return absl::InternalError(text);
}

}  // namespace

absl::Status SharedFileArbiter::Create(const std::string& path,
                                       const std::vector<std::string>& nodes,
                                       const std::vector<InitialRecord>& records) {
  if (nodes.size() > kMaxNodes) {
    return absl::InvalidArgumentError(absl::StrCat("at most ", kMaxNodes, " nodes"));
  }
  std::set<std::string> seen_nodes;
  for (const std::string& node : nodes) {
    if (node.empty() || node.size() >= kNameSize || node.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("node name \"", node, "\" must be 1..", kNameSize - 1, " bytes"));
    }
    if (!seen_nodes.insert(node).second) {
      return absl::InvalidArgumentError(absl::StrCat("node \"", node, "\" is named twice"));
    }
  }
  const size_t size = FileSize(records.size());
  std::vector<uint8_t> bytes(size, 0);
  auto* layout = reinterpret_cast<SharedArbiterLayout*>(bytes.data());
  layout->magic = kMagic;
  layout->version = kVersion;
  layout->node_count = static_cast<uint32_t>(nodes.size());
  layout->nic_count = static_cast<uint32_t>(records.size());
  layout->max_queues = kMaxQueues;
  layout->file_size = size;
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::memcpy(layout->nodes[i], nodes[i].data(), nodes[i].size());
  }
  std::set<std::string> seen_bdfs;
  for (size_t i = 0; i < records.size(); ++i) {
    auto bdf = FullBdf(records[i].bdf);
    if (!bdf.ok()) return bdf.status();
    if (!seen_bdfs.insert(*bdf).second) {
      return absl::InvalidArgumentError(absl::StrCat(*bdf, " has two records"));
    }
    auto word = EncodeRecord(nodes, records[i].record);
    if (!word.ok())
      return absl::InvalidArgumentError(absl::StrCat(*bdf, ": ", word.status().message()));
    SharedArbiterNicSlot* slot = new (&NicSlots(layout)[i]) SharedArbiterNicSlot();
    std::memcpy(slot->bdf, bdf->data(), bdf->size());
    slot->ownership.store(*word, std::memory_order_relaxed);
  }

  // Written under a temporary name and renamed, so that an Open never sees
  // half a file.
  const std::string temp = absl::StrCat(path, ".tmp.", getpid());
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0660);
  if (fd < 0) return ErrnoError(absl::StrCat("creating ", temp));
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, bytes.data() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status st = ErrnoError(absl::StrCat("writing ", temp));
      close(fd);
      unlink(temp.c_str());
      return st;
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    absl::Status st = ErrnoError(absl::StrCat("syncing ", temp));
    unlink(temp.c_str());
    return st;
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    absl::Status st = ErrnoError(absl::StrCat("renaming ", temp, " to ", path));
    unlink(temp.c_str());
    return st;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SharedFileArbiter>> SharedFileArbiter::Open(
    const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return ErrnoError(absl::StrCat("opening the arbiter file ", path));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    absl::Status status = ErrnoError(absl::StrCat("stat ", path));
    close(fd);
    return status;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < sizeof(SharedArbiterLayout)) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(path, " is too short for an arbiter file"));
  }
  void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);  // the mapping keeps the file
  if (map == MAP_FAILED) return ErrnoError(absl::StrCat("mapping ", path));
  auto* layout = static_cast<SharedArbiterLayout*>(map);
  if (layout->magic != kMagic || layout->version != kVersion || layout->max_queues != kMaxQueues ||
      layout->file_size != size || layout->node_count > kMaxNodes ||
      FileSize(layout->nic_count) != size) {
    munmap(map, size);
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a nichandover arbiter file of version ", kVersion));
  }
  std::vector<std::string> nodes;
  for (uint32_t i = 0; i < layout->node_count; ++i) {
    nodes.emplace_back(layout->nodes[i], strnlen(layout->nodes[i], kNameSize));
  }
  return std::unique_ptr<SharedFileArbiter>(
      new SharedFileArbiter(path, layout, size, std::move(nodes)));
}

SharedFileArbiter::~SharedFileArbiter() {
  if (layout_ != nullptr) munmap(layout_, size_);
}

absl::StatusOr<SharedArbiterNicSlot*> SharedFileArbiter::Slot(const std::string& bdf) {
  auto full = FullBdf(bdf);
  if (!full.ok()) return full.status();
  for (uint32_t i = 0; i < layout_->nic_count; ++i) {
    SharedArbiterNicSlot& slot = NicSlots(layout_)[i];
    if (strncmp(slot.bdf, full->c_str(), kBdfSize) == 0) return &slot;
  }
  return absl::NotFoundError(absl::StrCat(path_, " has no ownership record for ", *full));
}

absl::StatusOr<v1::OwnershipRecord> SharedFileArbiter::Read(const std::string& bdf) {
  auto slot = Slot(bdf);
  if (!slot.ok()) return slot.status();
  return DecodeRecord(nodes_, (*slot)->ownership.load(std::memory_order_acquire));
}

absl::StatusOr<v1::OwnershipRecord> SharedFileArbiter::CompareAndSwap(
    const std::string& bdf, const v1::OwnershipRecord& expected,
    const v1::OwnershipRecord& desired) {
  auto slot = Slot(bdf);
  if (!slot.ok()) return slot.status();
  if (absl::Status valid = CheckCompareAndSwap(bdf, expected, desired); !valid.ok()) return valid;
  auto desired_word = EncodeRecord(nodes_, desired);
  if (!desired_word.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CAS of ", bdf, ": ", desired_word.status().message()));
  }
  std::atomic<uint64_t>& word = (*slot)->ownership;
  auto expected_word = EncodeRecord(nodes_, expected);
  if (!expected_word.ok()) return DecodeRecord(nodes_, word.load(std::memory_order_acquire));
  uint64_t current = *expected_word;
  if (word.compare_exchange_strong(current, *desired_word, std::memory_order_acq_rel,
                                   std::memory_order_acquire)) {
    return DecodeRecord(nodes_, *desired_word);
  }
  return DecodeRecord(nodes_, current);
}

absl::Status SharedFileArbiter::WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                                  const std::vector<v1::QueueRingState>& rings) {
  auto slot = Slot(bdf);
  if (!slot.ok()) return slot.status();
  if (rings.size() > kMaxQueues) {
    return absl::InvalidArgumentError(
        absl::StrCat(rings.size(), " ring states, the arbiter file holds ", kMaxQueues));
  }
  SharedArbiterNicSlot& s = **slot;
  // Take the seqlock: even -> odd. An odd value that does not move for
  // writer_takeover() belongs to a writer that died; take it over (odd ->
  // next odd), so that writer's release fails if it was only slow.
  uint32_t seq = s.rings_seq.load(std::memory_order_relaxed);
  uint32_t stuck = seq;
  absl::Time stuck_since = absl::Now();
  for (;;) {
    if (seq % 2 == 0) {
      if (s.rings_seq.compare_exchange_weak(seq, seq + 1, std::memory_order_acq_rel)) {
        ++seq;
        break;
      }
      continue;
    }
    if (seq != stuck) {
      stuck = seq;
      stuck_since = absl::Now();
    } else if (absl::Now() - stuck_since > writer_takeover()) {
      if (s.rings_seq.compare_exchange_strong(seq, seq + 2, std::memory_order_acq_rel)) {
        seq += 2;
        break;
      }
      continue;
    }
    std::this_thread::yield();
    seq = s.rings_seq.load(std::memory_order_relaxed);
  }
  // Holding the seqlock, the fence check and the write are one step.
  uint32_t held = seq;
  if (seq > 1) {  // rings were written before
    const Fence stored{s.rings_epoch.load(std::memory_order_relaxed),
                       s.rings_op_id.load(std::memory_order_relaxed)};
    absl::Status admitted = CheckFence(stored, fence, absl::StrCat("handoff rings write of ", bdf));
    if (!admitted.ok()) {
      s.rings_seq.compare_exchange_strong(held, seq + 1, std::memory_order_release);
      return admitted;
    }
  }
  std::atomic_thread_fence(std::memory_order_release);
  s.rings_epoch.store(fence.epoch, std::memory_order_relaxed);
  s.rings_op_id.store(fence.op_id, std::memory_order_relaxed);
  s.ring_count.store(static_cast<uint32_t>(rings.size()), std::memory_order_relaxed);
  for (size_t i = 0; i < rings.size(); ++i) {
    s.rings[i].queue.store(rings[i].queue(), std::memory_order_relaxed);
    s.rings[i].rx_next_to_clean.store(rings[i].rx_next_to_clean(), std::memory_order_relaxed);
    s.rings[i].rx_next_to_use.store(rings[i].rx_next_to_use(), std::memory_order_relaxed);
    s.rings[i].tx_next_to_clean.store(rings[i].tx_next_to_clean(), std::memory_order_relaxed);
    s.rings[i].tx_next_to_use.store(rings[i].tx_next_to_use(), std::memory_order_relaxed);
  }
  if (!s.rings_seq.compare_exchange_strong(held, seq + 1, std::memory_order_release)) {
    return absl::AbortedError(absl::StrCat(
        "handoff rings of ", bdf, ": another writer took the record over during this write"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::QueueRingState>> SharedFileArbiter::ReadHandoffRings(
    const std::string& bdf, uint64_t epoch) {
  auto slot = Slot(bdf);
  if (!slot.ok()) return slot.status();
  SharedArbiterNicSlot& s = **slot;
  const absl::Time deadline = absl::Now() + writer_takeover();
  for (;;) {
    const uint32_t before = s.rings_seq.load(std::memory_order_acquire);
    if (before % 2 == 0) {
      const uint64_t written_epoch = s.rings_epoch.load(std::memory_order_relaxed);
      const uint32_t count =
          std::min<uint32_t>(s.ring_count.load(std::memory_order_relaxed), kMaxQueues);
      std::vector<v1::QueueRingState> rings(count);
      for (uint32_t i = 0; i < count; ++i) {
        rings[i].set_queue(s.rings[i].queue.load(std::memory_order_relaxed));
        rings[i].set_rx_next_to_clean(s.rings[i].rx_next_to_clean.load(std::memory_order_relaxed));
        rings[i].set_rx_next_to_use(s.rings[i].rx_next_to_use.load(std::memory_order_relaxed));
        rings[i].set_tx_next_to_clean(s.rings[i].tx_next_to_clean.load(std::memory_order_relaxed));
        rings[i].set_tx_next_to_use(s.rings[i].tx_next_to_use.load(std::memory_order_relaxed));
      }
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.rings_seq.load(std::memory_order_relaxed) == before) {
        if (before == 0 || written_epoch != epoch) {
          return absl::NotFoundError(absl::StrCat("no handoff rings of ", bdf, " for epoch ", epoch,
                                                  before == 0 ? " (none written)" : ""));
        }
        return rings;
      }
    }
    if (absl::Now() > deadline) {
      return absl::UnavailableError(
          absl::StrCat("handoff rings of ", bdf, " stay in the middle of a write"));
    }
    std::this_thread::yield();
  }
}

absl::StatusOr<std::vector<std::pair<std::string, v1::OwnershipRecord>>>
SharedFileArbiter::ReadAll() {
  std::vector<std::pair<std::string, v1::OwnershipRecord>> out;
  for (uint32_t i = 0; i < layout_->nic_count; ++i) {
    SharedArbiterNicSlot& slot = NicSlots(layout_)[i];
    out.emplace_back(std::string(slot.bdf, strnlen(slot.bdf, kBdfSize)),
                     DecodeRecord(nodes_, slot.ownership.load(std::memory_order_acquire)));
  }
  return out;
}

}  // namespace platform
}  // namespace nichandover
