// The vm backend of two VMs against a real host agent (vmhost::Agent served
// over in-process gRPC) with a fake hypervisor, a sysfs tree per VM in a
// temporary directory, libpci's dump method over a real I210 dump, and a fake
// hook module per VM. The tests walk the steps the handover engine takes.
#include "daemon/platform/vm/vm_platform.h"

#include <filesystem>
#include <thread>

#include "agent_service.h"
#include "daemon/platform/linux/fake_hook_module.h"
#include "daemon/platform/vm/vm_router.h"
#include "fake_hypervisor.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "hook/kmod/nichandover_genl.h"

namespace nichandover {
namespace platform {
namespace vm {
namespace {

namespace fs = std::filesystem;
using linux_backend::testing::FakeFunction;
using linux_backend::testing::FakeHookModule;

constexpr char kBdf[] = "0000:01:00.0";

std::string DumpPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return std::string(srcdir != nullptr ? srcdir : ".") +
         "/nichandover/daemon/platform/vm/testdata/i210-dump.txt";
}

v1::OwnershipRecord Record(v1::OwnershipState state, const std::string& owner,
                           const std::string& target, uint64_t epoch) {
  v1::OwnershipRecord r;
  r.set_state(state);
  r.set_owner_node(owner);
  r.set_target_node(target);
  r.set_epoch(epoch);
  return r;
}

// One VM: its /sys, its kernel module, its platform.
struct Vm {
  std::string name;
  fs::path sysfs;
  FakeHookModule module;
  Platform platform;

  void Plugged(bool probed) {
    fs::path dir = sysfs / "bus/pci/devices" / kBdf;
    fs::create_directories(dir);
    if (probed) {
      fs::create_directory_symlink("../../drivers/igb", dir / "driver");
      fs::create_directories(dir / "net/eth1");
      fs::create_directories(sysfs / "class/net/eth1/queues/tx-0");
    }
  }
  void Unplugged() { fs::remove_all(sysfs / "bus/pci/devices" / kBdf); }
  size_t Requests(uint8_t cmd) const {
    size_t n = 0;
    for (const auto& r : module.requests()) n += r.cmd == cmd;
    return n;
  }
};

class VmPlatformTest : public ::testing::Test {
 protected:
  VmPlatformTest() : hypervisor_({"vm-a", "vm-b"}) {
    hypervisor_.PlugAtBoot("vm-a", "nic0");
    vmhost::AgentConfig config;
    for (const char* name : {"vm-a", "vm-b"}) {
      auto* vm = config.add_vms();
      vm->set_name(name);
      vm->set_qmp_socket("/nonexistent.qmp");
    }
    auto* nic = config.add_nics();
    nic->set_bdf(kBdf);
    nic->set_device_id("nic0");
    nic->set_netdev_id("n0");
    nic->set_model("igb");
    nic->set_driver("igb");
    nic->set_mac("52:54:00:12:34:56");
    nic->set_bus("rp1");
    nic->set_stream_socket("/nonexistent.sock");
    nic->set_initial_owner("vm-a");
    agent_ = *vmhost::Agent::Create(config, &hypervisor_);
    service_ = std::make_unique<vmhost::AgentService>(agent_.get());
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();

    fs::path root = fs::path(::testing::TempDir()) /
                    ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root);
    a_.name = "vm-a";
    b_.name = "vm-b";
    for (Vm* vm : {&a_, &b_}) {
      vm->sysfs = root / vm->name;
      fs::create_directories(vm->sysfs / "bus/pci/drivers/igb");
      FakeFunction f;
      f.ifname = "eth1";
      f.vectors = {{0, 0xfee01004, 0x4031, false, 30, 0}, {1, 0xfee01004, 0x4041, false, 31, 0}};
      vm->module.AddFunction(kBdf, f);
    }
    a_.Plugged(/*probed=*/true);
  }

  void Start(Vm& vm, absl::Duration probe_wait = absl::Milliseconds(300)) {
    VmMachineAccess access;
    access.linux.pci.method = "dump";
    access.linux.pci.params["dump.name"] = DumpPath();
    access.linux.sysfs_root = vm.sysfs.string();
    access.linux.open_module = vm.module.Factory();
    access.agent = vmhost::VmAgent::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
    access.probe_wait = probe_wait;
    v1::VmPlatformConfig config;
    config.set_vm_name(vm.name);
    v1::DaemonConfig daemon;
    daemon.set_node_id(vm.name);
    auto platform = MakeVmPlatformWith(access, config, daemon);
    ASSERT_TRUE(platform.ok()) << platform.status();
    vm.platform = *std::move(platform);
  }

