// The inventory over libpci's dump method (real config-space dumps) and a
// sysfs tree of the real shape built in a temporary directory.
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/platform/linux/fake_hook_module.h"
#include "daemon/platform/linux/linux_platform.h"
#include "gtest/gtest.h"
#include "sim/config_space_image.h"
#include "sim/machine.h"

namespace nichandover {
namespace platform {
namespace linux_backend {
namespace {

namespace fs = std::filesystem;
using testing::FakeFunction;
using testing::FakeHookModule;

std::string DumpPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return std::string(srcdir != nullptr ? srcdir : ".") +
         "/nichandover/daemon/platform/linux/testdata/node-dump.txt";
}

// Builds what /sys shows of a node: bus/pci/devices/BDF/{driver,net/IF} and
// class/net/IF/queues/{tx,rx}-N.
class FakeSysfs {
 public:
  FakeSysfs() {
    root_ = fs::path(::testing::TempDir()) /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_ / "bus/pci/drivers");
  }
  const fs::path& root() const { return root_; }

  void AddFunction(const std::string& bdf, const std::string& driver = "") {
    fs::path dir = root_ / "bus/pci/devices" / bdf;
    fs::create_directories(dir);
    if (!driver.empty()) {
      fs::create_directories(root_ / "bus/pci/drivers" / driver);
      fs::create_directory_symlink("../../../bus/pci/drivers/" + driver, dir / "driver");
    }
  }
  void AddNetdev(const std::string& bdf, const std::string& ifname, int tx_queues) {
    fs::create_directories(root_ / "bus/pci/devices" / bdf / "net" / ifname);
    fs::path queues = root_ / "class/net" / ifname / "queues";
    for (int i = 0; i < tx_queues; ++i) {
      fs::create_directories(queues / ("tx-" + std::to_string(i)));
      fs::create_directories(queues / ("rx-" + std::to_string(i)));
    }
  }

 private:
  fs::path root_;
};

class LinuxInventoryTest : public ::testing::Test {
 protected:
  LinuxInventoryTest() {
    sysfs_.AddFunction("0000:00:1f.2", "ahci");
    sysfs_.AddFunction("0000:01:00.0", "igb");
    sysfs_.AddNetdev("0000:01:00.0", "enp1s0", 4);
    sysfs_.AddFunction("0000:04:00.0");  // no driver bound
    sysfs_.AddFunction("0000:04:00.1", "igb_uio");
    sysfs_.AddFunction("0000:07:00.0", "r8169");
    sysfs_.AddNetdev("0000:07:00.0", "enp7s0", 1);

    // The I210's MSI-X vectors as the module reads them: igb's "other"
    // vector on APIC 0, two queue vectors on APIC 2, one masked.
    FakeFunction i210;
    i210.ifname = "enp1s0";
    i210.vectors = {{1, 0xfee02000, 0x4051, false, 41, 1},
                    {0, 0xfee00000, 0x4021, false, 40, 0},
                    {2, 0xfee02000, 0x4052, true, 42, 1}};
    module_.AddFunction("0000:01:00.0", i210);
  }

  absl::StatusOr<Platform> Make(
      const std::vector<std::string>& nics = {},
      std::optional<std::vector<std::string>> machine_node_ids = std::nullopt) {
    LinuxMachineAccess access;
    access.machine_node_ids = std::move(machine_node_ids);
    access.pci.method = "dump";
    access.pci.params["dump.name"] = DumpPath();
    access.sysfs_root = sysfs_.root().string();
    access.open_module = module_.Factory();
    v1::LinuxPlatformConfig config;
    for (const std::string& nic : nics) config.add_nics(nic);
    v1::DaemonConfig daemon;
    daemon.set_node_id("node0");
    return MakeLinuxPlatformWith(access, config, daemon, std::make_unique<NoArbiter>());
  }

  // The arbiter is not the inventory's business.
  class NoArbiter : public Arbiter {
    absl::StatusOr<v1::OwnershipRecord> Read(const std::string&) override {
      return absl::NotFoundError("none");
    }
    absl::StatusOr<v1::OwnershipRecord> CompareAndSwap(const std::string&,
                                                       const v1::OwnershipRecord&,
                                                       const v1::OwnershipRecord&) override {
      return absl::NotFoundError("none");
    }
    absl::Status WriteHandoffRings(const std::string&, const Fence&,
                                   const std::vector<v1::QueueRingState>&) override {
      return absl::NotFoundError("none");
    }
    absl::StatusOr<std::vector<v1::QueueRingState>> ReadHandoffRings(const std::string&,
                                                                     uint64_t) override {
      return absl::NotFoundError("none");
    }
  };

