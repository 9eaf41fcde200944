#include "hook/client/hook_client.h"

#include <linux/genetlink.h>
#include <linux/netlink.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "hook/kmod/nichandover_genl.h"

namespace nichandover {
namespace hook {
namespace {

const char* CommandName(uint8_t cmd) {
  switch (cmd) {
    case NH_CMD_QUIESCE: return "quiesce";
    case NH_CMD_RESUME: return "resume";
    case NH_CMD_ATTACH: return "attach";
    case NH_CMD_RELEASE: return "release";
    case NH_CMD_READ_MSI: return "read-msi";
    case NH_CMD_REROUTE: return "reroute";
    case NH_CMD_STATUS: return "status";
    case NH_CMD_LIST: return "list";
    case NH_CMD_RESERVE: return "reserve";
    case NH_CMD_UNRESERVE: return "unreserve";
    case NH_CMD_RECLAIM: return "reclaim";
    case NH_CMD_ARM: return "arm";
    case NH_CMD_HANDOFF: return "handoff";
    case NH_CMD_EVENTS: return "events";
    default: return "?";
  }
}

absl::Status ErrorFromAck(const NetlinkAck& ack, absl::string_view what) {
  int err = -ack.error;
  std::string text = absl::StrCat(what, ": ");
  if (!ack.message.empty()) absl::StrAppend(&text, ack.message, " ");
  const char* name = strerrorname_np(err);
  absl::StrAppend(&text, "(", name != nullptr ? name : "errno", " ", err, ")");
  if (ack.missing_attr_type >= 0) {
    absl::StrAppend(&text, " missing attribute ", ack.missing_attr_type);
  }
  return absl::Status(ErrnoToStatusCode(err), text);
}

// The answers to request `seq`: its generic netlink replies (one, or a
// dump's many), or the error its ack (or the dump's NLMSG_DONE) carries,
// code from the errno and text from the extack.
absl::StatusOr<std::vector<GenlReply>> DecodeAnswers(const Bytes& data, uint32_t seq,
                                                     uint16_t family_id, absl::string_view what) {
  auto messages = SplitMessages(data);
  if (!messages.ok()) return messages.status();
  std::vector<GenlReply> replies;
  for (const NetlinkMessage& msg : *messages) {
    if (msg.seq != seq) continue;
    if (msg.type == NLMSG_ERROR || msg.type == NLMSG_DONE) {
      auto ack = msg.type == NLMSG_ERROR ? ParseAck(msg) : ParseDone(msg);
      if (!ack.ok()) return ack.status();
      if (ack->error != 0) return ErrorFromAck(*ack, what);
      break;
    }
    if (msg.type == family_id) {
      auto genl = ParseGenl(msg);
      if (!genl.ok()) return genl.status();
      replies.push_back(*std::move(genl));
    }
  }
  return replies;
}

// The one reply to a request that is not a dump.
absl::StatusOr<GenlReply> DecodeAnswer(const Bytes& data, uint32_t seq, uint16_t family_id,
                                       absl::string_view what) {
  auto replies = DecodeAnswers(data, seq, family_id, what);
  if (!replies.ok()) return replies.status();
  if (replies->empty()) {
    return absl::InternalError(absl::StrCat(what, ": acknowledged without a reply"));
  }
  return std::move(replies->back());
}

template <typename T>
absl::Status ReadOptional(const AttrSet& attrs, uint16_t type, T* out) {
  for (const auto& [t, attr] : attrs.attrs) {
    if (t != type) continue;
    absl::StatusOr<uint64_t> value;
    if constexpr (sizeof(T) == 8) {
      value = attr.U64();
    } else {
      auto v32 = attr.U32();
      if (!v32.ok()) return v32.status();
      value = *v32;
    }
    if (!value.ok()) return value.status();
    *out = static_cast<T>(*value);
    return absl::OkStatus();
  }
  return absl::OkStatus();
}

DeviceState StateFromWire(uint32_t state) {
  switch (state) {
    case NH_STATE_RUNNING: return DeviceState::kRunning;
    case NH_STATE_GATED: return DeviceState::kGated;
    case NH_STATE_QUIESCED: return DeviceState::kQuiesced;
    case NH_STATE_RELEASED: return DeviceState::kReleased;
    case NH_STATE_STANDBY: return DeviceState::kStandby;
    default: return DeviceState::kUnknown;
  }
}

HandoverMode HandoverModeFromWire(uint32_t mode) {
  switch (mode) {
    case NH_HANDOVER_MODE_CONTRACT: return HandoverMode::kContract;
    case NH_HANDOVER_MODE_COLD: return HandoverMode::kCold;
    default: return HandoverMode::kUnknown;
  }
}

MsiMode MsiModeFromWire(uint32_t mode) {
  switch (mode) {
    case NH_MSI_MODE_MSI: return MsiMode::kMsi;
    case NH_MSI_MODE_MSIX: return MsiMode::kMsix;
    default: return MsiMode::kNone;
  }
}

}  // namespace

const char* DeviceStateName(DeviceState state) {
  switch (state) {
    case DeviceState::kRunning: return "running";
    case DeviceState::kGated: return "gated";
    case DeviceState::kQuiesced: return "quiesced";
    case DeviceState::kReleased: return "released";
    case DeviceState::kStandby: return "standby";
    default: return "unknown";
  }
}

const char* HandoverModeName(HandoverMode mode) {
  switch (mode) {
    case HandoverMode::kContract: return "contract";
    case HandoverMode::kCold: return "cold";
    default: return "unknown";
  }
}

absl::StatusOr<DeviceStatus> DecodeStatus(const AttrSet& attrs) {
  DeviceStatus s;
  auto state = attrs.Get(NH_ATTR_STATE, "the device state");
  if (!state.ok()) return state.status();
  auto wire_state = state->U32();
  if (!wire_state.ok()) return wire_state.status();
  s.state = StateFromWire(*wire_state);
  uint32_t msi_mode = NH_MSI_MODE_NONE;
  uint32_t handover_mode = NH_HANDOVER_MODE_UNSPEC;
  for (absl::Status st : {
           ReadOptional(attrs, NH_ATTR_HANDOVER_MODE, &handover_mode),
           ReadOptional(attrs, NH_ATTR_QUEUE_COUNT, &s.queue_count),
           ReadOptional(attrs, NH_ATTR_EPOCH, &s.epoch),
           ReadOptional(attrs, NH_ATTR_OP_ID, &s.op_id),
           ReadOptional(attrs, NH_ATTR_IFINDEX, &s.ifindex),
           ReadOptional(attrs, NH_ATTR_MSI_MODE, &msi_mode),
           ReadOptional(attrs, NH_ATTR_HELD_XMITS, &s.held_xmits),
           ReadOptional(attrs, NH_ATTR_XMITS_WHILE_QUIESCED, &s.xmits_while_quiesced),
           ReadOptional(attrs, NH_ATTR_POLLS_WHILE_QUIESCED, &s.polls_while_quiesced),
           ReadOptional(attrs, NH_ATTR_DRAINED_TX_BYTES, &s.drained_tx_bytes),
           ReadOptional(attrs, NH_ATTR_DRAINED_TX_PACKETS, &s.drained_tx_packets),
           ReadOptional(attrs, NH_ATTR_DRAINED_RX_PACKETS, &s.drained_rx_packets),
           ReadOptional(attrs, NH_ATTR_BQL_INFLIGHT, &s.bql_inflight),
           ReadOptional(attrs, NH_ATTR_NAPI_COUNT, &s.napi_count),
           ReadOptional(attrs, NH_ATTR_VECTORS_MASKED, &s.vectors_masked),
           ReadOptional(attrs, NH_ATTR_QUIESCE_NS, &s.quiesce_ns),
           ReadOptional(attrs, NH_ATTR_ARMED_EPOCH, &s.armed_epoch),
           ReadOptional(attrs, NH_ATTR_DOORBELLS_IGNORED, &s.doorbells_ignored),
       }) {
    if (!st.ok()) return st;
  }
  s.msi_mode = MsiModeFromWire(msi_mode);
  s.handover_mode = HandoverModeFromWire(handover_mode);
  if (auto ifname = attrs.Get(NH_ATTR_IFNAME, "ifname"); ifname.ok()) s.ifname = ifname->String();
  if (auto commit = attrs.Get(NH_ATTR_KERNEL_COMMIT, "kernel commit"); commit.ok()) {
    auto flag = commit->U8();
    if (!flag.ok()) return flag.status();
    s.kernel_commit = *flag != 0;
  }
  if (auto rings = attrs.Get(NH_ATTR_RINGS, "rings"); rings.ok()) {
    auto decoded = DecodeRings(*rings);
    if (!decoded.ok()) return decoded.status();
    s.rings = *std::move(decoded);
  }
  return s;
}

absl::StatusOr<std::vector<RingState>> DecodeRings(const Attr& list) {
  auto items = ParseAttrs(list.payload());
  if (!items.ok()) return items.status();
  std::vector<RingState> out;
  for (const auto& [unused_type, item] : items->attrs) {
    auto fields = ParseAttrs(item.payload());
    if (!fields.ok()) return fields.status();
    RingState r;
    // A ring without its queue index cannot be put back anywhere.
    auto queue = fields->Get(NH_RING_ATTR_QUEUE, "a ring's queue index");
    if (!queue.ok()) return queue.status();
    auto queue_value = queue->U32();
    if (!queue_value.ok()) return queue_value.status();
    r.queue = *queue_value;
    for (absl::Status st : {
             ReadOptional(*fields, NH_RING_ATTR_RX_NEXT_TO_CLEAN, &r.rx_next_to_clean),
             ReadOptional(*fields, NH_RING_ATTR_RX_NEXT_TO_USE, &r.rx_next_to_use),
             ReadOptional(*fields, NH_RING_ATTR_TX_NEXT_TO_CLEAN, &r.tx_next_to_clean),
             ReadOptional(*fields, NH_RING_ATTR_TX_NEXT_TO_USE, &r.tx_next_to_use),
         }) {
      if (!st.ok()) return st;
    }
    out.push_back(r);
  }
  return out;
}

void PutRings(GenlMessageBuilder& m, const std::vector<RingState>& rings) {
  m.BeginNest(NH_ATTR_RINGS);
  for (size_t i = 0; i < rings.size(); ++i) {
    m.BeginNest(static_cast<uint16_t>(i + 1));
    m.PutU32(NH_RING_ATTR_QUEUE, rings[i].queue);
    m.PutU32(NH_RING_ATTR_RX_NEXT_TO_CLEAN, rings[i].rx_next_to_clean);
    m.PutU32(NH_RING_ATTR_RX_NEXT_TO_USE, rings[i].rx_next_to_use);
    m.PutU32(NH_RING_ATTR_TX_NEXT_TO_CLEAN, rings[i].tx_next_to_clean);
    m.PutU32(NH_RING_ATTR_TX_NEXT_TO_USE, rings[i].tx_next_to_use);
    m.EndNest();
  }
  m.EndNest();
}

absl::StatusOr<ListedDevice> DecodeListedDevice(const AttrSet& attrs) {
  ListedDevice d;
  auto id = attrs.Get(NH_ATTR_PCI_DEV, "the device's PCI name");
  if (!id.ok()) return id.status();
  d.id = id->String();
  auto status = DecodeStatus(attrs);
  if (!status.ok()) return status.status();
  d.status = *std::move(status);
  for (auto [type, field] : {std::pair{NH_ATTR_VENDOR_ID, &d.vendor_id},
                             std::pair{NH_ATTR_DEVICE_ID, &d.device_id}}) {
    if (auto attr = attrs.Get(type, "id"); attr.ok()) {
      auto value = attr->U16();
      if (!value.ok()) return value.status();
      *field = *value;
    }
  }
  if (auto driver = attrs.Get(NH_ATTR_DRIVER, "driver"); driver.ok()) d.driver = driver->String();
  if (auto config = attrs.Get(NH_ATTR_CONFIG, "config"); config.ok()) {
    d.config.assign(config->payload().begin(), config->payload().end());
  }
  return d;
}

absl::StatusOr<std::vector<MsiVector>> DecodeMsiList(const Attr& list) {
  auto items = ParseAttrs(list.payload());
  if (!items.ok()) return items.status();
  std::vector<MsiVector> out;
  for (const auto& [unused_type, item] : items->attrs) {
    auto fields = ParseAttrs(item.payload());
    if (!fields.ok()) return fields.status();
    MsiVector v;
    auto address = fields->Get(NH_MSI_ATTR_ADDRESS, "a vector's address");
    if (!address.ok()) return address.status();
    auto address_value = address->U64();
    if (!address_value.ok()) return address_value.status();
    v.address = *address_value;
    for (absl::Status st : {
             ReadOptional(*fields, NH_MSI_ATTR_INDEX, &v.index),
             ReadOptional(*fields, NH_MSI_ATTR_DATA, &v.data),
             ReadOptional(*fields, NH_MSI_ATTR_IRQ, &v.irq),
             ReadOptional(*fields, NH_MSI_ATTR_CPU, &v.cpu),
         }) {
      if (!st.ok()) return st;
    }
    if (auto masked = fields->Get(NH_MSI_ATTR_MASKED, "mask"); masked.ok()) {
      auto bit = masked->U8();
      if (!bit.ok()) return bit.status();
      v.masked = *bit != 0;
    }
    out.push_back(v);
  }
  return out;
}

HookClient::HookClient(std::unique_ptr<Transport> transport) : transport_(std::move(transport)) {}

absl::StatusOr<uint16_t> HookClient::FamilyId() {
  if (family_id_ != 0) return family_id_;
  uint32_t seq = ++seq_;
  GenlMessageBuilder request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, seq);
  request.PutString(CTRL_ATTR_FAMILY_NAME, NH_GENL_NAME);
  auto answer = transport_->Exchange(request.Finish());
  if (!answer.ok()) return answer.status();
  auto reply = DecodeAnswer(*answer, seq, GENL_ID_CTRL, "resolving the nichandover family");
  if (absl::IsNotFound(reply.status())) {
    return absl::UnavailableError(absl::StrCat(
        "generic netlink family \"", NH_GENL_NAME,
        "\" is not registered: is the nichandover_hook module loaded? (", reply.status().message(),
        ")"));
  }
  if (!reply.ok()) return reply.status();
  auto id = reply->attrs.Get(CTRL_ATTR_FAMILY_ID, "the family id");
  if (!id.ok()) return id.status();
  if (id->payload().size() < sizeof(uint16_t)) {
    return absl::InternalError("family id attribute too short");
  }
  uint16_t family_id;
  std::memcpy(&family_id, id->payload().data(), sizeof(family_id));
  family_id_ = family_id;
  return family_id_;
}

template <typename Fill>
absl::StatusOr<HookClient::Reply> HookClient::Call(uint8_t cmd, const std::string& bdf,
                                                   Fill fill) {
  auto family = FamilyId();
  if (!family.ok()) return family.status();
  uint32_t seq = ++seq_;
  GenlMessageBuilder request(*family, cmd, NH_GENL_VERSION, seq);
  request.PutString(NH_ATTR_PCI_DEV, bdf);
  fill(request);
  auto answer = transport_->Exchange(request.Finish());
  if (!answer.ok()) return answer.status();
  Reply reply;
  reply.raw = *std::move(answer);  // a vector's move keeps its buffer: spans stay valid
  auto genl = DecodeAnswer(reply.raw, seq, *family, absl::StrCat(CommandName(cmd), " ", bdf));
  if (!genl.ok()) return genl.status();
  reply.genl = *std::move(genl);
  auto status = DecodeStatus(reply.genl.attrs);
  if (!status.ok()) return status.status();
  reply.status = *std::move(status);
  return reply;
}

void PutFence(GenlMessageBuilder& m, const Fence& fence) {
  m.PutU64(NH_ATTR_EPOCH, fence.epoch);
  // Left out for op_id 0: the module then fences by the epoch alone, as
  // before operation ids (what tools that speak for no daemon send).
  if (fence.op_id != 0) m.PutU64(NH_ATTR_OP_ID, fence.op_id);
}

absl::StatusOr<DeviceStatus> HookClient::Quiesce(const std::string& bdf, const Fence& fence,
                                                 absl::Duration timeout) {
  int64_t timeout_ms = absl::ToInt64Milliseconds(timeout);
  if (timeout_ms < 1 || timeout_ms > NH_TIMEOUT_MS_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("quiesce timeout must be 1 ms .. ", NH_TIMEOUT_MS_MAX, " ms"));
  }
  auto reply = Call(NH_CMD_QUIESCE, bdf, [&](GenlMessageBuilder& m) {
    PutFence(m, fence);
    m.PutU32(NH_ATTR_TIMEOUT_MS, static_cast<uint32_t>(timeout_ms));
  });
  if (!reply.ok()) return reply.status();
  return reply->status;
}

