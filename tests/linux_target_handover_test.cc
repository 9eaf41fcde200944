// A Linux node as the target of a live handover, through real processes on
// one side: the simulated machine (nh-sim-machine), node0's simulated kernel
// and its nichandoverd on the sim backend, nicctl; node1 is a nichandoverd
// (in this process) on the linux backend over a fake hook module that holds
// the simulated NIC the way a guest's contract driver would (on standby,
// config space from the machine), with its ownership records CASed in the
// machine's memory (LinuxPlatformConfig.machine_memory). What a real guest
// adds -- the kernel module and hook/simnic behind ivshmem -- is the VM
// test's; here the protocol and both backends run for real.
#include <signal.h>

#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/sim_cluster.h"
#include "tests/testing/daemon_cluster.h"
#include "tests/testing/process.h"

namespace nichandover {
namespace testing {
namespace {

// Machine APIC ID of node1's first CPU (SimCluster: node1 has 2 and 3) and
// the x86 vectors fake_linux_node's driver sets aside from.
constexpr uint32_t kNode1Apic = 2;
constexpr uint32_t kFirstVector = 0x40;

class LinuxTargetHandoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.StartMachine().ok()) << cluster_.Logs();
    ASSERT_TRUE(cluster_.StartKernel(0).ok()) << cluster_.Logs();
    ASSERT_TRUE(cluster_.StartDaemon(0).ok()) << cluster_.Logs();

    const std::string config = cluster_.dir() + "/node1-linux.conf";
    WriteFile(config, absl::StrFormat(
                          "node_id: \"node1\"\n"
                          "listen: \"unix:%s\"\n"
                          "peer_listen: \"unix:%s\"\n"
                          "peers { node_id: \"node0\" address: \"unix:%s\" }\n"
                          "cpus { cpu: 0 apic_id: %d }\n"
                          "cpus { cpu: 1 apic_id: 3 }\n"
                          "platform { linux { nics: \"%s\" machine_memory: \"%s\" } }\n"
                          "state_dir: \"%s/node1.state\"\n"
                          // The cluster's secret: peers are always authenticated.
                          "peer_auth { secret_file: \"%s/cluster.secret\" }\n",
                          cluster_.daemon_socket(1), cluster_.peer_socket(1),
                          cluster_.peer_socket(0), kNode1Apic,
                          kSimNic, cluster_.machine_path(), cluster_.dir(), cluster_.dir()));
    report_ = cluster_.dir() + "/node1-module.txt";
    auto node = Subprocess::Start(
        {RunfilePath("tests/linux_node/fake_linux_node"), config,
         RunfilePath("daemon/platform/linux/testdata/node-dump.txt"), report_},
        cluster_.dir());
    ASSERT_TRUE(node.ok()) << node.status();
    node1_ = std::make_unique<Subprocess>(std::move(*node));
    const std::string address = "unix:" + cluster_.daemon_socket(1);
    ASSERT_TRUE(WaitUntil([&] { return !node1_->running() || IsServing(address); },
                          absl::Seconds(20)) &&
                node1_->running())
        << "node1 did not come up: " << node1_->Stderr();
  }

  // Stops node1 and returns what its module reported.
  std::map<std::string, std::string> StopNode1() {
    node1_->Signal(SIGTERM);
    auto code = node1_->Wait(absl::Seconds(30));
    EXPECT_TRUE(code.ok() && *code == 0) << node1_->Stderr();
    std::map<std::string, std::string> out;
    for (absl::string_view line : absl::StrSplit(ReadFile(report_), '\n', absl::SkipEmpty())) {
      std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
      out[kv.first] = kv.second;
    }
    return out;
  }

  SimCluster cluster_;
  std::unique_ptr<Subprocess> node1_;
  std::string report_;
};

TEST_F(LinuxTargetHandoverTest, ALinuxNodeTakesTheNicLiveWithTheSourcesRings) {
  CommandResult moved = cluster_.Nicctl(0, {"handover", kSimNic, "--to", "node1"});
  ASSERT_EQ(moved.exit_code, 0) << moved.out << moved.err << cluster_.Logs()
                                << node1_->Stderr();
  EXPECT_NE(moved.out.find("committed"), std::string::npos) << moved.out;

  // The record in the machine's memory: node1 owns the NIC at epoch 2.
  sim::Ownership record = cluster_.Record();
  EXPECT_EQ(record.state, sim::OwnershipState::kActive);
  EXPECT_EQ(record.owner, 1);
  EXPECT_EQ(record.epoch, 2u);
  // node0's kernel released it; node1's daemon reports its hook running.
  CommandResult shown = cluster_.Nicctl(0, {"nic", "show", kSimNic, "--json"});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("node1"), std::string::npos) << shown.out;

  // node0's kernel wrote node1's reserved messages into the NIC's MSI-X
  // table: entry i now names APIC 2, vector 0x40 + i.
  std::map<std::string, std::string> module = StopNode1();
  int reserved = std::stoi(module["reserved"]);
  ASSERT_GT(reserved, 0) << ReadFile(report_);
  for (int entry = 0; entry < reserved; ++entry) {
    const auto* words = &cluster_.machine().nic().msix_bar[entry * 4];
    EXPECT_EQ(words[0].load(), 0xfee00000u | (kNode1Apic << 12)) << "entry " << entry;
    EXPECT_EQ(words[1].load(), 0u) << "entry " << entry;
    EXPECT_EQ(words[2].load(), kFirstVector + static_cast<uint32_t>(entry)) << "entry " << entry;
  }

  // node1's module reserved at epoch 2 and attached at epoch 2 with exactly
  // the ring state node0's kernel stored beside the record.
  auto handoffs = cluster_.machine().ReadHandoff(2);
  ASSERT_TRUE(handoffs.ok()) << handoffs.status();
  ASSERT_EQ(handoffs->size(), 1u);
  const sim::RingState* handoff = &handoffs->front();
  EXPECT_EQ(module["reserve_epoch"], "2");
  EXPECT_EQ(module["state"], "running");
  EXPECT_EQ(module["epoch"], "2");
  EXPECT_EQ(module["attach_rings"], "1");
  EXPECT_EQ(module["rings"], absl::StrFormat("0:%d:%d:%d:%d", handoff->rx_next_to_clean,
                                             handoff->rx_next_to_use, handoff->tx_next_to_clean,
                                             handoff->tx_next_to_use))
      << ReadFile(report_);
}

}  // namespace
}  // namespace testing
}  // namespace nichandover
