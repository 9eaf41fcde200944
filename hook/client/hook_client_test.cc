#include "hook/client/hook_client.h"

#include <linux/genetlink.h>
#include <linux/netlink.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>

#include "gtest/gtest.h"
#include "hook/client/test_kernel_messages.h"
#include "hook/kmod/nichandover_genl.h"

namespace nichandover {
namespace hook {
namespace {

using testing::Concat;
using testing::KernelAck;

constexpr uint16_t kFamilyId = 0x21;
constexpr char kBdf[] = "0000:01:00.0";

// What the fake kernel saw of one request.
struct SeenRequest {
  Bytes raw;  // `genl` points into it
  uint16_t type = 0;
  uint32_t seq = 0;
  GenlReply genl;
};

// Answers the controller like the kernel and hands every request of our
// family to `handler`, which returns the reply attributes or an errno.
class FakeKernel : public Transport {
 public:
  struct Answer {
    int error = 0;
    std::string extack;
    std::function<void(GenlMessageBuilder&)> attrs;
  };
  using Handler = std::function<Answer(const SeenRequest&)>;

  FakeKernel(bool family_registered, Handler handler, std::vector<SeenRequest>* seen)
      : family_registered_(family_registered), handler_(std::move(handler)), seen_(seen) {}

  absl::StatusOr<Bytes> Exchange(const Bytes& request) override {
    seen_->push_back({request});
    auto messages = SplitMessages(seen_->back().raw);
    if (!messages.ok()) return messages.status();
    const NetlinkMessage& msg = messages->at(0);
    auto genl = ParseGenl(msg);
    if (!genl.ok()) return genl.status();
    seen_->back().type = msg.type;
    seen_->back().seq = msg.seq;
    seen_->back().genl = *genl;
    if (msg.type == GENL_ID_CTRL) {
      if (!family_registered_) return KernelAck(msg.seq, -ENOENT);
      auto name = genl->attrs.Get(CTRL_ATTR_FAMILY_NAME, "name");
      if (!name.ok() || name->String() != NH_GENL_NAME) return KernelAck(msg.seq, -ENOENT);
      GenlMessageBuilder reply(GENL_ID_CTRL, CTRL_CMD_NEWFAMILY, 2, msg.seq);
      reply.PutU16(CTRL_ATTR_FAMILY_ID, kFamilyId);
      reply.PutString(CTRL_ATTR_FAMILY_NAME, NH_GENL_NAME);
      return Concat(reply.Finish(), KernelAck(msg.seq, 0));
    }
    if (msg.type != kFamilyId) return KernelAck(msg.seq, -EOPNOTSUPP);
    Answer answer = handler_(seen_->back());
    if (answer.error != 0) return KernelAck(msg.seq, -answer.error, answer.extack);
    GenlMessageBuilder reply(kFamilyId, genl->cmd, NH_GENL_VERSION, msg.seq);
    answer.attrs(reply);
    return Concat(reply.Finish(), KernelAck(msg.seq, 0));
  }

