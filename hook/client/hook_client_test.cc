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
using testing::KernelDone;

constexpr uint16_t kFamilyId = 0x21;
constexpr char kBdf[] = "0000:01:00.0";

// What the fake kernel saw of one request.
struct SeenRequest {
  Bytes raw;  // `genl` points into it
  uint16_t type = 0;
  uint16_t flags = 0;
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
    // A dump's messages (NLM_F_MULTI each, then NLMSG_DONE with `error`).
    std::vector<std::function<void(GenlMessageBuilder&)>> dump;
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
    seen_->back().flags = msg.flags;
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
    if (msg.flags & NLM_F_DUMP) {
      Bytes out;
      for (const auto& fill : answer.dump) {
        GenlMessageBuilder item(kFamilyId, genl->cmd, NH_GENL_VERSION, msg.seq);
        fill(item);
        Bytes b = item.Finish();
        uint16_t flags = NLM_F_MULTI;
        std::memcpy(b.data() + offsetof(nlmsghdr, nlmsg_flags), &flags, sizeof(flags));
        out = Concat(out, b);
      }
      return Concat(out, KernelDone(msg.seq, -answer.error, answer.extack));
    }
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
  auto status = client.Quiesce(kBdf, Fence{5, 0}, absl::Seconds(7));
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
  auto status = client.Resume(kBdf, Fence{3, 0});
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
  EXPECT_EQ(client.Quiesce(kBdf, Fence{1, 0}, absl::Milliseconds(10)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(HookClientTest, TimeoutOutsideTheModulesRangeIsRefusedBeforeSending) {
  HookClient client = MakeClient([](const SeenRequest&) {
    return FakeKernel::Answer{0, "", PutQuiescedStatus};
  });
  EXPECT_EQ(client.Quiesce(kBdf, Fence{1, 0}, absl::ZeroDuration()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client.Quiesce(kBdf, Fence{1, 0}, absl::Hours(1)).status().code(),
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
  auto result =
      client.RerouteRaw(kBdf, Fence{6, 0}, {{0, 0xfee01000, 0x4041}, {2, 0xfee01000, 0x4042}});
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

// A kernel commit path request: its command, fence and record words.
void ExpectCommitRequest(const SeenRequest& r, uint8_t cmd, const Fence& fence, uint64_t expected,
                         uint64_t desired) {
  EXPECT_EQ(r.genl.cmd, cmd);
  EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_EPOCH, "e")->U64(), fence.epoch);
  EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_OP_ID, "o")->U64(), fence.op_id);
  EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_RECORD_EXPECTED, "x")->U64(), expected);
  EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_RECORD_DESIRED, "d")->U64(), desired);
}

TEST_F(HookClientTest, ArmSendsTheFenceAndBothRecordWords) {
  HookClient client = MakeClient([](const SeenRequest& r) {
    ExpectCommitRequest(r, NH_CMD_ARM, Fence{7, 4}, 0x7010003, 0x7ff0101);
    return FakeKernel::Answer{0, "", [](GenlMessageBuilder& m) {
                                m.PutU32(NH_ATTR_STATE, NH_STATE_STANDBY);
                                m.PutU8(NH_ATTR_KERNEL_COMMIT, 1);
                                m.PutU64(NH_ATTR_ARMED_EPOCH, 7);
                                m.PutU64(NH_ATTR_DOORBELLS_IGNORED, 2);
                              }};
  });
  auto status = client.Arm(kBdf, Fence{7, 4}, 0x7010003, 0x7ff0101);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(status->kernel_commit);
  EXPECT_EQ(status->armed_epoch, 7u);
  EXPECT_EQ(status->doorbells_ignored, 2u);
}

