// Hardening (issue 16) against real nichandoverd processes on the fake
// platform: what an unlucky operator or a hostile local client can send must
// get a clear error, change nothing, and leave the daemons serving.
#include <signal.h>

#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nichandover/v1/node_service.grpc.pb.h"
#include "nichandover/v1/peer_service.grpc.pb.h"
#include "tests/testing/daemon_cluster.h"

namespace nichandover {
namespace {

using ::nichandover::testing::ClusterOptions;
using ::nichandover::testing::DaemonCluster;
using ::nichandover::testing::NodeSpec;
using ::nichandover::testing::WaitUntil;

constexpr char kNic[] = "0000:03:00.0";

ClusterOptions TwoNodes() {
  ClusterOptions options;
  options.nodes = {NodeSpec{"node0", {{0, 0}, {1, 1}}}, NodeSpec{"node1", {{0, 16}, {1, 17}}}};
  options.extra_config =
      "timeouts { peer_call { seconds: 2 } quiesce { seconds: 2 } reroute { seconds: 2 } "
      "attach { seconds: 2 } handover { seconds: 20 } }";
  return options;
}

class HardeningTest : public ::testing::Test {
 protected:
  HardeningTest() : cluster_(TwoNodes()) {}

  std::unique_ptr<v1::NodeService::Stub> Stub(int node) {
    return v1::NodeService::NewStub(
        grpc::CreateChannel(cluster_.socket_address(node), grpc::InsecureChannelCredentials()));
  }

  grpc::Status Create(int node, v1::CreateHandoverRequest request, v1::Handover* out) {
    if (request.nic().empty()) request.set_nic(kNic);
    if (request.target_node().empty()) request.set_target_node("node1");
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    return Stub(node)->CreateHandover(&ctx, request, out);
  }

  std::vector<v1::Handover> History(int node) {
    v1::ListHandoversResponse list;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    grpc::Status s = Stub(node)->ListHandovers(&ctx, v1::ListHandoversRequest(), &list);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {list.handovers().begin(), list.handovers().end()};
  }

  // Polls GetHandover until the handover is done.
  v1::Handover WaitDone(int node, const std::string& id) {
    v1::Handover h;
    bool done = WaitUntil(
        [&] {
          v1::GetHandoverRequest request;
          request.set_handover_id(id);
          grpc::ClientContext ctx;
          ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
          return Stub(node)->GetHandover(&ctx, request, &h).ok() && h.done();
        },
        absl::Seconds(60), absl::Milliseconds(50));
    EXPECT_TRUE(done) << id << " not done on node" << node << ": " << h.DebugString();
    return h;
  }

  // A handover from node `from` to the other node that must commit.
  void ExpectHandoverCommits(const std::string& request_id, int from = 0) {
    v1::CreateHandoverRequest request;
    request.set_request_id(request_id);
    request.set_target_node(cluster_.node_id(1 - from));
    v1::Handover h;
    grpc::Status s = Create(from, request, &h);
    ASSERT_TRUE(s.ok()) << s.error_message();
    v1::Handover done = WaitDone(from, h.handover_id());
    EXPECT_EQ(done.phase(), v1::HANDOVER_PHASE_COMMITTED) << done.DebugString();
  }

  enum class Secret { kTheCluster, kNone, kWrong };

  // PeerService.Offer to node1 as a local client claiming to be node0, on
  // node1's peer listener unless `address` says otherwise; with the cluster
  // secret (a compromised peer), none, or a wrong one.
  grpc::Status ForgedOffer(const v1::OfferRequest& offer, v1::OfferResponse* response,
                           Secret secret = Secret::kTheCluster, std::string address = "") {
    if (address.empty()) address = cluster_.peer_address(1);
    auto stub = v1::PeerService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-nichandover-node", "node0");
    const std::string cluster_secret = testing::ReadFile(cluster_.secret_path());
    if (secret == Secret::kTheCluster) {
      ctx.AddMetadata("x-nichandover-secret",
                      cluster_secret.substr(0, cluster_secret.find('\n')));
    } else if (secret == Secret::kWrong) {
      // As long as the real one, so only the content differs.
      ctx.AddMetadata("x-nichandover-secret",
                      std::string(cluster_secret.find('\n'), 'x'));
    }
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    return stub->Offer(&ctx, offer, response);
  }

  v1::OfferRequest PlausibleOffer(const std::string& id) {
    v1::OfferRequest offer;
    offer.set_handover_id(id);
    offer.set_source_node("node0");
    offer.set_target_node("node1");
    offer.set_bdf(kNic);
    offer.set_vendor_id(0x8086);
    offer.set_device_id(0x10d3);
    offer.set_driver("e1000e");
    offer.set_new_epoch(2);
    offer.set_interrupt_mode(v1::INTERRUPT_MODE_MSIX);
    offer.set_vector_count(3);
    offer.set_queue_count(1);
    return offer;
  }

