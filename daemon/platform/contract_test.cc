// The platform contract (daemon/platform/platform.h), one suite run against
// every backend: fake (the fake machine file), sim (the simulated machine and
// its kernels over their control sockets), shared_file (the arbiter alone),
// linux (over the fake hook module) and vm (a real host agent over a fake
// hypervisor, the guest's hook module faked). A backend that lacks a part
// (shared_file has only an arbiter, linux's arbiter is one of the others)
// runs the tests of the parts it has.
//
// What every backend must do: refuse a call whose fence (epoch, operation
// id) is below the highest it accepted for the device -- a stale epoch, and
// a late call of the current epoch -- with FAILED_PRECONDITION and nothing
// changed; admit a retry with the same fence and a retry with a higher one;
// answer CAS as compare-and-swap (the winner gets its desired record, the
// loser the current one); keep the handoff rings of the highest fence; and
// answer NOT_FOUND for a device the machine does not have.
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent_service.h"
#include "daemon/platform/fake/fake_machine.h"
#include "daemon/platform/fake/fake_platform.h"
#include "daemon/platform/fake/machine_file.h"
#include "daemon/platform/fake/machine_model.h"
#include "daemon/platform/linux/fake_hook_module.h"
#include "daemon/platform/linux/linux_hook.h"
#include "daemon/platform/linux/linux_router.h"
#include "daemon/platform/ownership_record.h"
#include "daemon/platform/platform.h"
#include "daemon/platform/shared_file/shared_file_arbiter.h"
#include "daemon/platform/sim/sim_platform.h"
#include "daemon/platform/vm/vm_platform.h"
#include "fake_hypervisor.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "sim/control_server.h"
#include "sim/interrupt_fabric.h"
#include "sim/kernel.h"
#include "sim/machine.h"
#include "sim/testing.h"

namespace nichandover {
namespace platform {
namespace {

namespace fs = std::filesystem;
namespace simulated = ::nichandover::sim;
using ::testing::HasSubstr;

// Operation ids of two daemon incarnations.
constexpr uint64_t kFirstStart = uint64_t{1} << 32;
constexpr uint64_t kRestart = uint64_t{2} << 32;

std::string TestName() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = absl::StrCat(info->test_suite_name(), "_", info->name());
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  return name;
}

std::string TempPath(const std::string& name) {
  return (fs::path(::testing::TempDir()) / name).string();
}

// One backend as seen from one node that runs `bdf` at `epoch` (the record,
// where the backend has one, is ACTIVE(node, epoch)). Parts the backend does
// not have are null.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual Hook* hook() { return nullptr; }
  virtual Router* router() { return nullptr; }
  virtual Arbiter* arbiter() { return nullptr; }
  // Messages Reroute may write (the device's own, unless the backend routes
  // otherwise).
  virtual std::vector<v1::MsiMessage> RerouteTarget() { return *router()->ReadMessages(bdf); }
  // The backend's own rule for ring states it can store (sim: one queue).
  std::vector<v1::QueueRingState> Rings(uint32_t rx_next_to_use) {
    v1::QueueRingState ring;
    ring.set_queue(0);
    ring.set_rx_next_to_clean(rx_next_to_use);
    ring.set_rx_next_to_use(rx_next_to_use);
    ring.set_tx_next_to_clean(7);
    ring.set_tx_next_to_use(7);
    return {ring};
  }

  std::string node;
  std::string other_node;
  std::string bdf;
  std::string unknown_bdf = "0000:7f:1f.7";
  uint64_t epoch = 0;
};

class FakeBackend : public Backend {
 public:
  FakeBackend() {
    path_ = TempPath(TestName() + ".fake-machine");
    fake::FakeMachine machine(path_);
    EXPECT_TRUE(machine.Create(fake::SimpleMachineSpec(2, 2, {"0000:03:00.0"}, 4)).ok());
    absl::StatusOr<Platform> platform = fake::MakeFakePlatform(path_, "node0");
    EXPECT_TRUE(platform.ok()) << platform.status();
    platform_ = *std::move(platform);
    node = "node0";
    other_node = "node1";
    bdf = "0000:03:00.0";
    epoch = platform_.arbiter->Read(bdf)->epoch();
  }
  Hook* hook() override { return platform_.hook.get(); }
  Router* router() override { return platform_.router.get(); }
  Arbiter* arbiter() override { return platform_.arbiter.get(); }

