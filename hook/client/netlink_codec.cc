#include "hook/client/netlink_codec.h"

#include <linux/genetlink.h>
#include <linux/netlink.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace nichandover {
namespace hook {
namespace {

constexpr size_t Align4(size_t n) { return (n + 3) & ~size_t{3}; }

template <typename T>
T Load(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(value));  // attributes need not be aligned
  return value;
}

template <typename T>
absl::StatusOr<T> LoadExact(absl::Span<const uint8_t> payload, const char* what) {
  if (payload.size() < sizeof(T)) {
    return absl::InvalidArgumentError(
        absl::StrCat("netlink attribute too short for ", what, ": ", payload.size(), " bytes"));
  }
  return Load<T>(payload.data());
}

// The extack TLVs from `tlv_at` on (message, missing attribute type).
absl::Status ReadExtack(absl::Span<const uint8_t> payload, size_t tlv_at, NetlinkAck& ack) {
  if (tlv_at > payload.size()) return absl::OkStatus();
  auto tlvs = ParseAttrs(payload.subspan(tlv_at));
  if (!tlvs.ok()) return tlvs.status();
  if (auto text = tlvs->Get(NLMSGERR_ATTR_MSG, "message"); text.ok()) {
    ack.message = text->String();
  }
  if (auto missing = tlvs->Get(NLMSGERR_ATTR_MISS_TYPE, "missing type"); missing.ok()) {
    if (auto type = missing->U32(); type.ok()) ack.missing_attr_type = static_cast<int>(*type);
  }
  return absl::OkStatus();
}

}  // namespace

GenlMessageBuilder::GenlMessageBuilder(uint16_t family_id, uint8_t cmd, uint8_t version,
                                       uint32_t seq, uint16_t extra_flags) {
  nlmsghdr nlh{};
  nlh.nlmsg_type = family_id;
  nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | extra_flags;
  nlh.nlmsg_seq = seq;
  genlmsghdr genl{};
  genl.cmd = cmd;
  genl.version = version;
  buf_.resize(NLMSG_HDRLEN + GENL_HDRLEN);
  std::memcpy(buf_.data(), &nlh, sizeof(nlh));
  std::memcpy(buf_.data() + NLMSG_HDRLEN, &genl, sizeof(genl));
}

void GenlMessageBuilder::Put(uint16_t type, const void* data, size_t len) {
  nlattr nla{};
  nla.nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
  nla.nla_type = type;
  size_t at = buf_.size();
  buf_.resize(at + Align4(NLA_HDRLEN + len), 0);
  std::memcpy(buf_.data() + at, &nla, sizeof(nla));
  if (len > 0) std::memcpy(buf_.data() + at + NLA_HDRLEN, data, len);
}

void GenlMessageBuilder::PutU8(uint16_t type, uint8_t value) { Put(type, &value, sizeof(value)); }
void GenlMessageBuilder::PutU16(uint16_t type, uint16_t value) { Put(type, &value, sizeof(value)); }
void GenlMessageBuilder::PutU32(uint16_t type, uint32_t value) { Put(type, &value, sizeof(value)); }
void GenlMessageBuilder::PutU64(uint16_t type, uint64_t value) { Put(type, &value, sizeof(value)); }

void GenlMessageBuilder::PutString(uint16_t type, absl::string_view value) {
  std::string with_nul(value);
  Put(type, with_nul.c_str(), with_nul.size() + 1);
}

void GenlMessageBuilder::PutBytes(uint16_t type, absl::Span<const uint8_t> value) {
  Put(type, value.data(), value.size());
}

void GenlMessageBuilder::BeginNest(uint16_t type) {
  open_nests_.push_back(buf_.size());
  Put(type | NLA_F_NESTED, nullptr, 0);
}

void GenlMessageBuilder::EndNest() {
  size_t at = open_nests_.back();
  open_nests_.pop_back();
  uint16_t len = static_cast<uint16_t>(buf_.size() - at);
  std::memcpy(buf_.data() + at + offsetof(nlattr, nla_len), &len, sizeof(len));
}

Bytes GenlMessageBuilder::Finish() {
  uint32_t len = static_cast<uint32_t>(buf_.size());
  std::memcpy(buf_.data() + offsetof(nlmsghdr, nlmsg_len), &len, sizeof(len));
  return buf_;
}

absl::StatusOr<uint8_t> Attr::U8() const { return LoadExact<uint8_t>(payload_, "u8"); }
absl::StatusOr<uint16_t> Attr::U16() const { return LoadExact<uint16_t>(payload_, "u16"); }
absl::StatusOr<uint32_t> Attr::U32() const { return LoadExact<uint32_t>(payload_, "u32"); }
absl::StatusOr<uint64_t> Attr::U64() const { return LoadExact<uint64_t>(payload_, "u64"); }

std::string Attr::String() const {
  const char* begin = reinterpret_cast<const char*>(payload_.data());
  return std::string(begin, strnlen(begin, payload_.size()));
}

bool AttrSet::Has(uint16_t type) const {
  for (const auto& [t, attr] : attrs) {
    if (t == type) return true;
  }
  return false;
}