  DaemonCluster cluster_;
};

// Issue 16.1: a timeout near google.protobuf.Duration's maximum wedged the
// protocol thread; invalid Durations started handovers.
TEST_F(HardeningTest, OutOfRangeTimeoutsAreRefusedAndTheDaemonKeepsServing) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  struct Case {
    int64_t seconds;
    int32_t nanos;
    std::string fragment;
  } cases[] = {
      {315576000000, 0, "timeout"},           // the largest valid Duration
      {360000000000000000, 0, "timeout"},     // "99999999999999h": not a Duration
      {1, 1000000000, "timeout"},             // nanos out of range
      {1, -5, "timeout"},                     // mixed signs
      {24 * 3600 + 1, 0, "at most"},          // beyond the documented limit
  };
  for (const auto& c : cases) {
    v1::CreateHandoverRequest request;
    request.set_request_id(absl::StrCat("bad-timeout-", c.seconds, "-", c.nanos));
    request.mutable_timeout()->set_seconds(c.seconds);
    request.mutable_timeout()->set_nanos(c.nanos);
    v1::Handover h;
    grpc::Status s = Create(0, request, &h);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.seconds << "s " << c.nanos << "ns: " << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), c.fragment)) << s.error_message();
  }
  EXPECT_TRUE(History(0).empty());
  // The largest allowed timeout runs (and the protocol thread still answers).
  v1::CreateHandoverRequest request;
  request.set_request_id("longest-timeout");
  request.mutable_timeout()->set_seconds(24 * 3600);
  v1::Handover h;
  grpc::Status s = Create(0, request, &h);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(h.timeout().seconds(), 24 * 3600);
  EXPECT_EQ(WaitDone(0, h.handover_id()).phase(), v1::HANDOVER_PHASE_COMMITTED);
}

TEST_F(HardeningTest, QuiesceTimeoutOutOfRangeIsRefused) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  v1::QuiesceNicRequest request;
  request.set_nic(kNic);
  request.mutable_timeout()->set_seconds(315576000000);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::Nic nic;
  grpc::Status s = Stub(0)->QuiesceNic(&ctx, request, &nic);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "timeout")) << s.error_message();
}

// Issue 16.3: a request_id names one request; another request under it is
// ALREADY_EXISTS, whatever field differs.
TEST_F(HardeningTest, RequestIdReusedWithAnotherTimeoutIsAlreadyExists) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  v1::CreateHandoverRequest request;
  request.set_request_id("reused");
  request.mutable_timeout()->set_seconds(20);
  v1::Handover first;
  ASSERT_TRUE(Create(0, request, &first).ok());
  v1::Handover again;
  grpc::Status s = Create(0, request, &again);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(again.handover_id(), first.handover_id());
  request.mutable_timeout()->set_seconds(25);
  s = Create(0, request, &again);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "timeout")) << s.error_message();
  WaitDone(0, first.handover_id());
}

// An enum value this daemon does not know is refused before the machine
// sees it: no handover, nothing reserved.
TEST_F(HardeningTest, UnknownCommitPathIsInvalidArgumentWithoutAHandover) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  v1::CreateHandoverRequest request;
  request.set_request_id("bad-commit-path");
  request.set_commit_path(static_cast<v1::CommitPath>(7));
  v1::Handover h;
  grpc::Status s = Create(0, request, &h);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "commit_path")) << s.error_message();
  EXPECT_TRUE(History(0).empty());
  EXPECT_TRUE(History(1).empty());
}

// The commit path is part of the request a request_id names (needs the
// machine's comparison of requested_commit_path, branch fp-protocol).
TEST_F(HardeningTest, RequestIdReusedWithAnotherCommitPathIsAlreadyExists) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  v1::CreateHandoverRequest request;
  request.set_request_id("reused-path");
  request.set_commit_path(v1::COMMIT_PATH_DAEMON);
  v1::Handover first;
  ASSERT_TRUE(Create(0, request, &first).ok());
  EXPECT_EQ(first.requested_commit_path(), v1::COMMIT_PATH_DAEMON);
  v1::Handover again;
  grpc::Status s = Create(0, request, &again);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(again.handover_id(), first.handover_id());
  request.set_commit_path(v1::COMMIT_PATH_KERNEL);
  s = Create(0, request, &again);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << s.error_message();
  WaitDone(0, first.handover_id());
}

