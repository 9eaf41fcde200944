// fake_linux_node: a nichandoverd on the linux backend whose hook module is
// the FakeHookModule (daemon/platform/linux), holding the simulated machine's
// NIC the way a guest's contract driver (hook/simnic) registers it on a node
// that does not own it: on standby, its config space read from the machine,
// vectors reserved on the node's first APIC ID. Everything else is the real
// daemon: the protocol, the engine, the journal, gRPC to its peers, and the
// ownership record CASed in the machine's memory
// (LinuxPlatformConfig.machine_memory).
//
//   fake_linux_node CONFIG PCI_DUMP REPORT
//
// Runs until SIGTERM, then writes what the module saw to REPORT, one
// "key=value" per line: state, epoch, rings (QUEUE:RX_NTC:RX_NTU:TX_NTC:
// TX_NTU), reserve_epoch, reserved (vector count), attach_rings (how many the
// ATTACH carried, -1 for no ATTACH). Exit status 0 after a clean stop.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/config.h"
#include "daemon/platform/linux/fake_hook_module.h"
#include "daemon/platform/linux/linux_arbiter.h"
#include "daemon/platform/linux/linux_platform.h"
#include "daemon/server.h"
#include "hook/kmod/nichandover_genl.h"
#include "sim/machine.h"

namespace nichandover {
namespace {

using platform::linux_backend::testing::FakeFunction;
using platform::linux_backend::testing::FakeHookModule;

// The x86 vectors the node's driver sets aside for the NIC.
constexpr uint32_t kFirstReservedVector = 0x40;

int Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "fake_linux_node: %s: %s\n", what.c_str(), status.ToString().c_str());
  return 1;
}

std::string Report(FakeHookModule& module, const std::string& bdf) {
  FakeFunction f = module.Snapshot(bdf);
  std::string out = absl::StrCat("state=", hook::DeviceStateName(f.state), "\nepoch=", f.max_epoch,
                                 "\n");
  for (const hook::RingState& r : f.rings) {
    absl::StrAppend(&out, "rings=", r.queue, ":", r.rx_next_to_clean, ":", r.rx_next_to_use, ":",
                    r.tx_next_to_clean, ":", r.tx_next_to_use, "\n");
  }
  int attach_rings = -1;
  for (const auto& request : module.requests()) {
    if (request.cmd == NH_CMD_RESERVE) {
      absl::StrAppend(&out, "reserve_epoch=", request.epoch.value_or(0),
                      "\nreserved=", request.vector_count.value_or(0), "\n");
    }
    if (request.cmd == NH_CMD_ATTACH) {
      attach_rings = request.rings ? static_cast<int>(request.rings->size()) : 0;
    }
  }
  absl::StrAppend(&out, "attach_rings=", attach_rings, "\n");
  return out;
}

int Run(const std::string& config_path, const std::string& pci_dump,
        const std::string& report_path) {
  auto config = daemon::LoadConfig(config_path);
  if (!config.ok()) return Fail("config", config.status());
  SetLogTag(config->node_id());
  const v1::LinuxPlatformConfig& linux_config = config->platform().linux();
  auto machine = sim::Machine::Open(linux_config.machine_memory());
  if (!machine.ok()) return Fail("machine", machine.status());
  if (config->cpus().empty()) return Fail("config", absl::InvalidArgumentError("no CPUs"));

  FakeHookModule module;
  sim::NicState& nic = (*machine)->nic();
  FakeFunction simnic;
  simnic.handover_mode = hook::HandoverMode::kContract;
  simnic.state = hook::DeviceState::kStandby;
  simnic.driver = "nh_simnic";
  simnic.ifname = "nhsim0";
  simnic.vendor_id = 0x8086;
  simnic.device_id = 0x1533;
  simnic.config.assign(nic.config, nic.config + sizeof(nic.config));
  simnic.vectors = {{0, 0xfee00000, 0x30, true, 0, 0}, {1, 0xfee00000, 0x31, true, 0, 0}};
  simnic.reserve_apic_id = config->cpus(0).apic_id();
  simnic.first_reserved_vector = kFirstReservedVector;
  const std::string bdf = (*machine)->bdf();
  module.AddFunction(bdf, simnic);

  platform::linux_backend::LinuxMachineAccess access;
  access.pci.method = "dump";
  access.pci.params["dump.name"] = pci_dump;
  access.sysfs_root = "/nonexistent-sysfs";  // the allow-list selects no libpci function
  access.open_module = module.Factory();
  auto arbiter = platform::linux_backend::OpenLinuxArbiter(linux_config, *config);
  if (!arbiter.ok()) return Fail("arbiter", arbiter.status());
  auto platform = platform::linux_backend::MakeLinuxPlatformWith(access, linux_config, *config,
                                                                 *std::move(arbiter));
  if (!platform.ok()) return Fail("platform", platform.status());

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  auto node = daemon::Daemon::StartWithPlatform(*config, *std::move(platform));
  if (!node.ok()) return Fail("daemon", node.status());
  int sig = 0;
  sigwait(&stop_signals, &sig);
  (*node)->Shutdown(absl::Seconds(2));
  node->reset();
  std::ofstream(report_path) << Report(module, bdf);
  return 0;
}

}  // namespace
}  // namespace nichandover

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: fake_linux_node CONFIG PCI_DUMP REPORT\n");
    return 2;
  }
  return nichandover::Run(argv[1], argv[2], argv[3]);
}