  FakeSysfs sysfs_;
  FakeHookModule module_;
};

const NicInfo* Find(const std::vector<NicInfo>& nics, const std::string& bdf) {
  for (const NicInfo& nic : nics) {
    if (nic.bdf == bdf) return &nic;
  }
  return nullptr;
}

TEST_F(LinuxInventoryTest, ListsEveryNetworkFunctionWithWhatTheKernelMadeOfIt) {
  auto platform = Make();
  ASSERT_TRUE(platform.ok()) << platform.status();
  EXPECT_EQ(platform->name, "linux");
  auto nics = platform->inventory->ListNics();
  ASSERT_TRUE(nics.ok()) << nics.status();
  std::vector<std::string> bdfs;
  for (const NicInfo& nic : *nics) bdfs.push_back(nic.bdf);
  EXPECT_EQ(bdfs, (std::vector<std::string>{"0000:01:00.0", "0000:04:00.0", "0000:04:00.1",
                                            "0000:07:00.0"}))
      << "the SATA controller is not a NIC";

  const NicInfo* i210 = Find(*nics, "0000:01:00.0");
  ASSERT_NE(i210, nullptr);
  EXPECT_EQ(i210->vendor_id, 0x8086);
  EXPECT_EQ(i210->device_id, 0x1533);
  EXPECT_EQ(i210->class_code, 0x020000u);
  EXPECT_EQ(i210->driver, "igb");
  EXPECT_EQ(i210->netdev, "enp1s0");
  EXPECT_EQ(i210->queue_count, 4u);

  const NicInfo* unbound = Find(*nics, "0000:04:00.0");
  ASSERT_NE(unbound, nullptr);
  EXPECT_EQ(unbound->driver, "");
  EXPECT_EQ(unbound->netdev, "");
  EXPECT_EQ(unbound->queue_count, 1u);
  EXPECT_EQ(Find(*nics, "0000:04:00.1")->driver, "igb_uio");
  EXPECT_EQ(Find(*nics, "0000:07:00.0")->netdev, "enp7s0");
  EXPECT_EQ(Find(*nics, "0000:07:00.0")->queue_count, 1u);
}

TEST_F(LinuxInventoryTest, MsixCapabilityFromConfigSpaceAndVectorsFromTheModule) {
  auto platform = Make();
  ASSERT_TRUE(platform.ok()) << platform.status();
  auto nic = platform->inventory->GetNic("0000:01:00.0");
  ASSERT_TRUE(nic.ok()) << nic.status();
  const v1::InterruptLayout& irq = nic->interrupts;
  // lspci: "Capabilities: [70] MSI-X: Enable+ Count=5 Masked-"
  EXPECT_EQ(irq.mode(), v1::INTERRUPT_MODE_MSIX);
  EXPECT_EQ(irq.capability_offset(), 0x70u);
  EXPECT_TRUE(irq.enabled());
  EXPECT_EQ(irq.vectors_supported(), 5u);
  EXPECT_EQ(irq.table_bar(), 3u);
  ASSERT_EQ(irq.vectors_size(), 3);
  EXPECT_EQ(irq.vectors(0).index(), 0u);
  EXPECT_EQ(irq.vectors(0).message().data(), 0x4021u);
  EXPECT_EQ(irq.vectors(0).route().destination_apic_id(), 0u);
  EXPECT_EQ(irq.vectors(1).index(), 1u);
  EXPECT_EQ(irq.vectors(1).route().destination_apic_id(), 2u);
  EXPECT_EQ(irq.vectors(1).route().vector(), 0x51u);
  EXPECT_TRUE(irq.vectors(1).route().x86_address());
  EXPECT_FALSE(irq.vectors(1).masked());
  EXPECT_TRUE(irq.vectors(2).masked());
  EXPECT_EQ(module_.requests().back().cmd, 5 /* NH_CMD_READ_MSI */);
}

TEST_F(LinuxInventoryTest, MsiVectorsComeFromConfigSpaceAlone) {
  auto platform = Make();
  ASSERT_TRUE(platform.ok()) << platform.status();
  auto nic = platform->inventory->GetNic("0000:07:00.0");
  ASSERT_TRUE(nic.ok()) << nic.status();
  // lspci: "Capabilities: [50] MSI: Enable+ Count=1/1 Maskable- 64bit+"
  EXPECT_EQ(nic->interrupts.mode(), v1::INTERRUPT_MODE_MSI);
  EXPECT_EQ(nic->interrupts.capability_offset(), 0x50u);
  EXPECT_TRUE(nic->interrupts.address_64bit());
  ASSERT_EQ(nic->interrupts.vectors_size(), 1);
  EXPECT_TRUE(nic->interrupts.vectors(0).route().x86_address());
  EXPECT_TRUE(module_.requests().empty()) << "MSI messages are in config space";
}

TEST_F(LinuxInventoryTest, WithoutTheModuleMsixVectorsAreUnknownButTheRestIsListed) {
  module_.set_loaded(false);
  auto platform = Make();
  ASSERT_TRUE(platform.ok()) << platform.status();
  auto nic = platform->inventory->GetNic("0000:01:00.0");
  ASSERT_TRUE(nic.ok()) << nic.status();
  EXPECT_EQ(nic->driver, "igb");
  EXPECT_EQ(nic->interrupts.mode(), v1::INTERRUPT_MODE_MSIX);
  EXPECT_EQ(nic->interrupts.vectors_size(), 0);
}

TEST_F(LinuxInventoryTest, TheAllowListSelectsAnyClassAndSkipsWhatIsNotThere) {
  auto platform = Make({"00:1f.2", "0000:01:00.0", "0000:09:00.0"});
  ASSERT_TRUE(platform.ok()) << platform.status();
  auto nics = platform->inventory->ListNics();
  ASSERT_TRUE(nics.ok()) << nics.status();
  ASSERT_EQ(nics->size(), 2u);
  EXPECT_EQ((*nics)[0].bdf, "0000:00:1f.2");
  EXPECT_EQ((*nics)[0].driver, "ahci");
  EXPECT_EQ((*nics)[0].interrupts.mode(), v1::INTERRUPT_MODE_INTX);
  EXPECT_EQ((*nics)[1].bdf, "0000:01:00.0");

  auto excluded = platform->inventory->GetNic("0000:07:00.0");
  EXPECT_EQ(excluded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(excluded.status().message().find("allow-list"), std::string::npos);
  EXPECT_EQ(platform->inventory->GetNic("0000:09:00.0").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LinuxInventoryTest, GetNicTakesTheShortFormAndRefusesNonNetworkFunctions) {
  auto platform = Make();
  ASSERT_TRUE(platform.ok()) << platform.status();
  auto nic = platform->inventory->GetNic("07:00.0");
  ASSERT_TRUE(nic.ok()) << nic.status();
  EXPECT_EQ(nic->bdf, "0000:07:00.0");
  auto sata = platform->inventory->GetNic("0000:00:1f.2");
  EXPECT_EQ(sata.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(sata.status().message().find("not a network-class function"), std::string::npos);
  EXPECT_EQ(platform->inventory->GetNic("nonsense").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LinuxInventoryTest, BadConfigurationIsRefusedUpFront) {
  auto bad_entry = Make({"0000:01:00.0", "eth0"});
  EXPECT_EQ(bad_entry.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_entry.status().message().find("\"eth0\""), std::string::npos) << bad_entry.status();

  LinuxMachineAccess access;
  access.pci.method = "dump";
  access.pci.params["dump.name"] = "no/such/dump.txt";
  access.sysfs_root = sysfs_.root().string();
  access.open_module = module_.Factory();
  auto no_dump = MakeLinuxPlatformWith(access, {}, {}, std::make_unique<NoArbiter>());
  EXPECT_EQ(no_dump.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(no_dump.status().message().find("libpci"), std::string::npos);

  access.pci.params["dump.name"] = DumpPath();
  EXPECT_EQ(MakeLinuxPlatformWith(access, {}, {}, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LinuxInventoryTest, AFastPathOnlyForTheMachinesRecordAndAModuleThatReportsIt) {
  // Records in an arbiter file: no kernel can reach them.
  auto platform = Make();
  ASSERT_TRUE(platform.ok()) << platform.status();
  EXPECT_EQ(platform->fast_path, nullptr);
  // The machine's record, but no driver with the kernel commit path.
  platform = Make({}, std::vector<std::string>{"node0", "node1"});
  ASSERT_TRUE(platform.ok()) << platform.status();
  EXPECT_EQ(platform->fast_path, nullptr);
  // nh_simnic registered with its commit ops.
  FakeFunction simnic;
  simnic.handover_mode = hook::HandoverMode::kContract;
  simnic.state = hook::DeviceState::kStandby;
  simnic.driver = "nh_simnic";
  simnic.kernel_commit = true;
  module_.AddFunction("0000:05:00.0", simnic);
  platform = Make({}, std::vector<std::string>{"node0", "node1"});
  ASSERT_TRUE(platform.ok()) << platform.status();
  ASSERT_NE(platform->fast_path, nullptr);
  // Without the machine's node ids it still has none.
  platform = Make();
  ASSERT_TRUE(platform.ok()) << platform.status();
  EXPECT_EQ(platform->fast_path, nullptr);
}

TEST_F(LinuxInventoryTest, ThePlatformsHookAndRouterReachTheModule) {
  auto platform = Make();
  ASSERT_TRUE(platform.ok()) << platform.status();
  ASSERT_TRUE(platform->hook->Quiesce("0000:01:00.0", Fence{3, 0}, absl::Seconds(1)).ok());
  EXPECT_EQ(module_.function("0000:01:00.0").state, hook::DeviceState::kQuiesced);
  auto messages = platform->router->ReadMessages("0000:01:00.0");
  ASSERT_TRUE(messages.ok()) << messages.status();
  EXPECT_EQ(messages->size(), 3u);
  EXPECT_EQ(platform->arbiter->Read("0000:01:00.0").status().message(), "none");
}

// The simulated NIC as a guest's contract driver registers it: its
// machine-wide address is no PCI function of the guest, so only the module's
// LIST names it, with the config space the driver read from the machine's
// memory (MSI-X enabled by the driver), and READ_MSI reads its table through
// the driver's window.
class ContractDeviceInventoryTest : public LinuxInventoryTest {
 protected:
  void SetUp() override {
    std::string path = ::testing::TempDir() + "/inventory-machine";
    sim::MachineSpec spec;
    spec.nodes = {{"host", {0}}, {"guest", {2}}};
    spec.initial_owner = "host";
    spec.bdf = "0000:03:00.0";
    auto machine = sim::Machine::Create(path, spec);
    ASSERT_TRUE(machine.ok()) << machine.status();
    std::vector<uint8_t> config((*machine)->nic().config,
                                (*machine)->nic().config + sizeof((*machine)->nic().config));
    config[sim::kMsixCapabilityOffset + 3] |= 0x80;  // MSI-X Enable, as the driver set it

    FakeFunction simnic;
    simnic.handover_mode = hook::HandoverMode::kContract;
    simnic.state = hook::DeviceState::kStandby;
    simnic.driver = "nh_simnic";
    simnic.ifname = "nhsim0";
    simnic.vendor_id = sim::kSimVendorId;
    simnic.device_id = sim::kSimDeviceId;
    simnic.queue_count = 1;
    simnic.config = config;
    simnic.vectors = {{0, 0xfee00000, 0x30, true, 0, 0}, {1, 0xfee00000, 0x31, true, 0, 0}};
    module_.AddFunction("0000:03:00.0", simnic);
  }
};

TEST_F(ContractDeviceInventoryTest, TheModulesContractDevicesAreListedBesideLibpcisFunctions) {
  auto platform = Make();
  ASSERT_TRUE(platform.ok()) << platform.status();
  auto nics = platform->inventory->ListNics();
  ASSERT_TRUE(nics.ok()) << nics.status();
  std::vector<std::string> bdfs;
  for (const NicInfo& nic : *nics) bdfs.push_back(nic.bdf);
  EXPECT_EQ(bdfs, (std::vector<std::string>{"0000:01:00.0", "0000:03:00.0", "0000:04:00.0",
                                            "0000:04:00.1", "0000:07:00.0"}));
  const NicInfo* simnic = Find(*nics, "0000:03:00.0");
  ASSERT_NE(simnic, nullptr);
  EXPECT_EQ(simnic->vendor_id, 0x8086);
  EXPECT_EQ(simnic->device_id, 0x1533);
  EXPECT_EQ(simnic->class_code, 0x020000u);  // from the module's config space
  EXPECT_EQ(simnic->driver, "nh_simnic");
  EXPECT_EQ(simnic->netdev, "nhsim0");
  EXPECT_EQ(simnic->queue_count, 1u);
  // The I210's capability list, decoded from the bytes LIST carried.
  EXPECT_EQ(simnic->interrupts.mode(), v1::INTERRUPT_MODE_MSIX);
  EXPECT_EQ(simnic->interrupts.capability_offset(), 0x70u);
  EXPECT_TRUE(simnic->interrupts.enabled());
  EXPECT_EQ(simnic->interrupts.vectors_supported(), 5u);
  ASSERT_EQ(simnic->interrupts.vectors_size(), 2);
  EXPECT_EQ(simnic->interrupts.vectors(1).message().data(), 0x31u);
  EXPECT_TRUE(simnic->interrupts.vectors(1).masked());
  // libpci's I210 keeps its sysfs description; the module holds none of it.
  EXPECT_EQ(Find(*nics, "0000:01:00.0")->driver, "igb");
}

TEST_F(ContractDeviceInventoryTest, GetNicFindsAContractDeviceByItsMachineWideAddress) {
  auto platform = Make();
  ASSERT_TRUE(platform.ok()) << platform.status();
  auto nic = platform->inventory->GetNic("03:00.0");
  ASSERT_TRUE(nic.ok()) << nic.status();
  EXPECT_EQ(nic->bdf, "0000:03:00.0");
  EXPECT_EQ(nic->driver, "nh_simnic");
  EXPECT_EQ(module_.requests().back().cmd, 5 /* NH_CMD_READ_MSI */);
}

TEST_F(ContractDeviceInventoryTest, OnlyContractDevicesWithTheirConfigSpaceAreTakenFromTheModule) {
  FakeFunction cold;  // a device the module holds in cold mode: libpci's to see
  module_.AddFunction("0000:0a:00.0", cold);
  FakeFunction no_config = module_.function("0000:03:00.0");
  no_config.config.clear();
  module_.AddFunction("0000:0b:00.0", no_config);
  auto platform = Make();
  ASSERT_TRUE(platform.ok()) << platform.status();
  auto nics = platform->inventory->ListNics();
  ASSERT_TRUE(nics.ok()) << nics.status();
  EXPECT_EQ(Find(*nics, "0000:0a:00.0"), nullptr);
  EXPECT_EQ(Find(*nics, "0000:0b:00.0"), nullptr);
  EXPECT_NE(Find(*nics, "0000:03:00.0"), nullptr);
  EXPECT_EQ(platform->inventory->GetNic("0000:0a:00.0").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ContractDeviceInventoryTest, TheAllowListAppliesToContractDevices) {
  auto only_i210 = Make({"0000:01:00.0"});
  ASSERT_TRUE(only_i210.ok()) << only_i210.status();
  auto excluded = only_i210->inventory->GetNic("0000:03:00.0");
  EXPECT_EQ(excluded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(excluded.status().message().find("allow-list"), std::string::npos) << excluded.status();
  auto nics = only_i210->inventory->ListNics();
  ASSERT_TRUE(nics.ok()) << nics.status();
  EXPECT_EQ(nics->size(), 1u);

  auto only_simnic = Make({"0000:03:00.0"});
  ASSERT_TRUE(only_simnic.ok()) << only_simnic.status();
  nics = only_simnic->inventory->ListNics();
  ASSERT_TRUE(nics.ok()) << nics.status();
  ASSERT_EQ(nics->size(), 1u);
  EXPECT_EQ((*nics)[0].bdf, "0000:03:00.0");
}

TEST_F(ContractDeviceInventoryTest, WithoutTheModuleOnlyLibpcisFunctionsAreListed) {
  module_.set_loaded(false);
  auto platform = Make();
  ASSERT_TRUE(platform.ok()) << platform.status();
  auto nics = platform->inventory->ListNics();
  ASSERT_TRUE(nics.ok()) << nics.status();
  EXPECT_EQ(nics->size(), 4u);
  EXPECT_EQ(Find(*nics, "0000:03:00.0"), nullptr);
}

}  // namespace
}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