TEST_F(HookClientTest, HandoffSendsOneRequestAndDecodesHowFarItGot) {
  HookClient client = MakeClient([](const SeenRequest& r) {
    ExpectCommitRequest(r, NH_CMD_HANDOFF, Fence{7, 9}, 0x7010002, 0x7010003);
    EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_TIMEOUT_MS, "t")->U32(), 1500u);
    EXPECT_TRUE(r.genl.attrs.Has(NH_ATTR_MSI_LIST));
    return FakeKernel::Answer{0, "", [](GenlMessageBuilder& m) {
                                m.PutU32(NH_ATTR_STATE, NH_STATE_RELEASED);
                                m.PutU32(NH_ATTR_HANDOFF_STAGE, NH_HANDOFF_DOORBELL_RUNG);
                                m.PutU64(NH_ATTR_RECORD, 0x7010002);
                                m.BeginNest(NH_ATTR_MSI_PREVIOUS);
                                PutVector(m, 1, 0, 0xfee00000, 0x40, 0, false);
                                m.EndNest();
                                PutRings(m, {{0, 5, 4, 3, 3}});
                              }};
  });
  auto reply = client.Handoff(kBdf, Fence{7, 9}, 0x7010002, 0x7010003, {{0, 0xfee01000, 0x40}},
                              absl::Milliseconds(1500));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->stage, HandoffStage::kDoorbellRung);
  EXPECT_EQ(reply->record, 0x7010002u);
  ASSERT_EQ(reply->previous.size(), 1u);
  EXPECT_EQ(reply->previous[0].address, 0xfee00000u);
  ASSERT_EQ(reply->status.rings.size(), 1u);
  EXPECT_EQ(reply->status.rings[0].rx_next_to_clean, 5u);
  EXPECT_EQ(reply->status.state, DeviceState::kReleased);
}

TEST_F(HookClientTest, AHandoffAcknowledgedBeforeTheRecordIsAnError) {
  HookClient client = MakeClient([](const SeenRequest&) {
    return FakeKernel::Answer{0, "", [](GenlMessageBuilder& m) {
                                m.PutU32(NH_ATTR_STATE, NH_STATE_QUIESCED);
                                m.PutU32(NH_ATTR_HANDOFF_STAGE, NH_HANDOFF_REROUTED);
                                m.PutU64(NH_ATTR_RECORD, 0);
                              }};
  });
  auto reply =
      client.Handoff(kBdf, Fence{7, 9}, 1, 2, {{0, 0xfee01000, 0x40}}, absl::Seconds(1));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInternal) << reply.status();
}

TEST_F(HookClientTest, EventsCarriesNoDeviceAndDecodesTheLog) {
  HookClient client = MakeClient([](const SeenRequest& r) {
    EXPECT_EQ(r.genl.cmd, NH_CMD_EVENTS);
    EXPECT_FALSE(r.genl.attrs.Has(NH_ATTR_PCI_DEV));
    EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_EVENT_SEQ, "s")->U64(), 3u);
    EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_TIMEOUT_MS, "t")->U32(), 2000u);
    return FakeKernel::Answer{0, "", [](GenlMessageBuilder& m) {
                                m.PutU64(NH_ATTR_EVENT_SEQ, 5);
                                m.BeginNest(NH_ATTR_EVENTS);
                                for (uint64_t seq : {4, 5}) {
                                  m.BeginNest(static_cast<uint16_t>(seq - 3));
                                  m.PutU64(NH_EVENT_ATTR_SEQ, seq);
                                  m.PutU32(NH_EVENT_ATTR_KIND, seq == 4 ? NH_EVENT_NOT_COMMITTED
                                                                        : NH_EVENT_COMMITTED);
                                  m.PutString(NH_EVENT_ATTR_PCI_DEV, kBdf);
                                  m.PutU64(NH_EVENT_ATTR_EPOCH, 7);
                                  m.PutU64(NH_EVENT_ATTR_RECORD, 0x7ff0101);
                                  m.PutString(NH_EVENT_ATTR_REASON, seq == 4 ? "not armed" : "");
                                  m.EndNest();
                                }
                                m.EndNest();
                              }};
  });
  auto log = client.Events(3, absl::Seconds(2));
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(log->newest_seq, 5u);
  ASSERT_EQ(log->events.size(), 2u);
  EXPECT_EQ(log->events[0].kind, KernelEvent::Kind::kNotCommitted);
  EXPECT_EQ(log->events[0].reason, "not armed");
  EXPECT_EQ(log->events[1].kind, KernelEvent::Kind::kCommitted);
  EXPECT_EQ(log->events[1].dev, kBdf);
  EXPECT_EQ(log->events[1].record, 0x7ff0101u);
  // No wait: no TIMEOUT_MS, which the module's policy would refuse as 0.
  HookClient no_wait = MakeClient([](const SeenRequest& r) {
    EXPECT_FALSE(r.genl.attrs.Has(NH_ATTR_TIMEOUT_MS));
    return FakeKernel::Answer{0, "", [](GenlMessageBuilder& m) {
                                m.PutU64(NH_ATTR_EVENT_SEQ, 0);
                                m.BeginNest(NH_ATTR_EVENTS);
                                m.EndNest();
                              }};
  });
  auto empty = no_wait.Events(0, absl::ZeroDuration());
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->events.empty());
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
  EXPECT_TRUE(client.RerouteToCpu(kBdf, Fence{2, 0}, 1).ok());
}