 private:
  std::string path_;
  Platform platform_;
};

// The simulated machine with its device running, the first `node_count`
// nodes of TwoNodeSpec each with its kernel booted in-process and served over
// its control socket, and each node's sim platform over that socket: what the
// sim parameter of every suite here runs on.
class SimulatedNodes {
 public:
  explicit SimulatedNodes(int node_count) {
    path_ = TempPath(TestName() + ".sim-machine");
    auto machine = simulated::Machine::Create(path_, simulated::TwoNodeSpec());
    EXPECT_TRUE(machine.ok()) << machine.status();
    if (!machine.ok()) return;
    machine_ = *std::move(machine);
    device_ = std::make_unique<simulated::DeviceThread>(*machine_);
    for (int i = 0; i < node_count; ++i) BootNode(absl::StrCat("node", i), i);
  }
  ~SimulatedNodes() {
    for (auto& server : servers_) server->Shutdown();
    kernels_.clear();
    device_.reset();
  }
  simulated::Machine& machine() { return *machine_; }
  // Node `i`'s platform; empty if its setup failed (a failure was recorded).
  Platform& platform(int i) { return platforms_[i]; }

 private:
  // Boots `node`'s kernel, serves it and makes its platform; TwoNodeSpec
  // gives node i the APIC IDs 2i and 2i + 1.
  void BootNode(const std::string& node, int index) {
    platforms_.emplace_back();
    simulated::KernelOptions options;
    options.node_id = node;
    auto kernel = simulated::Kernel::Boot(machine_.get(), options);
    EXPECT_TRUE(kernel.ok()) << kernel.status();
    if (!kernel.ok()) return;
    kernels_.push_back(*std::move(kernel));
    // Unix socket paths are short: numbered, not named after the test.
    static int kernels = 0;
    const std::string socket =
        simulated::SocketPath(absl::StrCat("contract-kernel-", ++kernels, ".sock"));
    auto server = simulated::ControlServer::Start(kernels_.back().get(), socket);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return;
    servers_.push_back(*std::move(server));
    v1::DaemonConfig config;
    config.set_node_id(node);
    v1::CpuConfig* cpu = config.add_cpus();
    cpu->set_cpu(0);
    cpu->set_apic_id(static_cast<uint32_t>(2 * index));
    v1::SimPlatformConfig sim_config;
    sim_config.set_machine_path(path_);
    sim_config.set_kernel_socket(socket);
    auto platform = sim::MakeSimPlatform(sim_config, config);
    EXPECT_TRUE(platform.ok()) << platform.status();
    if (platform.ok()) platforms_.back() = *std::move(platform);
  }

  std::string path_;
  std::unique_ptr<simulated::Machine> machine_;
  std::unique_ptr<simulated::DeviceThread> device_;
  std::vector<std::unique_ptr<simulated::Kernel>> kernels_;
  std::vector<std::unique_ptr<simulated::ControlServer>> servers_;
  std::vector<Platform> platforms_;
};

class SimBackend : public Backend {
 public:
  SimBackend() : nodes_(1) {
    node = "node0";
    other_node = "node1";
    bdf = nodes_.machine().bdf();
    epoch = platform().arbiter->Read(bdf)->epoch();
  }
  Hook* hook() override { return platform().hook.get(); }
  Router* router() override { return platform().router.get(); }
  Arbiter* arbiter() override { return platform().arbiter.get(); }

 private:
  Platform& platform() { return nodes_.platform(0); }

  SimulatedNodes nodes_;
};

class SharedFileBackend : public Backend {
 public:
  SharedFileBackend() {
    const std::string path = TempPath(TestName() + ".arbiter");
    node = "node0";
    other_node = "node1";
    bdf = "0000:03:00.0";
    epoch = 4;
    EXPECT_TRUE(
        SharedFileArbiter::Create(path, {node, other_node}, {{bdf, ActiveRecord(node, epoch)}})
            .ok());
    auto arbiter = SharedFileArbiter::Open(path);
    EXPECT_TRUE(arbiter.ok()) << arbiter.status();
    arbiter_ = *std::move(arbiter);
  }
  Arbiter* arbiter() override { return arbiter_.get(); }

 private:
  std::unique_ptr<SharedFileArbiter> arbiter_;
};

// e1000e's MSI-X vectors, running on this node at `epoch`.
linux_backend::testing::FakeFunction RunningE1000e(uint64_t epoch) {
  linux_backend::testing::FakeFunction f;
  f.vectors = {{0, 0xfee00000, 0x4021, false, 24, 0}, {1, 0xfee00000, 0x4022, false, 25, 0}};
  f.max_epoch = epoch;
  return f;
}

class LinuxBackend : public Backend {
 public:
  LinuxBackend()
      : hook_(linux_backend::ModuleConnection(module_.Factory())),
        router_(linux_backend::ModuleConnection(module_.Factory())) {
    node = "node0";
    other_node = "node1";
    bdf = "0000:03:00.0";
    epoch = 3;
    module_.AddFunction(bdf, RunningE1000e(epoch));
  }
  Hook* hook() override { return &hook_; }
  Router* router() override { return &router_; }