absl::StatusOr<DeviceStatus> HookClient::CallWithFence(uint8_t cmd, const std::string& bdf,
                                                       const Fence& fence) {
  auto reply = Call(cmd, bdf, [&](GenlMessageBuilder& m) { PutFence(m, fence); });
  if (!reply.ok()) return reply.status();
  return reply->status;
}

absl::StatusOr<DeviceStatus> HookClient::Resume(const std::string& bdf, const Fence& fence) {
  return CallWithFence(NH_CMD_RESUME, bdf, fence);
}

absl::StatusOr<DeviceStatus> HookClient::Release(const std::string& bdf, const Fence& fence) {
  return CallWithFence(NH_CMD_RELEASE, bdf, fence);
}

absl::StatusOr<DeviceStatus> HookClient::Unreserve(const std::string& bdf, const Fence& fence) {
  return CallWithFence(NH_CMD_UNRESERVE, bdf, fence);
}

absl::StatusOr<DeviceStatus> HookClient::Reclaim(const std::string& bdf, const Fence& fence) {
  return CallWithFence(NH_CMD_RECLAIM, bdf, fence);
}

absl::StatusOr<DeviceStatus> HookClient::Attach(const std::string& bdf, const Fence& fence,
                                                const std::vector<RingState>& rings) {
  auto reply = Call(NH_CMD_ATTACH, bdf, [&](GenlMessageBuilder& m) {
    PutFence(m, fence);
    if (!rings.empty()) PutRings(m, rings);
  });
  if (!reply.ok()) return reply.status();
  return reply->status;
}