void PutRing(GenlMessageBuilder& m, uint16_t item, const RingState& r) {
  m.BeginNest(item);
  m.PutU32(NH_RING_ATTR_QUEUE, r.queue);
  m.PutU32(NH_RING_ATTR_RX_NEXT_TO_CLEAN, r.rx_next_to_clean);
  m.PutU32(NH_RING_ATTR_RX_NEXT_TO_USE, r.rx_next_to_use);
  m.PutU32(NH_RING_ATTR_TX_NEXT_TO_CLEAN, r.tx_next_to_clean);
  m.PutU32(NH_RING_ATTR_TX_NEXT_TO_USE, r.tx_next_to_use);
  m.EndNest();
}

TEST_F(HookClientTest, QuiesceOfAContractDeviceReturnsItsRings) {
  HookClient client = MakeClient([](const SeenRequest&) {
    return FakeKernel::Answer{0, "", [](GenlMessageBuilder& m) {
                                PutQuiescedStatus(m);
                                m.PutU32(NH_ATTR_HANDOVER_MODE, NH_HANDOVER_MODE_CONTRACT);
                                m.PutU32(NH_ATTR_QUEUE_COUNT, 2);
                                m.BeginNest(NH_ATTR_RINGS);
                                PutRing(m, 1, {0, 10, 265, 7, 7});
                                PutRing(m, 2, {1, 3, 258, 1000, 1002});
                                m.EndNest();
                              }};
  });
  auto status = client.Quiesce(kBdf, Fence{5, 0}, absl::Seconds(1));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->handover_mode, HandoverMode::kContract);
  EXPECT_EQ(status->queue_count, 2u);
  ASSERT_EQ(status->rings.size(), 2u);
  EXPECT_EQ(status->rings[0], (RingState{0, 10, 265, 7, 7}));
  EXPECT_EQ(status->rings[1], (RingState{1, 3, 258, 1000, 1002}));
}

