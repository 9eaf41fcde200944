// Test support: the drain tests' cluster (tests/testing/drain_cluster.h) on
// the simulated machine (tests/sim_cluster.h): one nh-sim-kernel and one
// nichandoverd per node, two RX/TX queue pairs per NIC, and nh-sim-traffic on
// every NIC and queue from StartAll on, so every drain runs under traffic.
#ifndef NICHANDOVER_TESTS_SIM_DRAIN_CLUSTER_H_
#define NICHANDOVER_TESTS_SIM_DRAIN_CLUSTER_H_

#include <memory>

#include "tests/testing/drain_cluster.h"

namespace nichandover {
namespace testing {

// No hold knobs (UNIMPLEMENTED): the sim backend's platform calls are the
// simulated kernel's, which a test does not pause at one call. ExhaustVectors
// restarts the node's kernel with too few vectors.
std::unique_ptr<DrainCluster> MakeSimDrainCluster(const DrainMachineSpec& spec);

}  // namespace testing
}  // namespace nichandover

#endif  // NICHANDOVER_TESTS_SIM_DRAIN_CLUSTER_H_
