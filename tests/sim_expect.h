// Test support: what the tests on the simulated machine check about traffic
// and the NIC's placement, shared by tests/sim_handover_test.cc and the soak
// (tests/sim_soak_test.cc). gtest expectations; read the machine's shared
// memory and nh-sim-traffic's report, never the daemons' answers.
#ifndef NICHANDOVER_TESTS_SIM_EXPECT_H_
#define NICHANDOVER_TESTS_SIM_EXPECT_H_

#include <string>

#include "absl/time/time.h"
#include "tests/sim_cluster.h"

namespace nichandover {
namespace testing {

// Every packet sent in this direction arrived exactly once, in order.
void ExpectExactlyOnceInOrder(const TrafficDirection& d, const std::string& name,
                              const std::string& json);

// Drops may happen (a stopped kernel, a full ring) but each one is counted:
// inbound, every sequence number is received or dropped at a counted place;
// outbound, a packet the socket took is never lost (a full socket refuses it
// before it gets a number). Nothing is duplicated or reordered.
void ExpectExactAccounting(const TrafficResult& r);

// The node whose kernel runs the NIC now: the record is ACTIVE, names it, and
// over `window` packets flow in both directions through that node's kernel
// only, and its interrupts reach that node only.
void ExpectTrafficOnExactlyOneNode(SimCluster& cluster, int owner,
                                   absl::Duration window = absl::Milliseconds(400));

}  // namespace testing
}  // namespace nichandover

#endif  // NICHANDOVER_TESTS_SIM_EXPECT_H_
