// nh-sim-kernel: one node's simulated kernel. Runs until SIGTERM/SIGINT,
// independently of the node's daemon (which talks to it over --socket).
//
//   nh-sim-kernel --machine /dev/shm/nichandover-sim --node node0 \
//       --socket /run/nichandover/node0-kernel.sock [--vectors 0x40-0xdf]
//       [--napi-weight 64] [--hook on|off] [--fault-injection]
//   --fault-injection enables the InjectFault control call (fault tests).
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "sim/control_server.h"
#include "sim/flags.h"
#include "sim/kernel.h"
#include "sim/realtime.h"

namespace nichandover {
namespace sim {
namespace {

int Usage(const std::string& why) {
  std::fprintf(stderr,
               "nh-sim-kernel: %s\nusage: nh-sim-kernel --machine PATH --node NODE --socket PATH "
               "[--vectors FIRST-LAST] [--napi-weight N] [--netdev-budget N] [--hook on|off] "
               "[--fault-injection] [--realtime-priority N]\n",
               why.c_str());
  return 2;
}

int Main(int argc, char** argv) {
  auto flags = Flags::Parse(argc, argv,
                            {"machine", "node", "socket", "vectors", "napi-weight",
                             "netdev-budget", "hook", "fault-injection", "realtime-priority"},
                            /*booleans=*/{"fault-injection"});
  if (!flags.ok()) return Usage(std::string(flags.status().message()));
  if (!flags->Has("machine") || !flags->Has("node") || !flags->Has("socket")) {
    return Usage("--machine, --node and --socket are required");
  }
  KernelOptions options;
  options.node_id = flags->Get("node");
  if (flags->Has("vectors")) {
    std::vector<std::string> range = absl::StrSplit(flags->Get("vectors"), '-');
    uint32_t first, last;
    if (range.size() != 2 || !absl::SimpleHexAtoi(range[0], &first) ||
        !absl::SimpleHexAtoi(range[1], &last)) {
      return Usage("--vectors wants FIRST-LAST in hex, e.g. 0x40-0xdf");
    }
    options.first_vector = first;
    options.last_vector = last;
  }
  auto weight = flags->GetNumber("napi-weight", options.napi_weight);
  auto budget = flags->GetNumber("netdev-budget", options.netdev_budget);
  if (!weight.ok() || !budget.ok() || *weight < 1 || *budget < 1) {
    return Usage("--napi-weight and --netdev-budget want positive numbers");
  }
  options.napi_weight = static_cast<uint32_t>(*weight);
  options.netdev_budget = static_cast<uint32_t>(*budget);
  // Off only to measure the hook's cost (bench/): no gates, no handovers.
  const std::string hook = flags->Get("hook", "on");
  if (hook != "on" && hook != "off") return Usage("--hook wants on or off");
  options.hook = hook == "on";
  options.fault_injection =
      flags->Has("fault-injection") && flags->Get("fault-injection") != "false";
  auto realtime = ParseRealtimePriority(flags->Get("realtime-priority", "0"));
  if (!realtime.ok()) return Usage(std::string(realtime.status().message()));
  options.realtime_priority = *realtime;
  SetLogTag(options.node_id + "-kernel");
  BlockTerminationSignals();

  auto machine = Machine::Open(flags->Get("machine"));
  if (!machine.ok()) {
    NH_LOG(ERROR) << machine.status();
    return 1;
  }
  auto kernel = Kernel::Boot(machine->get(), options);
  if (!kernel.ok()) {
    NH_LOG(ERROR) << "boot: " << kernel.status();
    return 1;
  }
  auto server = ControlServer::Start(kernel->get(), flags->Get("socket"));
  if (!server.ok()) {
    NH_LOG(ERROR) << server.status();
    return 1;
  }
  NH_LOG(INFO) << "node " << options.node_id << " up; control on unix:" << flags->Get("socket");
  WaitForTerminationSignal(-1);
  NH_LOG(INFO) << "shutting down";
  (*server)->Shutdown();
  (*kernel)->Shutdown();
  return 0;
}

}  // namespace
}  // namespace sim
}  // namespace nichandover

int main(int argc, char** argv) { return nichandover::sim::Main(argc, argv); }