 private:
  bool family_registered_;
  Handler handler_;
  std::vector<SeenRequest>* seen_;
};

void PutQuiescedStatus(GenlMessageBuilder& m) {
  m.PutU32(NH_ATTR_STATE, NH_STATE_QUIESCED);
  m.PutU64(NH_ATTR_EPOCH, 5);
  m.PutU32(NH_ATTR_MSI_MODE, NH_MSI_MODE_MSIX);
  m.PutString(NH_ATTR_IFNAME, "eth0");
  m.PutU32(NH_ATTR_IFINDEX, 2);
  m.PutU64(NH_ATTR_HELD_XMITS, 12);
  m.PutU64(NH_ATTR_XMITS_WHILE_QUIESCED, 0);
  m.PutU64(NH_ATTR_POLLS_WHILE_QUIESCED, 0);
  m.PutU64(NH_ATTR_DRAINED_TX_BYTES, 1514);
  m.PutU64(NH_ATTR_BQL_INFLIGHT, 0);
  m.PutU32(NH_ATTR_NAPI_COUNT, 1);
  m.PutU32(NH_ATTR_VECTORS_MASKED, 3);
}

void PutVector(GenlMessageBuilder& m, uint16_t item, uint32_t index, uint64_t address,
               uint32_t data, uint32_t cpu, bool masked) {
  m.BeginNest(item);
  m.PutU32(NH_MSI_ATTR_INDEX, index);
  m.PutU64(NH_MSI_ATTR_ADDRESS, address);
  m.PutU32(NH_MSI_ATTR_DATA, data);
  m.PutU8(NH_MSI_ATTR_MASKED, masked ? 1 : 0);
  m.PutU32(NH_MSI_ATTR_IRQ, 30 + index);
  m.PutU32(NH_MSI_ATTR_CPU, cpu);
  m.EndNest();
}

class HookClientTest : public ::testing::Test {
 protected:
  HookClient MakeClient(FakeKernel::Handler handler, bool registered = true) {
    return HookClient(std::make_unique<FakeKernel>(registered, std::move(handler), &seen_));
  }
  std::vector<SeenRequest> seen_;
};

TEST_F(HookClientTest, QuiesceSendsDeviceEpochAndTimeoutAndDecodesCounters) {
  HookClient client = MakeClient([](const SeenRequest&) {
    return FakeKernel::Answer{0, "", PutQuiescedStatus};
  });
  auto status = client.Quiesce(kBdf, 5, absl::Seconds(7));
  ASSERT_TRUE(status.ok()) << status.status();

  ASSERT_EQ(seen_.size(), 2u);  // family lookup, then the quiesce
  const SeenRequest& q = seen_[1];
  EXPECT_EQ(q.type, kFamilyId);
  EXPECT_EQ(q.genl.cmd, NH_CMD_QUIESCE);
  EXPECT_EQ(q.genl.attrs.Get(NH_ATTR_PCI_DEV, "dev")->String(), kBdf);
  EXPECT_EQ(*q.genl.attrs.Get(NH_ATTR_EPOCH, "epoch")->U64(), 5u);
  EXPECT_EQ(*q.genl.attrs.Get(NH_ATTR_TIMEOUT_MS, "timeout")->U32(), 7000u);

  EXPECT_EQ(status->state, DeviceState::kQuiesced);
  EXPECT_EQ(status->epoch, 5u);
  EXPECT_EQ(status->ifname, "eth0");
  EXPECT_EQ(status->ifindex, 2u);
  EXPECT_EQ(status->msi_mode, MsiMode::kMsix);
  EXPECT_EQ(status->held_xmits, 12u);
  EXPECT_EQ(status->drained_tx_bytes, 1514u);
  EXPECT_EQ(status->napi_count, 1u);
  EXPECT_EQ(status->vectors_masked, 3u);
}

TEST_F(HookClientTest, FamilyIsResolvedOnceAndSequenceNumbersGrow) {
  HookClient client = MakeClient([](const SeenRequest&) {
    return FakeKernel::Answer{0, "", PutQuiescedStatus};
  });
  ASSERT_TRUE(client.Status(kBdf).ok());
  ASSERT_TRUE(client.Status(kBdf).ok());
  ASSERT_EQ(seen_.size(), 3u);
  EXPECT_EQ(seen_[0].type, GENL_ID_CTRL);
  EXPECT_EQ(seen_[1].type, kFamilyId);
  EXPECT_EQ(seen_[2].type, kFamilyId);
  EXPECT_LT(seen_[1].seq, seen_[2].seq);
  EXPECT_FALSE(seen_[1].genl.attrs.Has(NH_ATTR_EPOCH));  // status needs none
}

TEST_F(HookClientTest, StaleEpochIsAFailedPreconditionWithTheModulesReason) {
  HookClient client = MakeClient([](const SeenRequest&) {
    return FakeKernel::Answer{ESTALE, "epoch is lower than the highest seen for this device", {}};
  });
  auto status = client.Resume(kBdf, 3);
  EXPECT_EQ(status.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.status().message().find("epoch is lower than the highest seen"),
            std::string::npos)
      << status.status();
  EXPECT_NE(status.status().message().find("resume 0000:01:00.0"), std::string::npos);
  EXPECT_NE(status.status().message().find("ESTALE"), std::string::npos);
}

TEST_F(HookClientTest, DrainPastDeadlineIsDeadlineExceeded) {
  HookClient client = MakeClient([](const SeenRequest&) {
    return FakeKernel::Answer{ETIMEDOUT, "TX completions did not drain before the deadline", {}};
  });
  EXPECT_EQ(client.Quiesce(kBdf, 1, absl::Milliseconds(10)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(HookClientTest, TimeoutOutsideTheModulesRangeIsRefusedBeforeSending) {
  HookClient client = MakeClient([](const SeenRequest&) {
    return FakeKernel::Answer{0, "", PutQuiescedStatus};
  });
  EXPECT_EQ(client.Quiesce(kBdf, 1, absl::ZeroDuration()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client.Quiesce(kBdf, 1, absl::Hours(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(seen_.empty());
}

TEST_F(HookClientTest, ModuleNotLoadedIsUnavailable) {
  HookClient client = MakeClient([](const SeenRequest&) { return FakeKernel::Answer{}; },
                                 /*registered=*/false);
  auto status = client.Status(kBdf);
  EXPECT_EQ(status.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(status.status().message().find("nichandover_hook module"), std::string::npos);
}

TEST_F(HookClientTest, ReadMsiDecodesEveryVectorInOrder) {
  HookClient client = MakeClient([](const SeenRequest& r) {
    EXPECT_EQ(r.genl.cmd, NH_CMD_READ_MSI);
    return FakeKernel::Answer{0, "", [](GenlMessageBuilder& m) {
                                PutQuiescedStatus(m);
                                m.BeginNest(NH_ATTR_MSI_LIST);
                                PutVector(m, 1, 0, 0xfee00000, 0x4022, 0, false);
                                PutVector(m, 2, 1, 0xfee01000, 0x4023, 1, true);
                                m.EndNest();
                              }};
  });
  auto vectors = client.ReadMsi(kBdf);
  ASSERT_TRUE(vectors.ok()) << vectors.status();
  ASSERT_EQ(vectors->size(), 2u);
  EXPECT_EQ((*vectors)[0].address, 0xfee00000u);
  EXPECT_EQ((*vectors)[0].data, 0x4022u);
  EXPECT_FALSE((*vectors)[0].masked);
  EXPECT_EQ((*vectors)[1].index, 1u);
  EXPECT_EQ((*vectors)[1].cpu, 1u);
  EXPECT_EQ((*vectors)[1].irq, 31u);
  EXPECT_TRUE((*vectors)[1].masked);
}

TEST_F(HookClientTest, RawRerouteSendsEachMessageAndReturnsBothSides) {
  std::vector<MsiWrite> sent;
  HookClient client = MakeClient([&sent](const SeenRequest& r) {
    EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_REROUTE_MODE, "mode")->U32(),
              static_cast<uint32_t>(NH_REROUTE_RAW));
    auto list = r.genl.attrs.Get(NH_ATTR_MSI_LIST, "list");
    EXPECT_TRUE(list.ok());
    auto items = ParseAttrs(list->payload());
    for (const auto& [type, item] : items->attrs) {
      auto f = ParseAttrs(item.payload());
      sent.push_back({*f->Get(NH_MSI_ATTR_INDEX, "i")->U32(),
                      *f->Get(NH_MSI_ATTR_ADDRESS, "a")->U64(),
                      *f->Get(NH_MSI_ATTR_DATA, "d")->U32()});
    }
    return FakeKernel::Answer{0, "", [](GenlMessageBuilder& m) {
                                PutQuiescedStatus(m);
                                m.BeginNest(NH_ATTR_MSI_PREVIOUS);
                                PutVector(m, 1, 0, 0xfee00000, 0x4022, 0, true);
                                m.EndNest();
                                m.BeginNest(NH_ATTR_MSI_LIST);
                                PutVector(m, 1, 0, 0xfee01000, 0x4041, 1, true);
                                m.EndNest();
                              }};
  });
  auto result = client.RerouteRaw(kBdf, 6, {{0, 0xfee01000, 0x4041}, {2, 0xfee01000, 0x4042}});
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].index, 2u);
  EXPECT_EQ(sent[1].address, 0xfee01000u);
  EXPECT_EQ(sent[1].data, 0x4042u);
  ASSERT_EQ(result->previous.size(), 1u);
  EXPECT_EQ(result->previous[0].address, 0xfee00000u);
  ASSERT_EQ(result->current.size(), 1u);
  EXPECT_EQ(result->current[0].data, 0x4041u);
}

TEST_F(HookClientTest, AffinityRerouteNamesTheTargetCpu) {
  HookClient client = MakeClient([](const SeenRequest& r) {
    EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_REROUTE_MODE, "mode")->U32(),
              static_cast<uint32_t>(NH_REROUTE_AFFINITY));
    EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_TARGET_CPU, "cpu")->U32(), 1u);
    EXPECT_FALSE(r.genl.attrs.Has(NH_ATTR_MSI_LIST));
    return FakeKernel::Answer{0, "", [](GenlMessageBuilder& m) {
                                PutQuiescedStatus(m);
                                m.BeginNest(NH_ATTR_MSI_PREVIOUS);
                                m.EndNest();
                                m.BeginNest(NH_ATTR_MSI_LIST);
                                m.EndNest();
                              }};
  });
  EXPECT_TRUE(client.RerouteToCpu(kBdf, 2, 1).ok());
}

TEST_F(HookClientTest, ReplyWithoutStateIsAnError) {
  HookClient client = MakeClient([](const SeenRequest&) {
    return FakeKernel::Answer{0, "", [](GenlMessageBuilder& m) { m.PutU64(NH_ATTR_EPOCH, 1); }};
  });
  EXPECT_EQ(client.Status(kBdf).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace hook
}  // namespace nichandover