absl::StatusOr<std::vector<MsiVector>> HookClient::Reserve(const std::string& bdf,
                                                           const Fence& fence, uint32_t count) {
  if (count == 0) return absl::InvalidArgumentError("reserve needs at least one vector");
  auto reply = Call(NH_CMD_RESERVE, bdf, [&](GenlMessageBuilder& m) {
    PutFence(m, fence);
    m.PutU32(NH_ATTR_VECTOR_COUNT, count);
  });
  if (!reply.ok()) return reply.status();
  auto list = reply->genl.attrs.Get(NH_ATTR_MSI_LIST, "the reserved messages");
  if (!list.ok()) return list.status();
  auto messages = DecodeMsiList(*list);
  if (!messages.ok()) return messages.status();
  if (messages->size() != count) {
    return absl::InternalError(absl::StrCat("reserve ", bdf, ": asked for ", count,
                                            " vectors, the module answered ", messages->size(),
                                            " messages"));
  }
  return messages;
}

absl::StatusOr<std::vector<ListedDevice>> HookClient::List() {
  auto family = FamilyId();
  if (!family.ok()) return family.status();
  uint32_t seq = ++seq_;
  GenlMessageBuilder request(*family, NH_CMD_LIST, NH_GENL_VERSION, seq, NLM_F_DUMP);
  auto answer = transport_->Exchange(request.Finish());
  if (!answer.ok()) return answer.status();
  auto replies = DecodeAnswers(*answer, seq, *family, "list");
  if (!replies.ok()) return replies.status();
  std::vector<ListedDevice> out;
  for (const GenlReply& reply : *replies) {
    auto device = DecodeListedDevice(reply.attrs);
    if (!device.ok()) {
      return absl::Status(device.status().code(),
                          absl::StrCat("list: ", device.status().message()));
    }
    out.push_back(*std::move(device));
  }
  return out;
}

