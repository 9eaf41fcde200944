// Test helpers: a machine in the test's temporary directory with the device
// running on a thread.
#ifndef NICHANDOVER_SIM_TESTING_H_
#define NICHANDOVER_SIM_TESTING_H_

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "sim/device.h"
#include "sim/machine.h"

namespace nichandover {
namespace sim {

// node0 has APIC IDs 0 and 1, node1 has 2 and 3; node0 owns the NIC.
inline MachineSpec TwoNodeSpec(uint32_t ring_size = 1024) {
  MachineSpec spec;
  spec.nodes = {{"node0", {0, 1}}, {"node1", {2, 3}}};
  spec.initial_owner = "node0";
  spec.ring_size = ring_size;
  return spec;
}

inline std::string TestPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

// Unix socket paths must fit sun_path (108 bytes); the test's temporary
// directory may be deeper than that, so sockets go to a short directory.
inline std::string SocketPath(const std::string& name) {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/nh-sim-XXXXXX";
    const char* made = mkdtemp(tmpl);
    return std::string(made != nullptr ? made : "/tmp");
  }();
  return dir + "/" + name;
}

class DeviceThread {
 public:
  // `guests`: the ivshmem front end, when guests are attached.
  explicit DeviceThread(Machine& machine, GuestLinks* guests = nullptr)
      : device_(machine, guests) {
    thread_ = std::thread([this] { device_.Run(stop_); });
  }
  ~DeviceThread() {
    stop_ = true;
    thread_.join();
  }

 private:
  Device device_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_TESTING_H_
