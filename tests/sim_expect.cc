#include "tests/sim_expect.h"

#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace nichandover {
namespace testing {

void ExpectExactlyOnceInOrder(const TrafficDirection& d, const std::string& name,
                              const std::string& json) {
  EXPECT_GT(d.sent, 0u) << name << ": " << json;
  EXPECT_EQ(d.unique, d.sent) << name << ": " << json;
  EXPECT_EQ(d.lost, 0u) << name << ": " << json;
  EXPECT_EQ(d.duplicated, 0u) << name << ": " << json;
  EXPECT_EQ(d.out_of_order, 0u) << name << ": " << json;
}

void ExpectExactAccounting(const TrafficResult& r) {
  EXPECT_EQ(r.inbound.sent,
            r.inbound.unique + r.inbound.wire_drops + r.rx_missed + r.rx_socket_drops)
      << r.json;
  EXPECT_EQ(r.outbound.sent, r.outbound.unique) << r.json;
  for (const TrafficDirection* d : {&r.inbound, &r.outbound}) {
    EXPECT_GT(d->unique, 0u) << r.json;
    EXPECT_EQ(d->duplicated, 0u) << r.json;
    EXPECT_EQ(d->out_of_order, 0u) << r.json;
  }
}

void ExpectTrafficOnExactlyOneNode(SimCluster& cluster, int owner, absl::Duration window) {
  const int other = 1 - owner;
  sim::Ownership record = cluster.Record();
  ASSERT_EQ(record.state, sim::OwnershipState::kActive);
  ASSERT_EQ(record.owner, owner);
  EXPECT_EQ(cluster.machine().nic().running_node.load(), owner);
  uint64_t rx[2] = {cluster.RxDelivered(0), cluster.RxDelivered(1)};
  uint64_t tx[2] = {cluster.DriverXmits(0), cluster.DriverXmits(1)};
  uint64_t irqs[2] = {cluster.Delivered(0), cluster.Delivered(1)};
  // At least `window` to see nothing reach the other node, and as long as a
  // loaded machine needs for the owner to move packets both ways.
  absl::SleepFor(window);
  EXPECT_TRUE(WaitUntil(
      [&] {
        return cluster.RxDelivered(owner) > rx[owner] && cluster.DriverXmits(owner) > tx[owner] &&
               cluster.Delivered(owner) > irqs[owner];
      },
      absl::Seconds(30), absl::Milliseconds(20)))
      << SimCluster::node_id(owner) << " moves no packets or takes no interrupts";
  EXPECT_EQ(cluster.RxDelivered(other), rx[other]) << SimCluster::node_id(other);
  EXPECT_EQ(cluster.DriverXmits(other), tx[other]) << SimCluster::node_id(other);
  EXPECT_EQ(cluster.Delivered(other), irqs[other])
      << SimCluster::node_id(other) << " still takes the NIC's interrupts";
  for (int i = 0; i < cluster.nodes(); ++i) {
    EXPECT_EQ(cluster.machine().node(i).counters.polls_while_quiesced.load(), 0u);
  }
}

}  // namespace testing
}  // namespace nichandover
