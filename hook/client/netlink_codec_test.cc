#include "hook/client/netlink_codec.h"

#include <linux/genetlink.h>
#include <linux/netlink.h>

#include <cerrno>
#include <cstring>

#include "gtest/gtest.h"
#include "hook/client/test_kernel_messages.h"

namespace nichandover {
namespace hook {
namespace {

using testing::KernelAck;
using testing::KernelDone;

template <typename T>
T At(const Bytes& b, size_t offset) {
  T v;
  std::memcpy(&v, b.data() + offset, sizeof(v));
  return v;
}

TEST(GenlMessageBuilderTest, HeadersCarryLengthFamilyCommandAndAckRequest) {
  GenlMessageBuilder m(0x1d, 3, 1, 42);
  m.PutU32(5, 7);
  Bytes b = m.Finish();
  ASSERT_EQ(b.size(), NLMSG_HDRLEN + GENL_HDRLEN + 8u);
  EXPECT_EQ(At<uint32_t>(b, 0), b.size());
  EXPECT_EQ(At<uint16_t>(b, 4), 0x1d);
  EXPECT_EQ(At<uint16_t>(b, 6), NLM_F_REQUEST | NLM_F_ACK);
  EXPECT_EQ(At<uint32_t>(b, 8), 42u);
  EXPECT_EQ(b[NLMSG_HDRLEN], 3);      // cmd
  EXPECT_EQ(b[NLMSG_HDRLEN + 1], 1);  // version
  EXPECT_EQ(At<uint16_t>(b, NLMSG_HDRLEN + 2), 0);  // reserved: the kernel checks it
}

TEST(GenlMessageBuilderTest, StringsAreNulTerminatedAndPadded) {
  GenlMessageBuilder m(0x1d, 1, 1, 1);
  m.PutString(2, "0000:00:02.0");  // 12 chars + NUL = 13, padded to 16
  m.PutU64(3, 0x1122334455667788ull);
  Bytes b = m.Finish();
  size_t attr = NLMSG_HDRLEN + GENL_HDRLEN;
  EXPECT_EQ(At<uint16_t>(b, attr), NLA_HDRLEN + 13);
  EXPECT_EQ(b[attr + NLA_HDRLEN + 12], 0);
  size_t next = attr + NLA_HDRLEN + 16;
  EXPECT_EQ(At<uint16_t>(b, next + 2), 3);
  EXPECT_EQ(At<uint64_t>(b, next + NLA_HDRLEN), 0x1122334455667788ull);
  EXPECT_EQ(b.size(), next + NLA_HDRLEN + 8);
}

TEST(GenlMessageBuilderTest, NestsAreFlaggedAndSpanTheirChildren) {
  GenlMessageBuilder m(0x1d, 6, 1, 1);
  m.BeginNest(20);
  m.BeginNest(1);
  m.PutU32(2, 9);
  m.EndNest();
  m.EndNest();
  Bytes b = m.Finish();
  size_t outer = NLMSG_HDRLEN + GENL_HDRLEN;
  EXPECT_EQ(At<uint16_t>(b, outer + 2), 20 | NLA_F_NESTED);
  EXPECT_EQ(At<uint16_t>(b, outer), 3 * NLA_HDRLEN + 4);
  EXPECT_EQ(At<uint16_t>(b, outer + NLA_HDRLEN + 2), 1 | NLA_F_NESTED);
  EXPECT_EQ(At<uint16_t>(b, outer + NLA_HDRLEN), 2 * NLA_HDRLEN + 4);

  auto messages = SplitMessages(b);
  ASSERT_TRUE(messages.ok());
  ASSERT_EQ(messages->size(), 1u);
  auto genl = ParseGenl((*messages)[0]);
  ASSERT_TRUE(genl.ok()) << genl.status();
  EXPECT_EQ(genl->cmd, 6);
  auto list = genl->attrs.Get(20, "list");  // flag stripped
  ASSERT_TRUE(list.ok());
  auto items = ParseAttrs(list->payload());
  ASSERT_TRUE(items.ok());
  ASSERT_EQ(items->attrs.size(), 1u);
  auto fields = ParseAttrs(items->attrs[0].second.payload());
  ASSERT_TRUE(fields.ok());
  EXPECT_EQ(*fields->Get(2, "x")->U32(), 9u);
}

TEST(ParseAttrsTest, RefusesAnAttributeThatOverrunsTheBuffer) {
  GenlMessageBuilder m(0x1d, 1, 1, 1);
  m.PutU32(5, 1);
  Bytes b = m.Finish();
  Bytes attrs(b.begin() + NLMSG_HDRLEN + GENL_HDRLEN, b.end());
  attrs[0] = 40;  // claims 40 bytes, has 8
  EXPECT_EQ(ParseAttrs(attrs).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseAttrsTest, ShortNumericPayloadIsAnErrorNotGarbage) {
  GenlMessageBuilder m(0x1d, 1, 1, 1);
  m.PutU32(5, 1);
  Bytes b = m.Finish();
  auto attrs = ParseAttrs(absl::MakeConstSpan(b).subspan(NLMSG_HDRLEN + GENL_HDRLEN));
  ASSERT_TRUE(attrs.ok());
  EXPECT_FALSE(attrs->Get(5, "x")->U64().ok());
  EXPECT_EQ(attrs->Get(6, "the sixth").status().code(), absl::StatusCode::kNotFound);
}

TEST(SplitMessagesTest, RefusesATruncatedMessage) {
  Bytes ack = KernelAck(1, 0);
  ack.resize(ack.size() - 4);
  EXPECT_FALSE(SplitMessages(ack).ok());
}

TEST(ParseAckTest, CappedAckCarriesErrnoMessageAndMissingAttribute) {
  Bytes b = KernelAck(7, -ESTALE, "epoch is lower than the highest seen", 3);
  auto messages = SplitMessages(b);
  ASSERT_TRUE(messages.ok());
  auto ack = ParseAck((*messages)[0]);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->error, -ESTALE);
  EXPECT_EQ(ack->message, "epoch is lower than the highest seen");
  EXPECT_EQ(ack->missing_attr_type, 3);
}

TEST(ParseAckTest, UncappedAckSkipsTheEchoedRequest) {
  Bytes b = KernelAck(7, -EINVAL, "expected a PCI address", -1, /*capped=*/false,
                      /*echoed_payload=*/22);
  auto messages = SplitMessages(b);
  ASSERT_TRUE(messages.ok());
  auto ack = ParseAck((*messages)[0]);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->message, "expected a PCI address");
}

TEST(ParseAckTest, PlainAckHasNoError) {
  Bytes b = KernelAck(9, 0);
  auto messages = SplitMessages(b);
  ASSERT_TRUE(messages.ok());
  auto ack = ParseAck((*messages)[0]);
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ack->error, 0);
  EXPECT_EQ(ack->message, "");
}

TEST(GenlMessageBuilderTest, ADumpRequestAlsoAsksForAnAck) {
  GenlMessageBuilder m(0x1d, 8, 1, 3, NLM_F_DUMP);
  Bytes b = m.Finish();
  EXPECT_EQ(At<uint16_t>(b, 6), NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP);
}

TEST(ParseDoneTest, ADumpCutShortCarriesItsErrnoAndMessage) {
  Bytes b = KernelDone(4, -EMSGSIZE, "config space does not fit");
  auto messages = SplitMessages(b);
  ASSERT_TRUE(messages.ok());
  auto done = ParseDone((*messages)[0]);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->error, -EMSGSIZE);
  EXPECT_EQ(done->message, "config space does not fit");
  EXPECT_FALSE(ParseAck((*messages)[0]).ok());  // a DONE is not an ack
}

TEST(ParseDoneTest, ACompleteDumpEndsWithZero) {
  auto messages = SplitMessages(KernelDone(4));
  ASSERT_TRUE(messages.ok());
  auto done = ParseDone((*messages)[0]);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->error, 0);
  EXPECT_EQ(done->message, "");
}

TEST(ErrnoToStatusCodeTest, HookErrorsMapToWhatACallerMustDo) {
  EXPECT_EQ(ErrnoToStatusCode(ESTALE), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrnoToStatusCode(ENETDOWN), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrnoToStatusCode(EOPNOTSUPP), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrnoToStatusCode(ETIMEDOUT), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(ErrnoToStatusCode(ENODEV), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoToStatusCode(EPERM), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoToStatusCode(EAGAIN), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoToStatusCode(ENOSPC), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoToStatusCode(EIO), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace hook
}  // namespace nichandover