// Issue 16.5: an Offer whose epoch is not the record's next one is refused
// before anything is reserved, and the next real handover still works.
TEST_F(HardeningTest, OfferFromTheFutureIsRefusedAndDoesNotPoisonTheEpoch) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  v1::OfferRequest offer = PlausibleOffer("forged-epoch");
  offer.set_new_epoch(uint64_t{1} << 39);
  v1::OfferResponse response;
  grpc::Status s = ForgedOffer(offer, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(response.accepted());
  EXPECT_EQ(response.refusal_reason(), v1::REFUSAL_REASON_STALE_EPOCH)
      << response.DebugString();
  EXPECT_TRUE(History(1).empty());
  ExpectHandoverCommits("after-forged-epoch");
  ExpectHandoverCommits("after-forged-epoch-back", /*from=*/1);
}

// An Offer naming a source that does not hold the NIC is refused too.
TEST_F(HardeningTest, OfferFromANodeThatDoesNotOwnTheNicIsRefused) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  ExpectHandoverCommits("to-node1");  // node1 owns it now at epoch 2
  v1::OfferRequest offer = PlausibleOffer("forged-owner");
  offer.set_target_node("node1");
  offer.set_new_epoch(3);
  v1::OfferResponse response;
  ASSERT_TRUE(ForgedOffer(offer, &response).ok());
  EXPECT_FALSE(response.accepted());
  EXPECT_EQ(History(1).size(), 1u);
}

// Issue 16.7: peers are authenticated by default: a local client that only
// names a configured node is UNAUTHENTICATED and changes nothing.
TEST_F(HardeningTest, OfferWithoutTheClusterSecretIsUnauthenticated) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  v1::OfferResponse response;
  grpc::Status s = ForgedOffer(PlausibleOffer("no-secret"), &response, Secret::kNone);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  s = ForgedOffer(PlausibleOffer("wrong-secret"), &response, Secret::kWrong);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_NE(s.error_message().find("secret"), std::string::npos) << s.error_message();
  EXPECT_TRUE(History(1).empty());
  ExpectHandoverCommits("after-unauthenticated-offer");
}

// Issue 16.7: the operator's listeners (unix socket and TCP) serve no
// PeerService at all, even to a client that holds the secret: a forged
// Offer there is UNIMPLEMENTED, reserves nothing, and a real handover to
// that node commits right after (it used to fail BUSY for about 32 s).
TEST_F(HardeningTest, OperatorListenersRefusePeerService) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  for (const std::string& address : {cluster_.socket_address(1), cluster_.tcp_address(1)}) {
    v1::OfferResponse response;
    grpc::Status s =
        ForgedOffer(PlausibleOffer("via-operator"), &response, Secret::kTheCluster, address);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << address << ": "
                                                               << s.error_message();
    EXPECT_FALSE(response.accepted()) << address;
  }
  EXPECT_TRUE(History(1).empty());
  ExpectHandoverCommits("after-offer-on-operator-socket");
}

// Issue 16.4: a refused Offer leaves no trace in the target's history.
TEST_F(HardeningTest, RefusedMalformedOfferLeavesNoHistory) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  v1::OfferRequest offer = PlausibleOffer("forged-mode");
  offer.set_interrupt_mode(static_cast<v1::InterruptMode>(99));
  v1::OfferResponse response;
  ASSERT_TRUE(ForgedOffer(offer, &response).ok());
  EXPECT_FALSE(response.accepted());
  EXPECT_EQ(response.refusal_reason(), v1::REFUSAL_REASON_UNSUPPORTED) << response.DebugString();

  offer = PlausibleOffer("forged-count");
  offer.set_vector_count(100000);
  ASSERT_TRUE(ForgedOffer(offer, &response).ok());
  EXPECT_FALSE(response.accepted());
  EXPECT_EQ(response.refusal_reason(), v1::REFUSAL_REASON_UNSUPPORTED) << response.DebugString();

  EXPECT_TRUE(History(1).empty());
  ExpectHandoverCommits("after-malformed-offer");
}