absl::StatusOr<DeviceStatus> HookClient::Status(const std::string& bdf) {
  auto reply = Call(NH_CMD_STATUS, bdf, [](GenlMessageBuilder&) {});
  if (!reply.ok()) return reply.status();
  return reply->status;
}

absl::StatusOr<std::vector<MsiVector>> HookClient::ReadMsi(const std::string& bdf) {
  auto reply = Call(NH_CMD_READ_MSI, bdf, [](GenlMessageBuilder&) {});
  if (!reply.ok()) return reply.status();
  auto list = reply->genl.attrs.Get(NH_ATTR_MSI_LIST, "the MSI list");
  if (!list.ok()) return list.status();
  return DecodeMsiList(*list);
}

namespace {

absl::StatusOr<RerouteResult> DecodeReroute(const GenlReply& genl, DeviceStatus status) {
  RerouteResult result;
  result.status = std::move(status);
  auto previous = genl.attrs.Get(NH_ATTR_MSI_PREVIOUS, "the replaced messages");
  if (!previous.ok()) return previous.status();
  auto current = genl.attrs.Get(NH_ATTR_MSI_LIST, "the messages read back");
  if (!current.ok()) return current.status();
  auto prev = DecodeMsiList(*previous);
  if (!prev.ok()) return prev.status();
  auto cur = DecodeMsiList(*current);
  if (!cur.ok()) return cur.status();
  result.previous = *std::move(prev);
  result.current = *std::move(cur);
  return result;
}

}  // namespace