  vmhost::FakeHypervisor hypervisor_;
  std::unique_ptr<vmhost::Agent> agent_;
  std::unique_ptr<vmhost::AgentService> service_;
  std::unique_ptr<grpc::Server> server_;
  Vm a_, b_;
};

TEST_F(VmPlatformTest, TheHolderDescribesTheNicAndTheOtherVmKnowsItFromTheAgent) {
  Start(a_);
  Start(b_);
  auto in_a = a_.platform.inventory->ListNics();
  ASSERT_TRUE(in_a.ok()) << in_a.status();
  ASSERT_EQ(in_a->size(), 1u);
  EXPECT_EQ((*in_a)[0].bdf, kBdf);
  EXPECT_EQ((*in_a)[0].driver, "igb");
  EXPECT_EQ((*in_a)[0].netdev, "eth1");
  EXPECT_EQ((*in_a)[0].interrupts.mode(), v1::INTERRUPT_MODE_MSIX);
  EXPECT_EQ((*in_a)[0].interrupts.vectors_size(), 2);  // from the module

  auto in_b = b_.platform.inventory->GetNic("01:00.0");
  ASSERT_TRUE(in_b.ok()) << in_b.status();
  EXPECT_EQ(in_b->vendor_id, 0x8086);  // from the hypervisor
  EXPECT_EQ(in_b->driver, "igb");      // loaded in vm-b: it could run it
  EXPECT_EQ(in_b->netdev, "");
  EXPECT_EQ(in_b->interrupts.mode(), v1::INTERRUPT_MODE_MSIX);  // as vm-a reported it
  EXPECT_EQ(in_b->interrupts.vectors_enabled(), (*in_a)[0].interrupts.vectors_enabled());
  EXPECT_EQ(in_b->interrupts.vectors_size(), 0);

  auto status = b_.platform.hook->Status(kBdf);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state, HookState::kDetached);
  EXPECT_EQ(b_.platform.inventory->GetNic("0000:02:00.0").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(VmPlatformTest, ANicNotDescribedByItsHolderYetIsUnavailableElsewhere) {
  Start(b_);
  EXPECT_EQ(b_.platform.inventory->ListNics().status().code(), absl::StatusCode::kUnavailable);
  Start(a_);
  ASSERT_TRUE(a_.platform.inventory->ListNics().ok());  // describes it to the agent
  EXPECT_TRUE(b_.platform.inventory->ListNics().ok());
}

TEST_F(VmPlatformTest, AVmWithoutTheDriverDescribesTheNicWithoutOne) {
  fs::remove_all(b_.sysfs / "bus/pci/drivers/igb");
  Start(a_);
  ASSERT_TRUE(a_.platform.inventory->ListNics().ok());
  Start(b_);
  auto in_b = b_.platform.inventory->GetNic(kBdf);
  ASSERT_TRUE(in_b.ok()) << in_b.status();
  EXPECT_EQ(in_b->driver, "");  // the engine refuses an offer: NO_DRIVER
}

TEST_F(VmPlatformTest, AHandoverMovesTheNicThroughTheAgent) {
  Start(a_);
  Start(b_);
  // Target: no reservation, one hypervisor-routed marker per vector.
  auto reserved = b_.platform.router->ReserveTargetMessages(kBdf, Fence{2, 0}, 5);
  ASSERT_TRUE(reserved.ok());
  ASSERT_EQ(reserved->size(), 5u);
  for (const auto& m : *reserved) EXPECT_TRUE(IsHypervisorRouted(m));
  // Source: PREPARING, quiesce through the module, reroute = placement.
  auto preparing = Record(v1::OWNERSHIP_STATE_PREPARING, "vm-a", "vm-b", 2);
  auto cas = a_.platform.arbiter->CompareAndSwap(
      kBdf, Record(v1::OWNERSHIP_STATE_ACTIVE, "vm-a", "", 1), preparing);
  ASSERT_TRUE(cas.ok()) << cas.status();
  ASSERT_EQ(cas->SerializeAsString(), preparing.SerializeAsString());
  ASSERT_TRUE(a_.platform.hook->Quiesce(kBdf, Fence{2, 0}, absl::Seconds(1)).ok());
  auto previous = a_.platform.router->Reroute(kBdf, Fence{2, 0}, *reserved);
  ASSERT_TRUE(previous.ok()) << previous.status();
  EXPECT_EQ(previous->size(), 2u);
  EXPECT_EQ(hypervisor_.Holders("nic0"), std::vector<std::string>{"vm-b"});
  a_.Unplugged();  // what the guests see
  b_.Plugged(/*probed=*/true);

  // Source after the target's commit: the NIC is gone, nothing to release.
  size_t releases = a_.Requests(NH_CMD_RELEASE);
  EXPECT_TRUE(a_.platform.hook->Release(kBdf, Fence{2, 0}).ok());
  EXPECT_EQ(a_.Requests(NH_CMD_RELEASE), releases);
  EXPECT_EQ(a_.platform.hook->Status(kBdf)->state, HookState::kDetached);
  EXPECT_EQ(a_.platform.router->ReadMessages(kBdf).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Target: attaches through its own module with the new epoch.
  ASSERT_TRUE(b_.platform.hook->Attach(kBdf, Fence{2, 0}, {}).ok());
  ASSERT_EQ(b_.Requests(NH_CMD_ATTACH), 1u);
  EXPECT_EQ(*b_.module.requests().back().epoch, 2u);
  auto in_b = b_.platform.inventory->GetNic(kBdf);
  ASSERT_TRUE(in_b.ok());
  EXPECT_EQ(in_b->netdev, "eth1");
  EXPECT_EQ(in_b->interrupts.vectors_size(), 2);
}

TEST_F(VmPlatformTest, RerouteRefusesRealMessagesAndStaleEpochs) {
  Start(a_);
  ASSERT_TRUE(a_.platform.arbiter
                  ->CompareAndSwap(kBdf, Record(v1::OWNERSHIP_STATE_ACTIVE, "vm-a", "", 1),
                                   Record(v1::OWNERSHIP_STATE_PREPARING, "vm-a", "vm-b", 2))
                  .ok());
  v1::MsiMessage real;
  real.set_address(0xfee02000);
  real.set_data(0x4041);
  EXPECT_EQ(a_.platform.router->Reroute(kBdf, Fence{2, 0}, {real}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a_.platform.router->Reroute(kBdf, Fence{7, 0}, {v1::MsiMessage()}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(hypervisor_.Log().empty());
  EXPECT_EQ(hypervisor_.Holders("nic0"), std::vector<std::string>{"vm-a"});
}

TEST_F(VmPlatformTest, RollbackBringsTheNicBackAndResumesItOnceProbed) {
  Start(a_, absl::Seconds(3));
  auto preparing = Record(v1::OWNERSHIP_STATE_PREPARING, "vm-a", "vm-b", 2);
  ASSERT_TRUE(a_.platform.arbiter
                  ->CompareAndSwap(kBdf, Record(v1::OWNERSHIP_STATE_ACTIVE, "vm-a", "", 1),
                                   preparing)
                  .ok());
  ASSERT_TRUE(a_.platform.hook->Quiesce(kBdf, Fence{2, 0}, absl::Seconds(1)).ok());
  ASSERT_TRUE(
      a_.platform.router->Reroute(kBdf, Fence{2, 0}, {v1::MsiMessage(), v1::MsiMessage()}).ok());
  a_.Unplugged();
  // Abort: ACTIVE(source, e+2), the NIC comes back.
  ASSERT_TRUE(a_.platform.arbiter
                  ->CompareAndSwap(kBdf, preparing,
                                   Record(v1::OWNERSHIP_STATE_ACTIVE, "vm-a", "", 3))
                  .ok());
  ASSERT_TRUE(a_.platform.router->Restore(kBdf, Fence{3, 0}, {}).ok());
  EXPECT_EQ(hypervisor_.Holders("nic0"), std::vector<std::string>{"vm-a"});
  // The guest probes the returned NIC a little later; Resume waits for it.
  std::thread guest([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    a_.Plugged(/*probed=*/true);
  });
  size_t resumes = a_.Requests(NH_CMD_RESUME);
  absl::Status resumed = a_.platform.hook->Resume(kBdf, Fence{3, 0});
  guest.join();
  ASSERT_TRUE(resumed.ok()) << resumed;
  EXPECT_EQ(a_.Requests(NH_CMD_RESUME), resumes + 1);
}

TEST_F(VmPlatformTest, AttachGivesUpWhenTheGuestNeverProbesTheNic) {
  Start(b_, absl::Milliseconds(100));
  b_.Plugged(/*probed=*/false);  // plugged, but no driver bound
  absl::Status s = b_.platform.hook->Attach(kBdf, Fence{2, 0}, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(b_.Requests(NH_CMD_ATTACH), 0u);
  // A NIC the machine does not have at all.
  EXPECT_EQ(
      b_.platform.hook->Quiesce("0000:03:00.0", Fence{2, 0}, absl::Seconds(1)).status().code(),
      absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace vm
}  // namespace platform
}  // namespace nichandover