 private:
  linux_backend::testing::FakeHookModule module_;
  linux_backend::LinuxHook hook_;
  linux_backend::LinuxRouter router_;
};

std::string I210Dump() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return std::string(srcdir != nullptr ? srcdir : ".") +
         "/nichandover/daemon/platform/vm/testdata/i210-dump.txt";
}

class VmBackend : public Backend {
 public:
  VmBackend() : hypervisor_({"vm-a", "vm-b"}) {
    node = "vm-a";
    other_node = "vm-b";
    bdf = "0000:01:00.0";
    hypervisor_.PlugAtBoot(node, "nic0");
    vmhost::AgentConfig config;
    for (const std::string& name : {node, other_node}) {
      vmhost::VmConfig* vm = config.add_vms();
      vm->set_name(name);
      vm->set_qmp_socket("/nonexistent.qmp");
    }
    vmhost::NicConfig* nic = config.add_nics();
    nic->set_bdf(bdf);
    nic->set_device_id("nic0");
    nic->set_netdev_id("n0");
    nic->set_model("igb");
    nic->set_driver("igb");
    nic->set_mac("52:54:00:12:34:56");
    nic->set_bus("rp1");
    nic->set_stream_socket("/nonexistent.sock");
    nic->set_initial_owner(node);
    config.set_state_file(TempPath(TestName() + ".agent-state"));
    auto agent = vmhost::Agent::Create(config, &hypervisor_);
    EXPECT_TRUE(agent.ok()) << agent.status();
    agent_ = *std::move(agent);
    service_ = std::make_unique<vmhost::AgentService>(agent_.get());
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();

    // The guest: its /sys with the NIC plugged and probed, its hook module.
    const fs::path sysfs = TempPath(TestName() + ".sysfs");
    fs::remove_all(sysfs);
    fs::create_directories(sysfs / "bus/pci/drivers/igb");
    const fs::path dir = sysfs / "bus/pci/devices" / bdf;
    fs::create_directories(dir);
    fs::create_directory_symlink("../../drivers/igb", dir / "driver");
    fs::create_directories(dir / "net/eth1");
    fs::create_directories(sysfs / "class/net/eth1/queues/tx-0");
    epoch = agent_->Read(bdf)->epoch();
    module_.AddFunction(bdf, RunningE1000e(epoch));

    vm::VmMachineAccess access;
    access.linux.pci.method = "dump";
    access.linux.pci.params["dump.name"] = I210Dump();
    access.linux.sysfs_root = sysfs.string();
    access.linux.open_module = module_.Factory();
    access.agent = vmhost::VmAgent::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
    v1::VmPlatformConfig vm_config;
    vm_config.set_vm_name(node);
    v1::DaemonConfig daemon;
    daemon.set_node_id(node);
    auto platform = vm::MakeVmPlatformWith(access, vm_config, daemon);
    EXPECT_TRUE(platform.ok()) << platform.status();
    platform_ = *std::move(platform);
  }
  ~VmBackend() override { server_->Shutdown(); }
  Hook* hook() override { return platform_.hook.get(); }
  Router* router() override { return platform_.router.get(); }
  Arbiter* arbiter() override { return platform_.arbiter.get(); }
  // A VM cannot write messages for another node: the hypervisor routes.
  std::vector<v1::MsiMessage> RerouteTarget() override {
    return std::vector<v1::MsiMessage>(router()->ReadMessages(bdf)->size());
  }

 private:
  vmhost::FakeHypervisor hypervisor_;
  std::unique_ptr<vmhost::Agent> agent_;
  std::unique_ptr<vmhost::AgentService> service_;
  std::unique_ptr<grpc::Server> server_;
  linux_backend::testing::FakeHookModule module_;
  Platform platform_;
};

struct BackendParam {
  std::string name;
  std::function<std::unique_ptr<Backend>()> make;
  friend void PrintTo(const BackendParam& param, std::ostream* out) { *out << param.name; }
};

class PlatformContractTest : public ::testing::TestWithParam<BackendParam> {
 protected:
  void SetUp() override {
    backend_ = GetParam().make();
    ASSERT_FALSE(HasFailure()) << "setting up the " << GetParam().name << " backend failed";
  }
  Backend& b() { return *backend_; }

  HookState StateOf() {
    absl::StatusOr<HookStatus> status = b().hook()->Status(b().bdf);
    EXPECT_TRUE(status.ok()) << status.status();
    return status.ok() ? status->state : HookState::kDetached;
  }

  std::unique_ptr<Backend> backend_;
};

