// Netlink framing with no I/O: building generic netlink requests and taking
// replies apart, so that every byte the client sends or reads can be tested
// without a kernel.
#ifndef NICHANDOVER_HOOK_CLIENT_NETLINK_CODEC_H_
#define NICHANDOVER_HOOK_CLIENT_NETLINK_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace nichandover {
namespace hook {

using Bytes = std::vector<uint8_t>;

// Builds one generic netlink message: nlmsghdr, genlmsghdr, attributes.
class GenlMessageBuilder {
 public:
  // Every request asks for an ack; `extra_flags` adds e.g. NLM_F_DUMP.
  GenlMessageBuilder(uint16_t family_id, uint8_t cmd, uint8_t version, uint32_t seq,
                     uint16_t extra_flags = 0);

  void PutU8(uint16_t type, uint8_t value);
  void PutU16(uint16_t type, uint16_t value);
  void PutU32(uint16_t type, uint32_t value);
  void PutU64(uint16_t type, uint64_t value);
  // NUL-terminated, as NLA_NUL_STRING wants.
  void PutString(uint16_t type, absl::string_view value);
  // NLA_BINARY: the bytes as they are.
  void PutBytes(uint16_t type, absl::Span<const uint8_t> value);
  // Nests may nest; each BeginNest needs its EndNest. NLA_F_NESTED is set:
  // the kernel's strict validation requires it.
  void BeginNest(uint16_t type);
  void EndNest();

  // The message with its length fields filled in.
  Bytes Finish();

 private:
  void Put(uint16_t type, const void* data, size_t len);

  Bytes buf_;
  std::vector<size_t> open_nests_;
};

// One attribute's payload, read with bounds checks.
class Attr {
 public:
  Attr() = default;
  explicit Attr(absl::Span<const uint8_t> payload) : payload_(payload) {}

  absl::StatusOr<uint8_t> U8() const;
  absl::StatusOr<uint16_t> U16() const;
  absl::StatusOr<uint32_t> U32() const;
  absl::StatusOr<uint64_t> U64() const;
  // Up to the first NUL.
  std::string String() const;
  absl::Span<const uint8_t> payload() const { return payload_; }

 private:
  absl::Span<const uint8_t> payload_;
};

// Attributes in arrival order, types with the flag bits stripped. A nested
// array is just such a run: its items in the order the kernel wrote them.
struct AttrSet {
  std::vector<std::pair<uint16_t, Attr>> attrs;

  bool Has(uint16_t type) const;
  // The first occurrence; NOT_FOUND naming `what` when absent.
  absl::StatusOr<Attr> Get(uint16_t type, absl::string_view what) const;
};

// Splits a run of attributes; INVALID_ARGUMENT if one overruns the buffer.
absl::StatusOr<AttrSet> ParseAttrs(absl::Span<const uint8_t> data);

// One netlink message of a receive buffer.
struct NetlinkMessage {
  uint16_t type = 0;
  uint16_t flags = 0;
  uint32_t seq = 0;
  absl::Span<const uint8_t> payload;  // after the nlmsghdr
};

// Splits a receive buffer into messages; INVALID_ARGUMENT on a bad length.
absl::StatusOr<std::vector<NetlinkMessage>> SplitMessages(absl::Span<const uint8_t> data);

// What an NLMSG_ERROR message says.
struct NetlinkAck {
  int error = 0;              // 0 for a plain ack, else a negative errno
  std::string message;        // extack message, "" if none
  int missing_attr_type = -1; // extack: type of a missing required attribute
};

absl::StatusOr<NetlinkAck> ParseAck(const NetlinkMessage& msg);

// What the NLMSG_DONE that ends a dump says: its int is 0 or the negative
// errno that cut the dump short, followed (NLM_F_ACK_TLVS) by extack TLVs.
absl::StatusOr<NetlinkAck> ParseDone(const NetlinkMessage& msg);

// A generic netlink message's command and attributes.
struct GenlReply {
  uint8_t cmd = 0;
  AttrSet attrs;
};

absl::StatusOr<GenlReply> ParseGenl(const NetlinkMessage& msg);

// The status code a hook error maps to (see docs/hook.md for the table).
absl::StatusCode ErrnoToStatusCode(int errno_value);

}  // namespace hook
}  // namespace nichandover

#endif  // NICHANDOVER_HOOK_CLIENT_NETLINK_CODEC_H_
