#include "daemon/platform/linux/fake_hook_module.h"

#include <linux/genetlink.h>
#include <linux/netlink.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>

#include "gtest/gtest.h"
#include "hook/client/test_kernel_messages.h"
#include "hook/kmod/nichandover_genl.h"

namespace nichandover {
namespace platform {
namespace linux_backend {
namespace testing {
namespace {

using hook::Bytes;
using hook::testing::Concat;
using hook::testing::KernelAck;
using hook::testing::KernelDone;

constexpr uint16_t kFamilyId = 0x1d;
constexpr uint64_t kRemappable = 1u << 4;

uint32_t WireState(hook::DeviceState state) {
  switch (state) {
    case hook::DeviceState::kRunning:
      return NH_STATE_RUNNING;
    case hook::DeviceState::kGated:
      return NH_STATE_GATED;
    case hook::DeviceState::kQuiesced:
      return NH_STATE_QUIESCED;
    case hook::DeviceState::kReleased:
      return NH_STATE_RELEASED;
    case hook::DeviceState::kStandby:
      return NH_STATE_STANDBY;
    case hook::DeviceState::kUnknown:
      break;
  }
  return NH_STATE_UNSPEC;
}

uint32_t WireMsiMode(hook::MsiMode mode) {
  switch (mode) {
    case hook::MsiMode::kMsi:
      return NH_MSI_MODE_MSI;
    case hook::MsiMode::kMsix:
      return NH_MSI_MODE_MSIX;
    case hook::MsiMode::kNone:
      break;
  }
  return NH_MSI_MODE_NONE;
}

uint32_t WireHandoverMode(hook::HandoverMode mode) {
  switch (mode) {
    case hook::HandoverMode::kContract:
      return NH_HANDOVER_MODE_CONTRACT;
    case hook::HandoverMode::kCold:
      return NH_HANDOVER_MODE_COLD;
    case hook::HandoverMode::kUnknown:
      break;
  }
  return NH_HANDOVER_MODE_UNSPEC;
}

bool IsContract(const FakeFunction& f) { return f.handover_mode == hook::HandoverMode::kContract; }

// This node runs (or holds gated) the device: the states an owner is in.
bool OwnedHere(const FakeFunction& f) {
  return f.state == hook::DeviceState::kRunning || f.state == hook::DeviceState::kGated ||
         f.state == hook::DeviceState::kQuiesced;
}

void PutStatus(hook::GenlMessageBuilder& m, const FakeFunction& f) {
  m.PutU32(NH_ATTR_STATE, WireState(f.state));
  m.PutU32(NH_ATTR_HANDOVER_MODE, WireHandoverMode(f.handover_mode));
  m.PutU32(NH_ATTR_QUEUE_COUNT, f.queue_count);
  m.PutU64(NH_ATTR_EPOCH, f.max_epoch);
  m.PutU64(NH_ATTR_OP_ID, f.max_op_id);
  m.PutU32(NH_ATTR_MSI_MODE, WireMsiMode(f.msi_mode));
  m.PutString(NH_ATTR_IFNAME, f.ifname);
  m.PutU32(NH_ATTR_IFINDEX, f.ifindex);
  m.PutU64(NH_ATTR_BQL_INFLIGHT, 0);
  m.PutU64(NH_ATTR_HELD_XMITS, f.counters.held_xmits);
  m.PutU64(NH_ATTR_XMITS_WHILE_QUIESCED, f.counters.xmits_while_quiesced);
  m.PutU64(NH_ATTR_POLLS_WHILE_QUIESCED, f.counters.polls_while_quiesced);
  m.PutU64(NH_ATTR_DRAINED_TX_BYTES, f.counters.drained_tx_bytes);
  m.PutU64(NH_ATTR_DRAINED_TX_PACKETS, f.counters.drained_tx_packets);
  m.PutU64(NH_ATTR_DRAINED_RX_PACKETS, f.counters.drained_rx_packets);
  m.PutU32(NH_ATTR_NAPI_COUNT, f.counters.napi_count);
  m.PutU32(NH_ATTR_VECTORS_MASKED, f.counters.vectors_masked);
  m.PutU64(NH_ATTR_QUIESCE_NS, f.counters.quiesce_ns);
  if (IsContract(f)) {
    m.PutU8(NH_ATTR_KERNEL_COMMIT, f.kernel_commit ? 1 : 0);
    m.PutU64(NH_ATTR_ARMED_EPOCH, f.armed_epoch);
    m.PutU64(NH_ATTR_DOORBELLS_IGNORED, f.doorbells_ignored);
  }
}

void PutVectors(hook::GenlMessageBuilder& m, uint16_t type,
                const std::vector<hook::MsiVector>& vectors) {
  m.BeginNest(type);
  for (size_t i = 0; i < vectors.size(); ++i) {
    const hook::MsiVector& v = vectors[i];
    m.BeginNest(static_cast<uint16_t>(i + 1));
    m.PutU32(NH_MSI_ATTR_INDEX, v.index);
    m.PutU64(NH_MSI_ATTR_ADDRESS, v.address);
    m.PutU32(NH_MSI_ATTR_DATA, v.data);
    m.PutU8(NH_MSI_ATTR_MASKED, v.masked ? 1 : 0);
    m.PutU32(NH_MSI_ATTR_IRQ, v.irq);
    m.PutU32(NH_MSI_ATTR_CPU, v.cpu);
    m.EndNest();
  }
  m.EndNest();
}

void SetMasked(FakeFunction& f, bool masked) {
  for (hook::MsiVector& v : f.vectors) v.masked = masked;
}

// The request's attributes, as nh_genl.c reads them.
absl::StatusOr<FakeRequest> ReadRequest(const hook::GenlReply& genl) {
  FakeRequest r;
  r.cmd = genl.cmd;
  if (auto dev = genl.attrs.Get(NH_ATTR_PCI_DEV, "dev"); dev.ok()) r.dev = dev->String();
  if (auto epoch = genl.attrs.Get(NH_ATTR_EPOCH, "epoch"); epoch.ok()) {
    auto value = epoch->U64();
    if (!value.ok()) return value.status();
    r.epoch = *value;
  }
  if (auto op_id = genl.attrs.Get(NH_ATTR_OP_ID, "op id"); op_id.ok()) {
    auto value = op_id->U64();
    if (!value.ok()) return value.status();
    r.op_id = *value;
  }
  for (auto [type, field] : {std::pair{NH_ATTR_RECORD_EXPECTED, &r.record_expected},
                             std::pair{NH_ATTR_RECORD_DESIRED, &r.record_desired},
                             std::pair{NH_ATTR_EVENT_SEQ, &r.event_seq}}) {
    if (auto attr = genl.attrs.Get(type, "u64"); attr.ok()) {
      auto value = attr->U64();
      if (!value.ok()) return value.status();
      *field = *value;
    }
  }
  for (auto [type, field] : {std::pair{NH_ATTR_TIMEOUT_MS, &r.timeout_ms},
                             std::pair{NH_ATTR_REROUTE_MODE, &r.reroute_mode},
                             std::pair{NH_ATTR_VECTOR_COUNT, &r.vector_count}}) {
    if (auto attr = genl.attrs.Get(type, "u32"); attr.ok()) {
      auto value = attr->U32();
      if (!value.ok()) return value.status();
      *field = *value;
    }
  }
  if (auto list = genl.attrs.Get(NH_ATTR_MSI_LIST, "list"); list.ok()) {
    auto vectors = hook::DecodeMsiList(*list);
    if (!vectors.ok()) return vectors.status();
    for (const hook::MsiVector& v : *vectors) r.messages.push_back({v.index, v.address, v.data});
  }
  if (auto rings = genl.attrs.Get(NH_ATTR_RINGS, "rings"); rings.ok()) {
    auto decoded = hook::DecodeRings(*rings);
    if (!decoded.ok()) return decoded.status();
    r.rings = *std::move(decoded);
  }
  return r;
}

class Connection : public hook::Transport {
 public:
  explicit Connection(FakeHookModule* module) : module_(module) {}
  absl::StatusOr<Bytes> Exchange(const Bytes& request) override {
    return module_->Exchange(request);
  }