#define REQUIRE_PART(part)                                                    \
  if (b().part() == nullptr) {                                                \
    GTEST_SKIP() << GetParam().name << " has no " #part " (nothing to test)"; \
  }

// The refusal every backend gives a fence below its highest: the code, the
// call's fence named, nothing changed (checked by the callers).
void ExpectFenced(const absl::Status& status, const Fence& late) {
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(FenceText(late)));
}

TEST_P(PlatformContractTest, HookRefusesALateCallOfTheSameEpochAndAdmitsTheRetry) {
  REQUIRE_PART(hook);
  const Fence quiesce{b().epoch, kFirstStart + 2};
  ASSERT_TRUE(b().hook()->Quiesce(b().bdf, quiesce, absl::Seconds(5)).ok());
  // A Resume issued before the Quiesce (a lower operation id) lands late.
  const Fence late{b().epoch, kFirstStart + 1};
  ExpectFenced(b().hook()->Resume(b().bdf, late), late);
  EXPECT_EQ(StateOf(), HookState::kQuiesced);
  // The daemon's retry carries a new, higher operation id.
  EXPECT_TRUE(b().hook()->Resume(b().bdf, Fence{b().epoch, kFirstStart + 3}).ok());
  EXPECT_EQ(StateOf(), HookState::kRunning);
}

TEST_P(PlatformContractTest, HookAdmitsTheSameCallTwice) {
  REQUIRE_PART(hook);
  const Fence quiesce{b().epoch, kFirstStart + 1};
  ASSERT_TRUE(b().hook()->Quiesce(b().bdf, quiesce, absl::Seconds(5)).ok());
  EXPECT_TRUE(b().hook()->Quiesce(b().bdf, quiesce, absl::Seconds(5)).ok());
  EXPECT_EQ(StateOf(), HookState::kQuiesced);
  const Fence resume{b().epoch, kFirstStart + 2};
  EXPECT_TRUE(b().hook()->Resume(b().bdf, resume).ok());
  EXPECT_TRUE(b().hook()->Resume(b().bdf, resume).ok());
  EXPECT_EQ(StateOf(), HookState::kRunning);
}

TEST_P(PlatformContractTest, HookRefusesAStaleEpochWhateverItsOperationId) {
  REQUIRE_PART(hook);
  ASSERT_GE(b().epoch, 1u);
  ASSERT_TRUE(
      b().hook()->Quiesce(b().bdf, Fence{b().epoch, kFirstStart + 1}, absl::Seconds(5)).ok());
  // A daemon that restarted (higher operation ids) but lost the record.
  const Fence stale{b().epoch - 1, kRestart + 1};
  ExpectFenced(b().hook()->Resume(b().bdf, stale), stale);
  ExpectFenced(b().hook()->Release(b().bdf, stale), stale);
  EXPECT_EQ(StateOf(), HookState::kQuiesced);
}

TEST_P(PlatformContractTest, ALateRestoreAfterRecoveryLeavesTheNicRunning) {
  REQUIRE_PART(hook);
  REQUIRE_PART(router);
  // A source quiesces and reroutes; its daemon crashes with a Restore in
  // flight; the restarted daemon recovers with Restore and Resume.
  const std::vector<v1::MsiMessage> before = *b().router()->ReadMessages(b().bdf);
  ASSERT_TRUE(
      b().hook()->Quiesce(b().bdf, Fence{b().epoch, kFirstStart + 1}, absl::Seconds(5)).ok());
  absl::StatusOr<std::vector<v1::MsiMessage>> previous =
      b().router()->Reroute(b().bdf, Fence{b().epoch, kFirstStart + 2}, b().RerouteTarget());
  ASSERT_TRUE(previous.ok()) << previous.status();
  ASSERT_TRUE(b().router()->Restore(b().bdf, Fence{b().epoch, kRestart + 1}, *previous).ok());
  ASSERT_TRUE(b().hook()->Resume(b().bdf, Fence{b().epoch, kRestart + 2}).ok());
  // The crashed instance's Restore lands now: refused, the NIC keeps running
  // with its vectors where recovery put them.
  const Fence late{b().epoch, kFirstStart + 3};
  ExpectFenced(b().router()->Restore(b().bdf, late, *previous), late);
  EXPECT_EQ(StateOf(), HookState::kRunning);
  absl::StatusOr<std::vector<v1::MsiMessage>> after = b().router()->ReadMessages(b().bdf);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(after->at(i).address(), before[i].address()) << "vector " << i;
    EXPECT_EQ(after->at(i).data(), before[i].data()) << "vector " << i;
  }
}

