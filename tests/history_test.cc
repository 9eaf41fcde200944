// The handover history of real daemons is bounded by history_per_nic
// (docs/configuration.md): after many handovers each daemon lists only the
// NIC's newest ones, forgets older ones (GetHandover: NOT_FOUND), and a
// restart from the journal keeps the same bound.
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/daemon_cluster.h"
#include "tests/testing/node_client.h"

namespace nichandover {
namespace testing {
namespace {

constexpr char kNic[] = "0000:03:00.0";
constexpr int kKept = 3;

std::vector<std::string> ListedIds(DaemonCluster& cluster, int node) {
  v1::ListHandoversResponse list;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::Status s =
      NodeServiceStub(cluster.socket_address(node))->ListHandovers(&ctx, {}, &list);
  EXPECT_TRUE(s.ok()) << s.error_message();
  std::vector<std::string> ids;
  for (const auto& h : list.handovers()) ids.push_back(h.handover_id());
  return ids;
}

TEST(HistoryTest, DaemonsKeepTheNewestHandoversPerNicAcrossRestarts) {
  ClusterOptions options;
  options.nodes = {NodeSpec{"node0", {{0, 0}}}, NodeSpec{"node1", {{0, 16}}}};
  options.extra_config = absl::StrCat("history_per_nic: ", kKept);
  DaemonCluster cluster(options);
  ASSERT_TRUE(cluster.StartAll().ok());

  std::vector<std::string> ids;  // oldest first
  int owner = 0;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<v1::Handover> started =
        StartHandover(cluster.socket_address(owner), kNic, cluster.node_id(1 - owner),
                      absl::StrCat("history-", i));
    ASSERT_TRUE(started.ok()) << started.status();
    const std::string id = started->handover_id();
    bool committed = false;
    ASSERT_TRUE(WaitUntil(
        [&] {
          absl::StatusOr<v1::Handover> h = GetHandover(cluster.socket_address(owner), id);
          committed = h.ok() && h->done() && h->phase() == v1::HANDOVER_PHASE_COMMITTED;
          return h.ok() && h->done();
        },
        absl::Seconds(60)));
    ASSERT_TRUE(committed) << "handover " << i;
    ids.push_back(id);
    owner = 1 - owner;
  }
  const std::vector<std::string> newest(ids.rbegin(), ids.rbegin() + kKept);

  for (int node = 0; node < 2; ++node) {
    SCOPED_TRACE(cluster.node_id(node));
    EXPECT_EQ(ListedIds(cluster, node), newest);
    absl::StatusOr<v1::Handover> oldest = GetHandover(cluster.socket_address(node), ids[0]);
    EXPECT_EQ(oldest.status().code(), absl::StatusCode::kNotFound) << oldest.status();
    EXPECT_TRUE(GetHandover(cluster.socket_address(node), ids.back()).ok());
    // The journal is replayed to the same bounded history.
    ASSERT_TRUE(cluster.Stop(node, SIGKILL).ok());
    ASSERT_TRUE(cluster.Start(node).ok());
    EXPECT_EQ(ListedIds(cluster, node), newest);
  }
}

}  // namespace
}  // namespace testing
}  // namespace nichandover