absl::StatusOr<RerouteResult> HookClient::RerouteToCpu(const std::string& bdf, const Fence& fence,
                                                       uint32_t cpu) {
  auto reply = Call(NH_CMD_REROUTE, bdf, [&](GenlMessageBuilder& m) {
    PutFence(m, fence);
    m.PutU32(NH_ATTR_REROUTE_MODE, NH_REROUTE_AFFINITY);
    m.PutU32(NH_ATTR_TARGET_CPU, cpu);
  });
  if (!reply.ok()) return reply.status();
  return DecodeReroute(reply->genl, reply->status);
}

absl::StatusOr<RerouteResult> HookClient::RerouteRaw(const std::string& bdf, const Fence& fence,
                                                     const std::vector<MsiWrite>& messages) {
  if (messages.empty()) return absl::InvalidArgumentError("raw reroute needs at least one message");
  auto reply = Call(NH_CMD_REROUTE, bdf, [&](GenlMessageBuilder& m) {
    PutFence(m, fence);
    m.PutU32(NH_ATTR_REROUTE_MODE, NH_REROUTE_RAW);
    PutMsiWrites(m, NH_ATTR_MSI_LIST, messages);
  });
  if (!reply.ok()) return reply.status();
  return DecodeReroute(reply->genl, reply->status);
}