 private:
  FakeHookModule* module_;
};

}  // namespace

struct FakeHookModule::Answer {
  int error = 0;
  std::string extack;
  bool msi_list = false;                                 // NH_ATTR_MSI_LIST: the vectors now
  std::optional<std::vector<hook::MsiVector>> previous;  // NH_ATTR_MSI_PREVIOUS
  // NH_ATTR_MSI_LIST as reported, when it is not what the function holds.
  std::optional<std::vector<hook::MsiVector>> reported_list;
  bool rings = false;  // NH_ATTR_RINGS: the driver's ring state (QUIESCE)
  // HANDOFF: NH_ATTR_HANDOFF_STAGE and NH_ATTR_RECORD.
  std::optional<uint32_t> stage;
  uint64_t record = 0;
};

FakeFunction& FakeHookModule::function(const std::string& bdf) {
  auto it = functions_.find(bdf);
  if (it == functions_.end()) {
    ADD_FAILURE() << "the fake module has no function " << bdf;
    std::abort();
  }
  return it->second;
}

FakeFunction FakeHookModule::Snapshot(const std::string& bdf) {
  absl::MutexLock lock(&mu_);
  return function(bdf);
}

TransportFactory FakeHookModule::Factory() {
  return [this]() -> absl::StatusOr<std::unique_ptr<hook::Transport>> {
    absl::MutexLock lock(&mu_);
    ++connections_;
    return std::make_unique<Connection>(this);
  };
}

absl::StatusOr<Bytes> FakeHookModule::Exchange(const Bytes& request) {
  absl::StatusOr<Bytes> answer;
  std::optional<std::pair<std::string, uint64_t>> ring;
  std::function<void(const std::string&, uint64_t)> doorbell;
  {
    absl::MutexLock lock(&mu_);
    answer = ExchangeLocked(request);
    ring = std::exchange(pending_doorbell_, std::nullopt);
    doorbell = doorbell_;
  }
  // The target's kernel runs on its own: not under this module's lock.
  if (ring && doorbell) doorbell(ring->first, ring->second);
  return answer;
}

absl::StatusOr<Bytes> FakeHookModule::ExchangeLocked(const Bytes& request) {
  auto messages = hook::SplitMessages(request);
  if (!messages.ok()) return messages.status();
  const hook::NetlinkMessage& msg = messages->at(0);
  auto genl = hook::ParseGenl(msg);
  if (!genl.ok()) return genl.status();
  if (msg.type == GENL_ID_CTRL) {
    auto name = genl->attrs.Get(CTRL_ATTR_FAMILY_NAME, "name");
    if (!loaded_ || !name.ok() || name->String() != NH_GENL_NAME) {
      return KernelAck(msg.seq, -ENOENT);
    }
    hook::GenlMessageBuilder reply(GENL_ID_CTRL, CTRL_CMD_NEWFAMILY, 2, msg.seq);
    reply.PutU16(CTRL_ATTR_FAMILY_ID, kFamilyId);
    reply.PutString(CTRL_ATTR_FAMILY_NAME, NH_GENL_NAME);
    return Concat(reply.Finish(), KernelAck(msg.seq, 0));
  }
  if (!loaded_ || msg.type != kFamilyId) return KernelAck(msg.seq, -EOPNOTSUPP);
  auto request_attrs = ReadRequest(*genl);
  if (!request_attrs.ok()) return KernelAck(msg.seq, -EINVAL, "malformed attribute");
  request_attrs->dump = (msg.flags & NLM_F_DUMP) != 0;
  requests_.push_back(*request_attrs);
  const FakeRequest& r = requests_.back();
  // genetlink runs a command with a .dumpit only as a dump, and LIST has no
  // .doit: a plain LIST request is not supported.
  if (r.cmd == NH_CMD_LIST) {
    if (!r.dump) return KernelAck(msg.seq, -EOPNOTSUPP);
    return List(msg.seq);
  }
  if (r.cmd == NH_CMD_EVENTS) return Events(r, msg.seq);

  auto found = functions_.find(r.dev);
  if (found == functions_.end()) return KernelAck(msg.seq, -ENODEV, "no such PCI function");
  FakeFunction& f = found->second;
  Answer answer = Handle(r, f);
  if (answer.error != 0) return KernelAck(msg.seq, -answer.error, answer.extack);
  hook::GenlMessageBuilder reply(kFamilyId, r.cmd, NH_GENL_VERSION, msg.seq);
  PutStatus(reply, f);
  if (answer.previous) PutVectors(reply, NH_ATTR_MSI_PREVIOUS, *answer.previous);
  if (answer.msi_list) {
    PutVectors(reply, NH_ATTR_MSI_LIST, answer.reported_list ? *answer.reported_list : f.vectors);
  }
  if (answer.rings) hook::PutRings(reply, f.rings);
  if (answer.stage) {
    reply.PutU32(NH_ATTR_HANDOFF_STAGE, *answer.stage);
    reply.PutU64(NH_ATTR_RECORD, answer.record);
  }
  return Concat(reply.Finish(), KernelAck(msg.seq, 0));
}

Bytes FakeHookModule::Events(const FakeRequest& r, uint32_t seq) {
  uint64_t after = r.event_seq.value_or(0);
  auto newest = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) -> uint64_t {
    return events_.empty() ? 0 : events_.back().seq;
  };
  if (r.timeout_ms && newest() == after) {
    // As wait_event_interruptible_timeout: the lock is free meanwhile.
    auto logged = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return newest() != after; };
    mu_.AwaitWithTimeout(absl::Condition(&logged), absl::Milliseconds(*r.timeout_ms));
  }
  if (after > newest()) after = 0;  // a reader of an earlier module load
  hook::GenlMessageBuilder reply(kFamilyId, NH_CMD_EVENTS, NH_GENL_VERSION, seq);
  constexpr size_t kPerReply = 16;  // as nh_genl.c
  std::vector<const hook::KernelEvent*> shown;
  for (const hook::KernelEvent& e : events_) {
    if (e.seq > after && shown.size() < kPerReply) shown.push_back(&e);
  }
  reply.PutU64(NH_ATTR_EVENT_SEQ, shown.empty() ? newest() : shown.back()->seq);
  reply.BeginNest(NH_ATTR_EVENTS);
  for (size_t i = 0; i < shown.size(); ++i) {
    const hook::KernelEvent& e = *shown[i];
    reply.BeginNest(static_cast<uint16_t>(i + 1));
    reply.PutU64(NH_EVENT_ATTR_SEQ, e.seq);
    reply.PutU32(NH_EVENT_ATTR_KIND, e.kind == hook::KernelEvent::Kind::kCommitted
                                         ? NH_EVENT_COMMITTED
                                         : NH_EVENT_NOT_COMMITTED);
    reply.PutString(NH_EVENT_ATTR_PCI_DEV, e.dev);
    reply.PutU64(NH_EVENT_ATTR_EPOCH, e.epoch);
    reply.PutU64(NH_EVENT_ATTR_RECORD, e.record);
    reply.PutString(NH_EVENT_ATTR_REASON, e.reason);
    reply.EndNest();
  }
  reply.EndNest();
  return Concat(reply.Finish(), KernelAck(seq, 0));
}

void FakeHookModule::Emit(const std::string& bdf, hook::KernelEvent::Kind kind, uint64_t epoch,
                          uint64_t record, std::string reason) {
  hook::KernelEvent e;
  e.seq = events_.size() + 1;
  e.kind = kind;
  e.dev = bdf;
  e.epoch = epoch;
  e.record = record;
  e.reason = std::move(reason);
  events_.push_back(std::move(e));
}

void FakeHookModule::RingDoorbell(const std::string& bdf, uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  auto found = functions_.find(bdf);
  if (found == functions_.end() || !found->second.kernel_commit) return;  // no handler
  FakeFunction& f = found->second;
  auto ignored = [&](uint64_t at, uint64_t record, const char* why) {
    ++f.doorbells_ignored;
    Emit(bdf, hook::KernelEvent::Kind::kNotCommitted, at, record, why);
  };
  if (f.armed_epoch == 0) return ignored(epoch, 0, "not armed");
  if (epoch != f.armed_epoch) {
    return ignored(epoch, 0, "doorbell for another epoch than the armed one");
  }
  std::vector<hook::RingState> rings;
  bool have_rings;
  {
    absl::MutexLock record_lock(&f.record->mu);
    if (f.record->word != f.armed_handoff) {
      return ignored(epoch, f.record->word, "the record is not the armed HANDOFF");
    }
    f.record->word = f.armed_active;
    have_rings = f.record->rings_epoch == epoch;
    rings = f.record->rings;
  }
  f.max_epoch = epoch;
  f.max_op_id = f.armed_op_id;
  f.armed_epoch = 0;
  if (!have_rings) {
    Emit(bdf, hook::KernelEvent::Kind::kNotCommitted, epoch, f.armed_active,
         "record taken, but no ring state beside it");
    return;
  }
  f.rings = rings;
  if (!f.reserved.empty()) {
    f.vectors = f.reserved;
    f.reserved.clear();
  }
  f.state = hook::DeviceState::kRunning;
  SetMasked(f, false);
  Emit(bdf, hook::KernelEvent::Kind::kCommitted, epoch, f.armed_active, "");
}

Bytes FakeHookModule::List(uint32_t seq) const {
  Bytes out;
  for (const auto& [id, f] : functions_) {
    hook::GenlMessageBuilder item(kFamilyId, NH_CMD_LIST, NH_GENL_VERSION, seq);
    item.PutString(NH_ATTR_PCI_DEV, id);
    PutStatus(item, f);
    item.PutU16(NH_ATTR_VENDOR_ID, f.vendor_id);
    item.PutU16(NH_ATTR_DEVICE_ID, f.device_id);
    item.PutString(NH_ATTR_DRIVER, f.driver);
    if (IsContract(f) && !f.config.empty()) item.PutBytes(NH_ATTR_CONFIG, f.config);
    Bytes b = item.Finish();
    uint16_t flags = NLM_F_MULTI;
    std::memcpy(b.data() + offsetof(nlmsghdr, nlmsg_flags), &flags, sizeof(flags));
    out = Concat(out, b);
  }
  return Concat(out, KernelDone(seq));
}

FakeHookModule::Answer FakeHookModule::Handle(const FakeRequest& r, FakeFunction& f) {
  if (r.cmd == NH_CMD_STATUS) return {};
  if (r.cmd == NH_CMD_READ_MSI) return {0, "", /*msi_list=*/true, {}};
  if (!r.epoch) return {EINVAL, "missing attribute: epoch"};
  if (*r.epoch < f.max_epoch)
    return {ESTALE, "epoch is lower than the highest seen for this device"};
  if (r.cmd == NH_CMD_RECLAIM && *r.epoch == f.max_epoch) {
    return {ESTALE, "reclaim needs an epoch above the highest seen for this device"};
  }
  if (r.op_id && *r.epoch == f.max_epoch && *r.op_id < f.max_op_id) {
    return {ESTALE, "operation id is lower than the highest accepted at this epoch (a late call)"};
  }
  const uint64_t held_epoch = f.max_epoch;
  const uint64_t held_op_id = f.max_op_id;
  if (*r.epoch > f.max_epoch) {
    f.max_op_id = r.op_id.value_or(0);
  } else if (r.op_id) {
    f.max_op_id = *r.op_id;
  }
  f.max_epoch = *r.epoch;
  Answer answer = Change(r, f, held_epoch);
  // A change refused at the held epoch leaves its operation id too.
  if (answer.error != 0 && f.max_epoch == held_epoch) f.max_op_id = held_op_id;
  return answer;
}

FakeHookModule::Answer FakeHookModule::Change(const FakeRequest& r, FakeFunction& f,
                                              uint64_t held_epoch) {
  const bool released = f.state == hook::DeviceState::kReleased;
  const bool standby = f.state == hook::DeviceState::kStandby;
  switch (r.cmd) {
    case NH_CMD_QUIESCE: {
      if (released) return {EBUSY, "released to another node"};
      if (standby) return {EBUSY, "on standby: another node owns the device"};
      f.counters = hook::DeviceStatus();
      f.counters.held_xmits = f.xmits_to_hold;
      f.counters.drained_tx_bytes = f.drain_tx_bytes;
      f.counters.drained_tx_packets = f.drain_tx_packets;
      f.counters.drained_rx_packets = f.drain_rx_packets;
      if (f.drain_times_out) {
        // A contract driver undoes its quiesce on a timeout; the cold path
        // leaves the gate closed.
        if (!IsContract(f)) f.state = hook::DeviceState::kGated;
        return {ETIMEDOUT, "TX completions did not drain before the deadline"};
      }
      f.counters.xmits_while_quiesced = f.leaked_xmits;
      f.counters.polls_while_quiesced = f.leaked_polls;
      f.counters.napi_count = 1;
      f.counters.vectors_masked = static_cast<uint32_t>(f.vectors.size());
      f.counters.quiesce_ns = 1500000;
      f.state = hook::DeviceState::kQuiesced;
      SetMasked(f, true);
      Answer answer;
      answer.rings = IsContract(f);
      return answer;
    }
    case NH_CMD_RESUME:
      if (released) return {EBUSY, "released to another node: ATTACH with the new owner's epoch"};
      if (standby) return {EBUSY, "on standby: another node owns the device"};
      f.state = hook::DeviceState::kRunning;
      SetMasked(f, false);
      return {};
    case NH_CMD_ATTACH:
      f.armed_epoch = 0;
      return Attach(r, f, held_epoch);
    case NH_CMD_RELEASE:
      if (f.state != hook::DeviceState::kQuiesced && !released) {
        return {EBUSY, "not quiesced: QUIESCE before RELEASE"};
      }
      f.state = hook::DeviceState::kReleased;
      return {};
    case NH_CMD_REROUTE:
      return Reroute(r, f, held_epoch);
    case NH_CMD_RESERVE:
      return Reserve(r, f);
    case NH_CMD_UNRESERVE:
      f.free_vectors += static_cast<uint32_t>(f.reserved.size());
      f.reserved.clear();
      f.armed_epoch = 0;
      return {};
    case NH_CMD_ARM:
      return Arm(r, f);
    case NH_CMD_HANDOFF:
      return Handoff(r, f, held_epoch);
    case NH_CMD_RECLAIM:
      if (!released && !standby) return {EBUSY, "this node owns the device: nothing to reclaim"};
      f.armed_epoch = 0;
      f.state = hook::DeviceState::kQuiesced;
      SetMasked(f, true);
      return {};
    default:
      return {EOPNOTSUPP, "unknown command"};
  }
}

FakeHookModule::Answer FakeHookModule::Attach(const FakeRequest& r, FakeFunction& f,
                                              uint64_t held_epoch) {
  if (f.state == hook::DeviceState::kRunning && IsContract(f)) {
    // A retried ATTACH (its daemon restarted) finds it done.
    if (*r.epoch == held_epoch) return {};
    f.max_epoch = held_epoch;
    return {EBUSY, "the device runs on this node already"};
  }
  if (r.rings) {
    if (!IsContract(f)) {
      return {EINVAL, "ring state given for a cold-mode device: its driver sets its rings up"};
    }
    for (const hook::RingState& ring : *r.rings) {
      if (ring.queue >= f.queue_count) return {EINVAL, "ring state for a queue the device lacks"};
    }
    f.rings = *r.rings;
  }
  // The reserved vectors are the device's from now on: the source wrote
  // their messages into the table.
  if (!f.reserved.empty()) {
    f.vectors = f.reserved;
    f.reserved.clear();
  }
  f.state = hook::DeviceState::kRunning;
  SetMasked(f, false);
  return {};
}

FakeHookModule::Answer FakeHookModule::Reserve(const FakeRequest& r, FakeFunction& f) {
  if (!IsContract(f)) {
    return {EOPNOTSUPP,
            "cold-mode device: its driver has no handover contract to reserve vectors through"};
  }
  if (!r.vector_count || *r.vector_count == 0) return {EINVAL, "missing attribute: vector count"};
  if (*r.vector_count > f.msix_entries) {
    return {EINVAL, "more vectors than the device has MSI-X entries"};
  }
  if (OwnedHere(f)) return {EBUSY, "this node runs the device: nothing to reserve"};
  // A new reservation replaces the old one.
  uint32_t available = f.free_vectors + static_cast<uint32_t>(f.reserved.size());
  if (*r.vector_count > available) return {ENOSPC, "too few free vectors on this node"};
  f.free_vectors = available - *r.vector_count;
  f.reserved.clear();
  f.armed_epoch = 0;
  f.reserved_epoch = *r.epoch;
  for (uint32_t i = 0; i < *r.vector_count; ++i) {
    hook::MsiVector v;
    v.index = i;
    v.address = 0xfee00000u | (uint64_t{f.reserve_apic_id} << 12);
    v.data = f.first_reserved_vector + i;
    v.masked = true;
    f.reserved.push_back(v);
  }
  Answer answer;
  answer.msi_list = true;
  answer.reported_list = f.reserved;
  return answer;
}

FakeHookModule::Answer FakeHookModule::Arm(const FakeRequest& r, FakeFunction& f) {
  if (!IsContract(f) || !f.kernel_commit) {
    return {EOPNOTSUPP, "the device's driver has no kernel commit path (struct nh_commit_ops)"};
  }
  if (!r.record_expected || !r.record_desired) return {EINVAL, "missing attribute: record"};
  if (OwnedHere(f)) return {EBUSY, "the device runs or is held on this node: nothing to arm for"};
  if (*r.epoch == 0 || *r.record_expected == *r.record_desired) {
    return {EINVAL, "ARM needs an epoch and two different record words"};
  }
  if (f.reserved.empty() || f.reserved_epoch != *r.epoch) {
    return {EBUSY, "no RESERVE at this epoch: reserve the vectors first"};
  }
  f.armed_epoch = *r.epoch;
  f.armed_op_id = r.op_id.value_or(0);
  f.armed_handoff = *r.record_expected;
  f.armed_active = *r.record_desired;
  return {};
}

FakeHookModule::Answer FakeHookModule::Handoff(const FakeRequest& r, FakeFunction& f,
                                               uint64_t held_epoch) {
  if (!IsContract(f) || !f.kernel_commit) {
    return {EOPNOTSUPP, "the device's driver has no kernel commit path (struct nh_commit_ops)"};
  }
  if (!r.record_expected || !r.record_desired) return {EINVAL, "missing attribute: record"};
  if (r.messages.empty()) return {EINVAL, "missing attribute: MSI list"};
  if (f.state != hook::DeviceState::kRunning && f.state != hook::DeviceState::kQuiesced) {
    f.max_epoch = held_epoch;
    return {EBUSY, "the device is not running on this node"};
  }
  if (*r.record_expected == *r.record_desired) {
    return {EINVAL, "HANDOFF needs two different record words"};
  }
  Answer answer;
  if (f.state == hook::DeviceState::kRunning) {
    FakeRequest quiesce = r;
    quiesce.cmd = NH_CMD_QUIESCE;
    Answer quiesced = Change(quiesce, f, held_epoch);
    if (quiesced.error != 0) return quiesced;
  }
  answer.rings = true;
  FakeRequest reroute = r;
  reroute.cmd = NH_CMD_REROUTE;
  reroute.reroute_mode = NH_REROUTE_RAW;
  Answer rerouted = Reroute(reroute, f, held_epoch);
  if (rerouted.error != 0) return rerouted;  // quiesced: the caller reconciles
  answer.previous = rerouted.previous;
  answer.stage = NH_HANDOFF_REROUTED;
  {
    absl::MutexLock record_lock(&f.record->mu);
    FakeMachineRecord& m = *f.record;
    if (m.rings_epoch != 0 && (*r.epoch < m.rings_epoch ||
                               (*r.epoch == m.rings_epoch && r.op_id.value_or(0) < m.rings_op_id))) {
      return {ESTALE, "the rings could not be written beside the record"};
    }
    m.rings_epoch = *r.epoch;
    m.rings_op_id = r.op_id.value_or(0);
    m.rings = f.rings;
    answer.stage = NH_HANDOFF_RINGS_WRITTEN;
    answer.record = m.word;
    if (m.word != *r.record_expected) return answer;  // lost: stays quiesced here
    m.word = *r.record_desired;
  }
  answer.stage = NH_HANDOFF_HANDED_OFF;
  if (!f.doorbell_unreachable) {
    pending_doorbell_ = {r.dev, *r.epoch};
    answer.stage = NH_HANDOFF_DOORBELL_RUNG;
  }
  f.state = hook::DeviceState::kReleased;
  return answer;
}

FakeHookModule::Answer FakeHookModule::Reroute(const FakeRequest& r, FakeFunction& f,
                                               uint64_t held_epoch) {
  if (!r.reroute_mode) return {EINVAL, "missing attribute: reroute mode"};
  if (*r.reroute_mode != NH_REROUTE_RAW) return {EOPNOTSUPP, "fake module: raw mode only"};
  // A quiesced device is this node's: a higher epoch takes its hold over.
  // A released one only at the epoch it was released at.
  if (f.state != hook::DeviceState::kQuiesced && f.state != hook::DeviceState::kReleased) {
    f.max_epoch = held_epoch;
    return {EBUSY, "raw REROUTE needs a device quiesced or released here"};
  }
  if (f.state == hook::DeviceState::kReleased && *r.epoch != held_epoch) {
    f.max_epoch = held_epoch;
    return {ESTALE, "released at another epoch"};
  }
  if (f.msi_mode == hook::MsiMode::kNone) {
    return {EOPNOTSUPP, "function has neither MSI nor MSI-X enabled"};
  }
  if (r.messages.empty()) return {EINVAL, "missing attribute: MSI list"};
  std::vector<hook::MsiVector*> targets;
  for (const hook::MsiWrite& w : r.messages) {
    hook::MsiVector* target = nullptr;
    for (hook::MsiVector& v : f.vectors) {
      if (v.index == w.index) target = &v;
    }
    if (target == nullptr) return {ENOENT, "no vector with that index"};
    if (f.msi_mode != hook::MsiMode::kMsix) {
      return {EOPNOTSUPP, "raw rewrite needs an MSI-X table entry; use the affinity mode for MSI"};
    }
    if (f.interrupt_remapping || ((target->address | w.address) & kRemappable)) {
      return {EOPNOTSUPP, "interrupt remapping is on: the IRTE must be edited, not the device"};
    }
    if ((w.address >> 32) != 0 || (w.address & 0xfff00000u) != 0xfee00000u) {
      return {EINVAL, "address is outside the 0xfee00000 MSI window"};
    }
    targets.push_back(target);
  }
  Answer answer;
  answer.previous = f.vectors;
  for (size_t i = 0; i < targets.size(); ++i) {
    targets[i]->address = r.messages[i].address;
    targets[i]->data = r.messages[i].data;
  }
  answer.msi_list = true;
  if (f.misreport_read_back) {
    // Reported, not stored: the reply lies about what the device holds.
    answer.reported_list = f.vectors;
    for (hook::MsiVector& v : *answer.reported_list) v.data ^= 0x1;
  }
  return answer;
}

}  // namespace testing
}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