TEST_F(HookClientTest, ARingWithoutItsQueueIndexIsAnError) {
  HookClient client = MakeClient([](const SeenRequest&) {
    return FakeKernel::Answer{0, "", [](GenlMessageBuilder& m) {
                                PutQuiescedStatus(m);
                                m.BeginNest(NH_ATTR_RINGS);
                                m.BeginNest(1);
                                m.PutU32(NH_RING_ATTR_RX_NEXT_TO_CLEAN, 4);
                                m.EndNest();
                                m.EndNest();
                              }};
  });
  EXPECT_EQ(client.Quiesce(kBdf, Fence{5, 0}, absl::Seconds(1)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(HookClientTest, AttachSendsTheRingsAndNoneForAFirstStart) {
  std::vector<std::vector<RingState>> sent;
  HookClient client = MakeClient([&sent](const SeenRequest& r) {
    EXPECT_EQ(r.genl.cmd, NH_CMD_ATTACH);
    EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_EPOCH, "epoch")->U64(), 9u);
    if (auto rings = r.genl.attrs.Get(NH_ATTR_RINGS, "rings"); rings.ok()) {
      sent.push_back(*DecodeRings(*rings));
    } else {
      sent.push_back({});
    }
    return FakeKernel::Answer{0, "", PutQuiescedStatus};
  });
  ASSERT_TRUE(client.Attach(kBdf, Fence{9, 0}, {{0, 1, 2, 3, 4}, {1, 5, 6, 7, 8}}).ok());
  ASSERT_TRUE(client.Attach(kBdf, Fence{9, 0}).ok());
  ASSERT_EQ(sent.size(), 2u);
  ASSERT_EQ(sent[0].size(), 2u);
  EXPECT_EQ(sent[0][1], (RingState{1, 5, 6, 7, 8}));
  EXPECT_TRUE(sent[1].empty());
  EXPECT_FALSE(seen_.back().genl.attrs.Has(NH_ATTR_RINGS));
}

TEST_F(HookClientTest, ListIsADumpOfEveryDeviceWithItsIdentity) {
  HookClient client = MakeClient([](const SeenRequest& r) {
    EXPECT_EQ(r.genl.cmd, NH_CMD_LIST);
    FakeKernel::Answer answer;
    answer.dump.push_back([](GenlMessageBuilder& m) {
      m.PutString(NH_ATTR_PCI_DEV, "0000:03:00.0");
      m.PutU32(NH_ATTR_STATE, NH_STATE_STANDBY);
      m.PutU64(NH_ATTR_EPOCH, 4);
      m.PutString(NH_ATTR_IFNAME, "nhsim0");
      m.PutU32(NH_ATTR_IFINDEX, 3);
      m.PutU32(NH_ATTR_HANDOVER_MODE, NH_HANDOVER_MODE_CONTRACT);
      m.PutU16(NH_ATTR_VENDOR_ID, 0x8086);
      m.PutU16(NH_ATTR_DEVICE_ID, 0x1533);
      m.PutString(NH_ATTR_DRIVER, "nh_simnic");
      m.PutU32(NH_ATTR_QUEUE_COUNT, 1);
      m.PutBytes(NH_ATTR_CONFIG, {0x86, 0x80, 0x33, 0x15, 0x06});
    });
    answer.dump.push_back([](GenlMessageBuilder& m) {
      m.PutString(NH_ATTR_PCI_DEV, "0000:00:02.0");
      m.PutU32(NH_ATTR_STATE, NH_STATE_RUNNING);
      m.PutU32(NH_ATTR_HANDOVER_MODE, NH_HANDOVER_MODE_COLD);
      m.PutString(NH_ATTR_DRIVER, "e1000e");
    });
    return answer;
  });
  auto devices = client.List();
  ASSERT_TRUE(devices.ok()) << devices.status();
  const SeenRequest& sent = seen_.back();
  EXPECT_TRUE(sent.flags & NLM_F_DUMP);
  EXPECT_FALSE(sent.genl.attrs.Has(NH_ATTR_PCI_DEV));
  EXPECT_FALSE(sent.genl.attrs.Has(NH_ATTR_EPOCH));
  ASSERT_EQ(devices->size(), 2u);
  const ListedDevice& simnic = (*devices)[0];
  EXPECT_EQ(simnic.id, "0000:03:00.0");
  EXPECT_EQ(simnic.status.state, DeviceState::kStandby);
  EXPECT_EQ(simnic.status.epoch, 4u);
  EXPECT_EQ(simnic.status.ifname, "nhsim0");
  EXPECT_EQ(simnic.status.handover_mode, HandoverMode::kContract);
  EXPECT_EQ(simnic.vendor_id, 0x8086);
  EXPECT_EQ(simnic.device_id, 0x1533);
  EXPECT_EQ(simnic.driver, "nh_simnic");
  EXPECT_EQ(simnic.status.queue_count, 1u);
  EXPECT_EQ(simnic.config, (std::vector<uint8_t>{0x86, 0x80, 0x33, 0x15, 0x06}));
  const ListedDevice& e1000e = (*devices)[1];
  EXPECT_EQ(e1000e.status.handover_mode, HandoverMode::kCold);
  EXPECT_TRUE(e1000e.config.empty());
  EXPECT_EQ(e1000e.driver, "e1000e");
}

TEST_F(HookClientTest, AnEmptyListIsNoError) {
  HookClient client = MakeClient([](const SeenRequest&) { return FakeKernel::Answer{}; });
  auto devices = client.List();
  ASSERT_TRUE(devices.ok()) << devices.status();
  EXPECT_TRUE(devices->empty());
}

TEST_F(HookClientTest, ADumpCutShortIsAnErrorWithTheModulesReason) {
  HookClient client = MakeClient([](const SeenRequest&) {
    FakeKernel::Answer answer{EMSGSIZE, "config space does not fit a message", {}};
    answer.dump.push_back(PutQuiescedStatus);
    return answer;
  });
  auto devices = client.List();
  EXPECT_FALSE(devices.ok());
  EXPECT_NE(devices.status().message().find("config space does not fit"), std::string::npos)
      << devices.status();
}

TEST_F(HookClientTest, ReserveSendsEpochAndCountAndReturnsTheMessagesInEntryOrder) {
  HookClient client = MakeClient([](const SeenRequest& r) {
    EXPECT_EQ(r.genl.cmd, NH_CMD_RESERVE);
    EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_EPOCH, "epoch")->U64(), 7u);
    EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_VECTOR_COUNT, "count")->U32(), 2u);
    return FakeKernel::Answer{0, "", [](GenlMessageBuilder& m) {
                                PutQuiescedStatus(m);
                                m.BeginNest(NH_ATTR_MSI_LIST);
                                PutVector(m, 1, 0, 0xfee03000, 0x41, 3, true);
                                PutVector(m, 2, 1, 0xfee03000, 0x42, 3, true);
                                m.EndNest();
                              }};
  });
  auto messages = client.Reserve(kBdf, Fence{7, 0}, 2);
  ASSERT_TRUE(messages.ok()) << messages.status();
  ASSERT_EQ(messages->size(), 2u);
  EXPECT_EQ((*messages)[0].address, 0xfee03000u);
  EXPECT_EQ((*messages)[1].data, 0x42u);
  EXPECT_EQ(client.Reserve(kBdf, Fence{7, 0}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(HookClientTest, ReserveAnsweredWithTheWrongNumberOfMessagesIsAnError) {
  HookClient client = MakeClient([](const SeenRequest&) {
    return FakeKernel::Answer{0, "", [](GenlMessageBuilder& m) {
                                PutQuiescedStatus(m);
                                m.BeginNest(NH_ATTR_MSI_LIST);
                                PutVector(m, 1, 0, 0xfee03000, 0x41, 3, true);
                                m.EndNest();
                              }};
  });
  EXPECT_EQ(client.Reserve(kBdf, Fence{7, 0}, 2).status().code(), absl::StatusCode::kInternal);
}

TEST_F(HookClientTest, ReserveWithoutFreeVectorsIsResourceExhausted) {
  HookClient client = MakeClient([](const SeenRequest&) {
    return FakeKernel::Answer{ENOSPC, "only 1 free vector on this node", {}};
  });
  auto messages = client.Reserve(kBdf, Fence{7, 0}, 2);
  EXPECT_EQ(messages.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(messages.status().message().find("only 1 free vector"), std::string::npos);
}

TEST_F(HookClientTest, UnreserveAndReclaimCarryTheirCommandAndEpoch) {
  std::vector<uint8_t> cmds;
  HookClient client = MakeClient([&cmds](const SeenRequest& r) {
    cmds.push_back(r.genl.cmd);
    EXPECT_EQ(*r.genl.attrs.Get(NH_ATTR_EPOCH, "epoch")->U64(), 11u);
    return FakeKernel::Answer{0, "", PutQuiescedStatus};
  });
  ASSERT_TRUE(client.Unreserve(kBdf, Fence{11, 0}).ok());
  ASSERT_TRUE(client.Reclaim(kBdf, Fence{11, 0}).ok());
  EXPECT_EQ(cmds, (std::vector<uint8_t>{NH_CMD_UNRESERVE, NH_CMD_RECLAIM}));
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