TEST_P(PlatformContractTest, RouterRefusesALateRerouteOfTheSameEpoch) {
  REQUIRE_PART(hook);
  REQUIRE_PART(router);
  ASSERT_TRUE(
      b().hook()->Quiesce(b().bdf, Fence{b().epoch, kFirstStart + 1}, absl::Seconds(5)).ok());
  ASSERT_TRUE(
      b().router()->Reroute(b().bdf, Fence{b().epoch, kFirstStart + 6}, b().RerouteTarget()).ok());
  const Fence late{b().epoch, kFirstStart + 4};
  ExpectFenced(b().router()->Reroute(b().bdf, late, b().RerouteTarget()).status(), late);
  EXPECT_TRUE(
      b().router()->Reroute(b().bdf, Fence{b().epoch, kFirstStart + 7}, b().RerouteTarget()).ok());
}

TEST_P(PlatformContractTest, UnknownDevicesAreNotFound) {
  const std::string& unknown = b().unknown_bdf;
  const Fence fence{b().epoch, kFirstStart + 1};
  if (b().hook() != nullptr) {
    EXPECT_EQ(b().hook()->Quiesce(unknown, fence, absl::Seconds(1)).status().code(),
              absl::StatusCode::kNotFound);
    EXPECT_EQ(b().hook()->Status(unknown).status().code(), absl::StatusCode::kNotFound);
  }
  if (b().router() != nullptr) {
    EXPECT_EQ(b().router()->ReadMessages(unknown).status().code(), absl::StatusCode::kNotFound);
  }
  if (b().arbiter() != nullptr) {
    EXPECT_EQ(b().arbiter()->Read(unknown).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(b().arbiter()
                  ->CompareAndSwap(unknown, ActiveRecord(b().node, b().epoch),
                                   ActiveRecord(b().other_node, b().epoch + 1))
                  .status()
                  .code(),
              absl::StatusCode::kNotFound);
    EXPECT_EQ(b().arbiter()->WriteHandoffRings(unknown, fence, b().Rings(1)).code(),
              absl::StatusCode::kNotFound);
    EXPECT_EQ(b().arbiter()->ReadHandoffRings(unknown, b().epoch).status().code(),
              absl::StatusCode::kNotFound);
  }
}

TEST_P(PlatformContractTest, CompareAndSwapHasOneWinnerAndTellsTheLoserTheRecord) {
  REQUIRE_PART(arbiter);
  Arbiter& arbiter = *b().arbiter();
  const v1::OwnershipRecord active = ActiveRecord(b().node, b().epoch);
  ASSERT_TRUE(SameRecord(*arbiter.Read(b().bdf), active));
  const v1::OwnershipRecord preparing = PreparingRecord(b().node, b().other_node, b().epoch + 1);
  absl::StatusOr<v1::OwnershipRecord> won = arbiter.CompareAndSwap(b().bdf, active, preparing);
  ASSERT_TRUE(won.ok()) << won.status();
  EXPECT_TRUE(SameRecord(*won, preparing));
  // A racing CAS from the same expected record loses and learns the record.
  const v1::OwnershipRecord other = ActiveRecord(b().other_node, b().epoch + 1);
  absl::StatusOr<v1::OwnershipRecord> lost = arbiter.CompareAndSwap(b().bdf, active, other);
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_TRUE(SameRecord(*lost, preparing));
  EXPECT_TRUE(SameRecord(*arbiter.Read(b().bdf), preparing));
  // The winner's retry (its answer was lost) finds its record in place.
  absl::StatusOr<v1::OwnershipRecord> retried = arbiter.CompareAndSwap(b().bdf, active, preparing);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_TRUE(SameRecord(*retried, preparing));
}

TEST_P(PlatformContractTest, CompareAndSwapNeverLowersTheEpoch) {
  REQUIRE_PART(arbiter);
  const v1::OwnershipRecord active = ActiveRecord(b().node, b().epoch);
  absl::StatusOr<v1::OwnershipRecord> lowered =
      b().arbiter()->CompareAndSwap(b().bdf, active, ActiveRecord(b().node, b().epoch - 1));
  EXPECT_EQ(lowered.status().code(), absl::StatusCode::kInvalidArgument) << lowered.status();
  EXPECT_TRUE(SameRecord(*b().arbiter()->Read(b().bdf), active));
}

TEST_P(PlatformContractTest, HandoffRingsOfALaterHandoffSurviveALateWrite) {
  REQUIRE_PART(arbiter);
  Arbiter& arbiter = *b().arbiter();
  const uint64_t later = b().epoch + 2;
  ASSERT_TRUE(arbiter.WriteHandoffRings(b().bdf, Fence{later, kRestart + 2}, b().Rings(20)).ok());
  // The write of an attempt aborted two epochs ago lands late, and so does
  // one of the same epoch issued before the newest.
  const Fence aborted{b().epoch, kRestart + 9};
  ExpectFenced(arbiter.WriteHandoffRings(b().bdf, aborted, b().Rings(10)), aborted);
  const Fence overtaken{later, kRestart + 1};
  ExpectFenced(arbiter.WriteHandoffRings(b().bdf, overtaken, b().Rings(11)), overtaken);
  absl::StatusOr<std::vector<v1::QueueRingState>> rings = arbiter.ReadHandoffRings(b().bdf, later);
  ASSERT_TRUE(rings.ok()) << rings.status();
  ASSERT_EQ(rings->size(), 1u);
  EXPECT_EQ((*rings)[0].rx_next_to_use(), 20u);
  EXPECT_EQ(arbiter.ReadHandoffRings(b().bdf, b().epoch).status().code(),
            absl::StatusCode::kNotFound);
  // A retry with the same fence, and a newer write, are admitted.
  EXPECT_TRUE(arbiter.WriteHandoffRings(b().bdf, Fence{later, kRestart + 2}, b().Rings(20)).ok());
  EXPECT_TRUE(arbiter.WriteHandoffRings(b().bdf, Fence{later, kRestart + 3}, b().Rings(21)).ok());
  EXPECT_EQ((*arbiter.ReadHandoffRings(b().bdf, later))[0].rx_next_to_use(), 21u);
}

INSTANTIATE_TEST_SUITE_P(
    Backends, PlatformContractTest,
    ::testing::Values(
        BackendParam{"fake", [] { return std::unique_ptr<Backend>(new FakeBackend()); }},
        BackendParam{"sim", [] { return std::unique_ptr<Backend>(new SimBackend()); }},
        BackendParam{"shared_file",
                     [] { return std::unique_ptr<Backend>(new SharedFileBackend()); }},
        BackendParam{"linux", [] { return std::unique_ptr<Backend>(new LinuxBackend()); }},
        BackendParam{"vm", [] { return std::unique_ptr<Backend>(new VmBackend()); }}),
    [](const ::testing::TestParamInfo<BackendParam>& info) { return info.param.name; });

// ---------------------------------------------------------------- kernel commit path
//
// FastPath (platform.h) on a backend that has it, seen from two nodes: the
// source runs the NIC at `epoch` (record ACTIVE(source, epoch)), the target
// can take it. fake and sim have one.
class FastPathBackend {
 public:
  virtual ~FastPathBackend() = default;
  virtual Platform& source() = 0;
  virtual Platform& target() = 0;
  // The machine's fabric rings `node`'s kernel doorbell for (bdf, epoch), as
  // a source kernel's HandOff would (a stale or foreign doorbell by hand).
  virtual absl::Status RingDoorbell(const std::string& node, const std::string& bdf,
                                    uint64_t epoch) = 0;

  std::string source_node;
  std::string target_node;
  std::string bdf;
  uint64_t epoch = 0;
};

class FakeFastPathBackend : public FastPathBackend {
 public:
  FakeFastPathBackend() : machine_(TempPath(TestName() + ".fake-machine")) {
    EXPECT_TRUE(machine_.Create(fake::SimpleMachineSpec(2, 2, {"0000:03:00.0"}, 4)).ok());
    source_node = "node0";
    target_node = "node1";
    bdf = "0000:03:00.0";
    for (auto [node, platform] : {std::make_pair(source_node, &source_),
                                  std::make_pair(target_node, &target_)}) {
      absl::StatusOr<Platform> made = fake::MakeFakePlatform(machine_.path(), node);
      EXPECT_TRUE(made.ok()) << made.status();
      if (made.ok()) *platform = *std::move(made);
    }
    epoch = source_.arbiter->Read(bdf)->epoch();
  }
  Platform& source() override { return source_; }
  Platform& target() override { return target_; }
  absl::Status RingDoorbell(const std::string& node, const std::string& bdf,
                            uint64_t epoch) override {
    return fake::MachineFile(machine_.path()).Update([&](fake::FakeMachineState* state) {
      fake::RingDoorbell(state, node, bdf, epoch);
      return absl::OkStatus();
    });
  }

 private:
  fake::FakeMachine machine_;
  Platform source_;
  Platform target_;
};

class SimFastPathBackend : public FastPathBackend {
 public:
  SimFastPathBackend() : nodes_(2) {
    source_node = "node0";
    target_node = "node1";
    bdf = nodes_.machine().bdf();
    epoch = source().arbiter->Read(bdf)->epoch();
  }
  Platform& source() override { return nodes_.platform(0); }
  Platform& target() override { return nodes_.platform(1); }
  // What `nh-sim-machine doorbell` does: the fabric's mailbox and IPI.
  absl::Status RingDoorbell(const std::string& node, const std::string& bdf,
                            uint64_t epoch) override {
    simulated::Machine& machine = nodes_.machine();
    absl::StatusOr<int> node_index = machine.NodeIndex(node);
    if (!node_index.ok()) return node_index.status();
    absl::StatusOr<int> nic = machine.NicIndex(bdf);
    if (!nic.ok()) return nic.status();
    if (simulated::InterruptFabric(machine).RingHandoffDoorbell(*node_index, *nic, epoch) !=
        simulated::MsiOutcome::kDelivered) {
      return absl::UnavailableError(absl::StrCat("no kernel of ", node, " took the doorbell"));
    }
    return absl::OkStatus();
  }

 private:
  SimulatedNodes nodes_;
};

struct FastPathParam {
  std::string name;
  std::function<std::unique_ptr<FastPathBackend>()> make;
  friend void PrintTo(const FastPathParam& param, std::ostream* out) { *out << param.name; }
};

class FastPathContractTest : public ::testing::TestWithParam<FastPathParam> {
 protected:
  void SetUp() override {
    backend_ = GetParam().make();
    ASSERT_FALSE(HasFailure()) << "setting up the " << GetParam().name << " backend failed";
    ASSERT_NE(b().source().fast_path, nullptr);
    ASSERT_NE(b().target().fast_path, nullptr);
    next_ = b().epoch + 1;
  }
  FastPathBackend& b() { return *backend_; }
  v1::OwnershipRecord Handoff() { return HandoffRecord(b().source_node, b().target_node, next_); }
  v1::OwnershipRecord Preparing() {
    return PreparingRecord(b().source_node, b().target_node, next_);
  }
  v1::OwnershipRecord Record() {
    absl::StatusOr<v1::OwnershipRecord> record = b().source().arbiter->Read(b().bdf);
    EXPECT_TRUE(record.ok()) << record.status();
    return record.ok() ? *record : v1::OwnershipRecord();
  }
  // The target's side before the blackout: reserve, then arm.
  std::vector<v1::MsiMessage> ReserveAndArm() {
    const Fence fence{next_, kFirstStart + 1};
    Router& router = *b().target().router;
    absl::StatusOr<std::vector<v1::MsiMessage>> reserved = router.ReserveTargetMessages(
        b().bdf, fence, static_cast<uint32_t>(b().source().router->ReadMessages(b().bdf)->size()));
    EXPECT_TRUE(reserved.ok()) << reserved.status();
    EXPECT_TRUE(b().target().fast_path->Arm(b().bdf, Fence{next_, kFirstStart + 2}, Handoff()).ok());
    return reserved.ok() ? *reserved : std::vector<v1::MsiMessage>();
  }
  HandOffRequest Request(std::vector<v1::MsiMessage> messages) {
    HandOffRequest request;
    request.bdf = b().bdf;
    request.fence = Fence{next_, kFirstStart + 3};
    request.expected = Preparing();
    request.desired = Handoff();
    request.target_messages = std::move(messages);
    request.drain_timeout = absl::Seconds(30);
    return request;
  }
  // The target kernel's events after `after_seq`, waiting for at least one.
  std::vector<KernelEvent> AwaitEvents(uint64_t after_seq) {
    for (int i = 0; i < 60; ++i) {
      absl::StatusOr<KernelEvents> events =
          b().target().fast_path->WaitEvents(after_seq, absl::Seconds(1));
      EXPECT_TRUE(events.ok()) << events.status();
      if (!events.ok()) return {};
      if (!events->events.empty()) return events->events;
    }
    ADD_FAILURE() << "no kernel event within a minute";
    return {};
  }

  std::unique_ptr<FastPathBackend> backend_;
  uint64_t next_ = 0;  // the handover's epoch e1
};

TEST_P(FastPathContractTest, ArmWithoutAReservationIsRefused) {
  absl::Status armed =
      b().target().fast_path->Arm(b().bdf, Fence{next_, kFirstStart + 1}, Handoff());
  EXPECT_EQ(armed.code(), absl::StatusCode::kFailedPrecondition) << armed;
}

TEST_P(FastPathContractTest, ArmWithAStaleFenceIsRefused) {
  const Fence reserved{next_, kRestart + 5};
  ASSERT_TRUE(b().target().router->ReserveTargetMessages(b().bdf, reserved, 4).ok());
  // A late Arm of the incarnation before the restart.
  const Fence late{next_, kFirstStart + 9};
  ExpectFenced(b().target().fast_path->Arm(b().bdf, late, Handoff()), late);
  EXPECT_TRUE(b().target().fast_path->Arm(b().bdf, Fence{next_, kRestart + 6}, Handoff()).ok());
}

TEST_P(FastPathContractTest, HandOffOnARecordThatIsNotPreparingReportsTheCasLost) {
  std::vector<v1::MsiMessage> messages = ReserveAndArm();
  // The source never won PREPARING: the record is still ACTIVE(source, e).
  const v1::OwnershipRecord before = Record();
  absl::StatusOr<HandOffResult> result = b().source().fast_path->HandOff(Request(messages));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_LT(result->reached, HandOffStage::kHandedOff) << HandOffStageName(result->reached);
  EXPECT_TRUE(SameRecord(result->record, before)) << RecordString(result->record);
  EXPECT_TRUE(SameRecord(Record(), before)) << RecordString(Record());
  if (result->reached >= HandOffStage::kRerouted) {
    // What Reroute replaced comes back, for the rollback's Restore.
    EXPECT_EQ(result->previous.size(), messages.size());
  } else {
    // The lost CAS was seen before the NIC was touched (sim): it still runs
    // on the source and there is nothing to restore.
    EXPECT_EQ(result->reached, HandOffStage::kNothing) << HandOffStageName(result->reached);
    EXPECT_TRUE(result->previous.empty());
    absl::StatusOr<HookStatus> hook = b().source().hook->Status(b().bdf);
    ASSERT_TRUE(hook.ok()) << hook.status();
    EXPECT_EQ(hook->state, HookState::kRunning);
  }
}

TEST_P(FastPathContractTest, ADoorbellForAStaleEpochIsIgnored) {
  ReserveAndArm();
  ASSERT_TRUE(SameRecord(
      *b().source().arbiter->CompareAndSwap(b().bdf, ActiveRecord(b().source_node, b().epoch),
                                            Preparing()),
      Preparing()));
  ASSERT_TRUE(b().RingDoorbell(b().target_node, b().bdf, b().epoch).ok());
  std::vector<KernelEvent> events = AwaitEvents(0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, KernelEvent::Kind::kNotCommitted);
  EXPECT_EQ(events[0].epoch, b().epoch);
  EXPECT_TRUE(SameRecord(Record(), Preparing())) << RecordString(Record());
  absl::StatusOr<HookStatus> hook = b().target().hook->Status(b().bdf);
  ASSERT_TRUE(hook.ok()) << hook.status();
  EXPECT_NE(hook->state, HookState::kRunning);
}

TEST_P(FastPathContractTest, TheArmedKernelCommitsAndItsEventCarriesTheEpoch) {
  std::vector<v1::MsiMessage> messages = ReserveAndArm();
  ASSERT_TRUE(SameRecord(
      *b().source().arbiter->CompareAndSwap(b().bdf, ActiveRecord(b().source_node, b().epoch),
                                            Preparing()),
      Preparing()));
  absl::StatusOr<HandOffResult> result = b().source().fast_path->HandOff(Request(messages));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->reached, HandOffStage::kDoorbellRung) << HandOffStageName(result->reached);
  EXPECT_TRUE(SameRecord(result->record, Handoff())) << RecordString(result->record);
  std::vector<KernelEvent> events = AwaitEvents(0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, KernelEvent::Kind::kCommitted) << events[0].message;
  EXPECT_EQ(events[0].bdf, b().bdf);
  EXPECT_EQ(events[0].epoch, next_);
  const v1::OwnershipRecord active = ActiveRecord(b().target_node, next_);
  EXPECT_TRUE(SameRecord(events[0].record, active)) << RecordString(events[0].record);
  EXPECT_TRUE(SameRecord(Record(), active)) << RecordString(Record());
  absl::StatusOr<HookStatus> hook = b().target().hook->Status(b().bdf);
  ASSERT_TRUE(hook.ok()) << hook.status();
  EXPECT_EQ(hook->state, HookState::kRunning);
  // The daemon's later Attach (it learned from the event) is harmless.
  EXPECT_TRUE(b().target().hook->Attach(b().bdf, Fence{next_, kFirstStart + 4}, {}).ok());
  // Nothing more happened: the next wait after this event times out empty.
  absl::StatusOr<KernelEvents> more =
      b().target().fast_path->WaitEvents(events[0].seq, absl::Milliseconds(1));
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_TRUE(more->events.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Backends, FastPathContractTest,
    ::testing::Values(
        FastPathParam{"fake",
                      [] { return std::unique_ptr<FastPathBackend>(new FakeFastPathBackend()); }},
        FastPathParam{"sim",
                      [] { return std::unique_ptr<FastPathBackend>(new SimFastPathBackend()); }}),
    [](const ::testing::TestParamInfo<FastPathParam>& info) { return info.param.name; });

}  // namespace
}  // namespace platform
}  // namespace nichandover