void PutMsiWrites(GenlMessageBuilder& m, uint16_t type, const std::vector<MsiWrite>& messages) {
  m.BeginNest(type);
  for (size_t i = 0; i < messages.size(); ++i) {
    m.BeginNest(static_cast<uint16_t>(i + 1));
    m.PutU32(NH_MSI_ATTR_INDEX, messages[i].index);
    m.PutU64(NH_MSI_ATTR_ADDRESS, messages[i].address);
    m.PutU32(NH_MSI_ATTR_DATA, messages[i].data);
    m.EndNest();
  }
  m.EndNest();
}

absl::StatusOr<DeviceStatus> HookClient::Arm(const std::string& bdf, const Fence& fence,
                                             uint64_t handoff_word, uint64_t active_word) {
  auto reply = Call(NH_CMD_ARM, bdf, [&](GenlMessageBuilder& m) {
    PutFence(m, fence);
    m.PutU64(NH_ATTR_RECORD_EXPECTED, handoff_word);
    m.PutU64(NH_ATTR_RECORD_DESIRED, active_word);
  });
  if (!reply.ok()) return reply.status();
  return reply->status;
}

absl::StatusOr<HandoffReply> HookClient::Handoff(const std::string& bdf, const Fence& fence,
                                                 uint64_t expected_word, uint64_t desired_word,
                                                 const std::vector<MsiWrite>& messages,
                                                 absl::Duration drain_timeout) {
  int64_t timeout_ms = absl::ToInt64Milliseconds(drain_timeout);
  if (timeout_ms < 1 || timeout_ms > NH_TIMEOUT_MS_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("handoff drain timeout must be 1 ms .. ", NH_TIMEOUT_MS_MAX, " ms"));
  }
  if (messages.empty()) return absl::InvalidArgumentError("handoff needs the target's messages");
  auto reply = Call(NH_CMD_HANDOFF, bdf, [&](GenlMessageBuilder& m) {
    PutFence(m, fence);
    m.PutU32(NH_ATTR_TIMEOUT_MS, static_cast<uint32_t>(timeout_ms));
    m.PutU64(NH_ATTR_RECORD_EXPECTED, expected_word);
    m.PutU64(NH_ATTR_RECORD_DESIRED, desired_word);
    PutMsiWrites(m, NH_ATTR_MSI_LIST, messages);
  });
  if (!reply.ok()) return reply.status();
  HandoffReply out;
  out.status = reply->status;
  uint32_t stage = NH_HANDOFF_NOTHING;
  for (absl::Status st : {ReadOptional(reply->genl.attrs, NH_ATTR_HANDOFF_STAGE, &stage),
                          ReadOptional(reply->genl.attrs, NH_ATTR_RECORD, &out.record)}) {
    if (!st.ok()) return st;
  }
  if (!reply->genl.attrs.Has(NH_ATTR_HANDOFF_STAGE) || !reply->genl.attrs.Has(NH_ATTR_RECORD) ||
      stage < NH_HANDOFF_RINGS_WRITTEN || stage > NH_HANDOFF_DOORBELL_RUNG) {
    return absl::InternalError(absl::StrCat("handoff ", bdf,
                                            ": the module acknowledged it without reaching the "
                                            "record (stage ",
                                            stage, ")"));
  }
  out.stage = static_cast<HandoffStage>(stage);
  auto previous = reply->genl.attrs.Get(NH_ATTR_MSI_PREVIOUS, "the replaced messages");
  if (!previous.ok()) return previous.status();
  auto decoded = DecodeMsiList(*previous);
  if (!decoded.ok()) return decoded.status();
  out.previous = *std::move(decoded);
  return out;
}