// Issue 16.2: every string field is bounded; an error quotes at most a
// prefix of what it refuses (a 1 MiB echo overflowed gRPC's metadata limit).
TEST_F(HardeningTest, OversizedStringsAreInvalidArgumentWithoutAnEcho) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  const std::string huge(1 << 20, 'e');
  auto expect_refused = [&](const grpc::Status& s, const std::string& field) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message().size();
    EXPECT_TRUE(absl::StartsWith(s.error_message(), field + ":")) << s.error_message();
    EXPECT_LT(s.error_message().size(), 512u);
  };
  for (const char* field : {"nic", "target_node", "request_id"}) {
    v1::CreateHandoverRequest request;
    request.set_request_id("r1");
    request.set_nic(kNic);
    request.set_target_node("node1");
    if (std::string(field) == "nic") request.set_nic(huge);
    if (std::string(field) == "target_node") request.set_target_node(huge);
    if (std::string(field) == "request_id") request.set_request_id(huge);
    grpc::ClientContext ctx;
    v1::Handover h;
    expect_refused(Stub(0)->CreateHandover(&ctx, request, &h), field);
  }
  {
    v1::GetNicRequest request;
    request.set_nic(huge);
    grpc::ClientContext ctx;
    v1::Nic nic;
    expect_refused(Stub(0)->GetNic(&ctx, request, &nic), "nic");
  }
  {
    v1::CancelHandoverRequest request;
    request.set_handover_id("x");
    request.set_reason(huge);
    grpc::ClientContext ctx;
    v1::Handover h;
    expect_refused(Stub(0)->CancelHandover(&ctx, request, &h), "reason");
  }
  {
    v1::OfferRequest offer = PlausibleOffer(huge);
    v1::OfferResponse response;
    expect_refused(ForgedOffer(offer, &response), "handover_id");
  }
  EXPECT_TRUE(History(0).empty());
  EXPECT_TRUE(History(1).empty());
  // nicctl: bad input is exit 2, with a short message.
  auto r = cluster_.Nicctl(0, {"nic", "show", std::string(100 << 10, 'n')});
  EXPECT_EQ(r.exit_code, 2) << r.err.substr(0, 200);
  EXPECT_LT(r.err.size(), 512u);
}

// Issue 15: RecoverNic takes a request_id like CreateHandover (a retry of
// the decision reuses it); without one it is refused before the machine.
TEST_F(HardeningTest, RecoverNicWithoutRequestIdIsInvalidArgument) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  v1::RecoverNicRequest request;
  request.set_nic(kNic);
  request.set_decision(v1::RECOVERY_DECISION_ABORT);
  v1::RecoverNicResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  grpc::Status s = Stub(0)->RecoverNic(&ctx, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "request_id:")) << s.error_message();
}

// Issue 16.10 (part): concurrent WatchHandover streams are capped with a
// clear RESOURCE_EXHAUSTED, and a slot is free again once a stream ends.
TEST_F(HardeningTest, WatchStreamsAreCapped) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  ASSERT_EQ(cluster_.FakeMachine({"set-fault", "--node", "node0", "--op", "reroute", "--hang"})
                .exit_code,
            0);
  v1::CreateHandoverRequest request;
  request.set_request_id("watched");
  v1::Handover h;
  ASSERT_TRUE(Create(0, request, &h).ok());
  auto channel =
      grpc::CreateChannel(cluster_.socket_address(0), grpc::InsecureChannelCredentials());
  auto stub = v1::NodeService::NewStub(channel);
  v1::WatchHandoverRequest watch;
  watch.set_handover_id(h.handover_id());
  struct Stream {
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReader<v1::HandoverEvent>> reader;
  };
  std::vector<Stream> streams;
  constexpr int kMax = 128;  // NodeServiceImpl::kMaxWatchStreams
  for (int i = 0; i < kMax; ++i) {
    Stream s{std::make_unique<grpc::ClientContext>(), nullptr};
    s.ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
    s.reader = stub->WatchHandover(s.ctx.get(), watch);
    v1::HandoverEvent first;
    ASSERT_TRUE(s.reader->Read(&first)) << "stream " << i;  // it is being served
    streams.push_back(std::move(s));
  }
  auto one_more = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    auto reader = stub->WatchHandover(&ctx, watch);
    v1::HandoverEvent event;
    if (!reader->Read(&event)) return reader->Finish();  // refused: the server's status
    ctx.TryCancel();
    reader->Finish();
    return grpc::Status::OK;
  };
  grpc::Status refused = one_more();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "WatchHandover")) << refused.error_message();
  // Other calls are still answered.
  EXPECT_EQ(History(0).size(), 1u);
  // One stream ends: a new one is served again.
  streams.back().ctx->TryCancel();
  streams.back().reader->Finish();
  streams.pop_back();
  EXPECT_TRUE(WaitUntil([&] { return one_more().ok(); }, absl::Seconds(30),
                        absl::Milliseconds(100)));
  for (auto& s : streams) s.ctx->TryCancel();
  for (auto& s : streams) s.reader->Finish();
  ASSERT_EQ(cluster_.FakeMachine({"clear-fault"}).exit_code, 0);
}

}  // namespace
}  // namespace nichandover
