// Builds what the kernel sends back, for the client's tests.
#ifndef NICHANDOVER_HOOK_CLIENT_TEST_KERNEL_MESSAGES_H_
#define NICHANDOVER_HOOK_CLIENT_TEST_KERNEL_MESSAGES_H_

#include <linux/netlink.h>

#include <cstring>
#include <string>

#include "hook/client/netlink_codec.h"

namespace nichandover {
namespace hook {
namespace testing {

// An NLMSG_ERROR for request `seq`: an ack when `error` is 0. With `capped`
// false the original request header and `echoed_payload` bytes are echoed, as
// the kernel does without NETLINK_CAP_ACK.
inline Bytes KernelAck(uint32_t seq, int error, const std::string& extack_message = "",
                       int missing_type = -1, bool capped = true, size_t echoed_payload = 0) {
  Bytes tlvs;
  auto put_tlv = [&tlvs](uint16_t type, const void* data, size_t len) {
    nlattr nla{};
    nla.nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
    nla.nla_type = type;
    size_t at = tlvs.size();
    tlvs.resize(at + NLA_ALIGN(NLA_HDRLEN + len), 0);
    std::memcpy(tlvs.data() + at, &nla, sizeof(nla));
    std::memcpy(tlvs.data() + at + NLA_HDRLEN, data, len);
  };
  if (!extack_message.empty()) {
    put_tlv(NLMSGERR_ATTR_MSG, extack_message.c_str(), extack_message.size() + 1);
  }
  if (missing_type >= 0) {
    uint32_t type = static_cast<uint32_t>(missing_type);
    put_tlv(NLMSGERR_ATTR_MISS_TYPE, &type, sizeof(type));
  }
  nlmsgerr err{};
  err.error = error;
  err.msg.nlmsg_len = static_cast<uint32_t>(NLMSG_HDRLEN + echoed_payload);
  err.msg.nlmsg_seq = seq;
  Bytes body(sizeof(err) + (capped ? 0 : NLMSG_ALIGN(echoed_payload)), 0xee);
  std::memcpy(body.data(), &err, sizeof(err));
  body.insert(body.end(), tlvs.begin(), tlvs.end());

  nlmsghdr nlh{};
  nlh.nlmsg_len = static_cast<uint32_t>(NLMSG_HDRLEN + body.size());
  nlh.nlmsg_type = NLMSG_ERROR;
  nlh.nlmsg_seq = seq;
  if (capped) nlh.nlmsg_flags |= NLM_F_CAPPED;
  if (!tlvs.empty()) nlh.nlmsg_flags |= NLM_F_ACK_TLVS;
  Bytes out(NLMSG_HDRLEN);
  std::memcpy(out.data(), &nlh, sizeof(nlh));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// The NLMSG_DONE that ends dump `seq`: `error` 0, or the negative errno that
// cut it short with its extack message.
inline Bytes KernelDone(uint32_t seq, int error = 0, const std::string& extack_message = "") {
  Bytes body(sizeof(int));
  std::memcpy(body.data(), &error, sizeof(error));
  if (!extack_message.empty()) {
    nlattr nla{};
    nla.nla_len = static_cast<uint16_t>(NLA_HDRLEN + extack_message.size() + 1);
    nla.nla_type = NLMSGERR_ATTR_MSG;
    size_t at = body.size();
    body.resize(at + NLA_ALIGN(nla.nla_len), 0);
    std::memcpy(body.data() + at, &nla, sizeof(nla));
    std::memcpy(body.data() + at + NLA_HDRLEN, extack_message.c_str(), extack_message.size());
  }
  nlmsghdr nlh{};
  nlh.nlmsg_len = static_cast<uint32_t>(NLMSG_HDRLEN + body.size());
  nlh.nlmsg_type = NLMSG_DONE;
  nlh.nlmsg_flags = NLM_F_MULTI | (extack_message.empty() ? 0 : NLM_F_ACK_TLVS);
  nlh.nlmsg_seq = seq;
  Bytes out(NLMSG_HDRLEN);
  std::memcpy(out.data(), &nlh, sizeof(nlh));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

inline Bytes Concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace testing
}  // namespace hook
}  // namespace nichandover

#endif  // NICHANDOVER_HOOK_CLIENT_TEST_KERNEL_MESSAGES_H_