absl::StatusOr<EventLog> DecodeEventLog(const AttrSet& attrs) {
  EventLog log;
  auto newest = attrs.Get(NH_ATTR_EVENT_SEQ, "the newest event's number");
  if (!newest.ok()) return newest.status();
  auto newest_value = newest->U64();
  if (!newest_value.ok()) return newest_value.status();
  log.newest_seq = *newest_value;
  auto list = attrs.Get(NH_ATTR_EVENTS, "the events");
  if (!list.ok()) return list.status();
  auto items = ParseAttrs(list->payload());
  if (!items.ok()) return items.status();
  for (const auto& [unused_type, item] : items->attrs) {
    auto fields = ParseAttrs(item.payload());
    if (!fields.ok()) return fields.status();
    KernelEvent e;
    uint32_t kind = NH_EVENT_UNSPEC;
    for (absl::Status st : {
             ReadOptional(*fields, NH_EVENT_ATTR_SEQ, &e.seq),
             ReadOptional(*fields, NH_EVENT_ATTR_KIND, &kind),
             ReadOptional(*fields, NH_EVENT_ATTR_EPOCH, &e.epoch),
             ReadOptional(*fields, NH_EVENT_ATTR_RECORD, &e.record),
         }) {
      if (!st.ok()) return st;
    }
    e.kind = kind == NH_EVENT_COMMITTED       ? KernelEvent::Kind::kCommitted
             : kind == NH_EVENT_NOT_COMMITTED ? KernelEvent::Kind::kNotCommitted
                                              : KernelEvent::Kind::kUnknown;
    if (auto dev = fields->Get(NH_EVENT_ATTR_PCI_DEV, "dev"); dev.ok()) e.dev = dev->String();
    if (auto why = fields->Get(NH_EVENT_ATTR_REASON, "reason"); why.ok()) e.reason = why->String();
    log.events.push_back(std::move(e));
  }
  return log;
}

absl::StatusOr<EventLog> HookClient::Events(uint64_t after_seq, absl::Duration wait) {
  auto family = FamilyId();
  if (!family.ok()) return family.status();
  const int64_t wait_ms =
      std::min<int64_t>(absl::ToInt64Milliseconds(std::max(wait, absl::ZeroDuration())),
                        NH_TIMEOUT_MS_MAX);
  uint32_t seq = ++seq_;
  GenlMessageBuilder request(*family, NH_CMD_EVENTS, NH_GENL_VERSION, seq);
  request.PutU64(NH_ATTR_EVENT_SEQ, after_seq);
  if (wait_ms > 0) request.PutU32(NH_ATTR_TIMEOUT_MS, static_cast<uint32_t>(wait_ms));
  auto answer = transport_->Exchange(request.Finish());
  if (!answer.ok()) return answer.status();
  auto genl = DecodeAnswer(*answer, seq, *family, "events");
  if (!genl.ok()) return genl.status();
  return DecodeEventLog(genl->attrs);
}

}  // namespace hook
}  // namespace nichandover