absl::StatusOr<Attr> AttrSet::Get(uint16_t type, absl::string_view what) const {
  for (const auto& [t, attr] : attrs) {
    if (t == type) return attr;
  }
  return absl::NotFoundError(absl::StrCat("reply lacks ", what));
}

absl::StatusOr<AttrSet> ParseAttrs(absl::Span<const uint8_t> data) {
  AttrSet set;
  size_t at = 0;
  while (at + NLA_HDRLEN <= data.size()) {
    auto nla = Load<nlattr>(data.data() + at);
    if (nla.nla_len < NLA_HDRLEN || at + nla.nla_len > data.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("netlink attribute at offset ", at, " overruns its message"));
    }
    set.attrs.emplace_back(nla.nla_type & NLA_TYPE_MASK,
                           Attr(data.subspan(at + NLA_HDRLEN, nla.nla_len - NLA_HDRLEN)));
    at += Align4(nla.nla_len);
  }
  return set;
}

absl::StatusOr<std::vector<NetlinkMessage>> SplitMessages(absl::Span<const uint8_t> data) {
  std::vector<NetlinkMessage> out;
  size_t at = 0;
  while (at + NLMSG_HDRLEN <= data.size()) {
    auto nlh = Load<nlmsghdr>(data.data() + at);
    if (nlh.nlmsg_len < NLMSG_HDRLEN || at + nlh.nlmsg_len > data.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("netlink message at offset ", at, " has a bad length ", nlh.nlmsg_len));
    }
    NetlinkMessage msg;
    msg.type = nlh.nlmsg_type;
    msg.flags = nlh.nlmsg_flags;
    msg.seq = nlh.nlmsg_seq;
    msg.payload = data.subspan(at + NLMSG_HDRLEN, nlh.nlmsg_len - NLMSG_HDRLEN);
    out.push_back(msg);
    at += NLMSG_ALIGN(nlh.nlmsg_len);
  }
  return out;
}

absl::StatusOr<NetlinkAck> ParseAck(const NetlinkMessage& msg) {
  if (msg.type != NLMSG_ERROR || msg.payload.size() < sizeof(nlmsgerr)) {
    return absl::InvalidArgumentError("not a netlink error/ack message");
  }
  auto err = Load<nlmsgerr>(msg.payload.data());
  NetlinkAck ack;
  ack.error = err.error;
  if (!(msg.flags & NLM_F_ACK_TLVS)) return ack;
  // The TLVs follow the echoed request, which is only its header when capped.
  size_t tlv_at = sizeof(nlmsgerr);
  if (!(msg.flags & NLM_F_CAPPED)) {
    tlv_at += err.msg.nlmsg_len >= NLMSG_HDRLEN ? NLMSG_ALIGN(err.msg.nlmsg_len) - NLMSG_HDRLEN : 0;
  }
  if (absl::Status s = ReadExtack(msg.payload, tlv_at, ack); !s.ok()) return s;
  return ack;
}

absl::StatusOr<NetlinkAck> ParseDone(const NetlinkMessage& msg) {
  if (msg.type != NLMSG_DONE || msg.payload.size() < sizeof(int)) {
    return absl::InvalidArgumentError("not a netlink done message");
  }
  NetlinkAck done;
  done.error = Load<int>(msg.payload.data());
  if (!(msg.flags & NLM_F_ACK_TLVS)) return done;
  if (absl::Status s = ReadExtack(msg.payload, sizeof(int), done); !s.ok()) return s;
  return done;
}

absl::StatusOr<GenlReply> ParseGenl(const NetlinkMessage& msg) {
  if (msg.payload.size() < GENL_HDRLEN) {
    return absl::InvalidArgumentError("generic netlink message shorter than its header");
  }
  GenlReply reply;
  reply.cmd = Load<genlmsghdr>(msg.payload.data()).cmd;
  auto attrs = ParseAttrs(msg.payload.subspan(GENL_HDRLEN));
  if (!attrs.ok()) return attrs.status();
  reply.attrs = std::move(*attrs);
  return reply;
}

absl::StatusCode ErrnoToStatusCode(int errno_value) {
  switch (errno_value) {
    case EINVAL:
    case ERANGE:
      return absl::StatusCode::kInvalidArgument;
    case ENODEV:
    case ENOENT:
      return absl::StatusCode::kNotFound;
    case ETIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    // A stale epoch, a device in the wrong state, a released device, a
    // routing the module cannot write (interrupt remapping): fix the state
    // first, a retry of the same call will not help.
    case ESTALE:
    case ENETDOWN:
    case EBUSY:
    case EOPNOTSUPP:
      return absl::StatusCode::kFailedPrecondition;
    case EPERM:  // the family's commands need CAP_NET_ADMIN
    case EACCES:
      return absl::StatusCode::kPermissionDenied;
    case EAGAIN:
      return absl::StatusCode::kUnavailable;
    case ENOSPC:
    case E2BIG:
    case ENOMEM:
      return absl::StatusCode::kResourceExhausted;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace hook
}  // namespace nichandover
