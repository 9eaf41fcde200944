#include "tests/testing/drain_cluster.h"

#include <signal.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/platform/fake/fake_machine.h"
#include "tests/testing/daemon_cluster.h"

namespace nichandover {
namespace testing {
namespace {

using platform::fake::FakeFault;
using platform::fake::FakeMachine;
using platform::fake::FakeOperation;

class FakeDrainCluster : public DrainCluster {
 public:
  explicit FakeDrainCluster(const DrainMachineSpec& spec) : cluster_(Options(spec)) {}

  int size() const override { return cluster_.size(); }
  std::string node_id(int i) const override { return cluster_.node_id(i); }
  std::string dir() const override { return cluster_.dir(); }
  std::string nic_bdf(int i) const override { return DrainNicBdf(i); }
  absl::Status Start(int i) override { return cluster_.Start(i); }
  absl::Status Kill(int i) override { return cluster_.Stop(i, SIGKILL).status(); }

  std::string address(int i) const override { return cluster_.socket_address(i); }
  std::vector<std::string> NicctlCommand(int i) const override {
    return {RunfilePath("cli/nicctl"), "--server", cluster_.socket_address(i)};
  }

  absl::StatusOr<std::string> SettledOwner(const std::string& bdf) override {
    FakeMachine machine(cluster_.machine_path());
    if (absl::Status s = machine.CheckSettled(bdf); !s.ok()) return s;
    auto view = machine.Inspect(bdf);
    if (!view.ok()) return view.status();
    return view->ownership.owner_node();
  }

  void ExpectTrafficAccounted() override {}  // the fake NICs carry no packets

  absl::Status HoldAttach(int node) override { return Hold(node, platform::fake::FAKE_OP_ATTACH); }
  absl::Status HoldQuiesce(int node) override {
    return Hold(node, platform::fake::FAKE_OP_QUIESCE);
  }
  absl::StatusOr<int> HeldAttaches(int node) override {
    return Hits(node, platform::fake::FAKE_OP_ATTACH);
  }
  absl::StatusOr<int> HeldQuiesces(int node) override {
    return Hits(node, platform::fake::FAKE_OP_QUIESCE);
  }
  absl::Status ExhaustVectors(int node) override {
    FakeFault fault;
    fault.set_node_id(node_id(node));
    fault.set_operation(platform::fake::FAKE_OP_RESERVE);
    fault.set_fail_code(static_cast<int32_t>(absl::StatusCode::kResourceExhausted));
    fault.set_fail_always(true);
    return FakeMachine(cluster_.machine_path()).SetFault(fault);
  }
  absl::Status ReleaseHolds() override {
    return FakeMachine(cluster_.machine_path())
        .ClearFaults("", platform::fake::FAKE_OP_UNSPECIFIED);
  }

 private:
  static ClusterOptions Options(const DrainMachineSpec& spec) {
    ClusterOptions options;
    for (int n = 0; n < spec.nodes; ++n) {
      options.nodes.push_back(NodeSpec{absl::StrCat("node", n), {{0, n * 16}, {1, n * 16 + 1}}});
    }
    options.fake_nics.clear();
    for (size_t i = 0; i < spec.owners.size(); ++i) {
      absl::StrAppend(&options.fake_nics, "nics { bdf: \"", DrainNicBdf(i),
                      "\" vendor_id: 0x8086 device_id: 0x10d3 class_code: 0x020000 "
                      "queue_count: 2 mode: INTERRUPT_MODE_MSIX vector_count: 3 owner_node: "
                      "\"node",
                      spec.owners[i], "\" default_driver: \"e1000e\" }\n");
    }
    options.extra_config = kDrainTestTimeouts;
    return options;
  }

  absl::Status Hold(int node, FakeOperation operation) {
    FakeFault fault;
    fault.set_node_id(node_id(node));
    fault.set_operation(operation);
    fault.set_hang(true);
    return FakeMachine(cluster_.machine_path()).SetFault(fault);
  }

  absl::StatusOr<int> Hits(int node, FakeOperation operation) {
    auto hits = FakeMachine(cluster_.machine_path()).FaultHits(node_id(node), operation);
    if (!hits.ok()) return hits.status();
    return static_cast<int>(*hits);
  }

  DaemonCluster cluster_;
};

}  // namespace

std::string DrainNicBdf(int i) { return absl::StrFormat("0000:%02x:00.0", 0x10 + i); }

absl::Status DrainCluster::StartAll() {
  for (int i = 0; i < size(); ++i) {
    if (absl::Status s = Start(i); !s.ok()) return s;
  }
  return absl::OkStatus();
}

CommandResult DrainCluster::Nicctl(int i, const std::vector<std::string>& args,
                                   absl::Duration timeout) {
  std::vector<std::string> argv = NicctlCommand(i);
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, dir(), {}, timeout);
}

absl::StatusOr<Subprocess> DrainCluster::StartNicctl(int i, const std::vector<std::string>& args) {
  std::vector<std::string> argv = NicctlCommand(i);
  argv.insert(argv.end(), args.begin(), args.end());
  return Subprocess::Start(argv, dir());
}

std::unique_ptr<DrainCluster> MakeFakeDrainCluster(const DrainMachineSpec& spec) {
  return std::make_unique<FakeDrainCluster>(spec);
}

}  // namespace testing
}  // namespace nichandover
