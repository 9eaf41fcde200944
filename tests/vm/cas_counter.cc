// cas_counter: one participant of the cross-guest CAS proof
// (tests/vm/cas_vm_test.sh, docs/simulator.md "Atomicity across guests").
//
//   cas_counter --memory PATH|--ivshmem --participants P --seconds S [--label L]
//   cas_counter --memory PATH|--ivshmem --read
//   cas_counter --ivshmem --ring VECTOR
//
// Maps the simulated machine's memory with Machine::AttachExisting (the
// machine's file on the host; in a guest the ivshmem function's BAR2,
// /sys/bus/pci/devices/<BDF>/resource2, the way a guest's daemon maps it),
// finds the counter through the directory (cas_test_offset) and:
//  1. arrives: increments it once by CAS, then waits until all P arrived
//     (counter >= P), so every participant's loop overlaps the others';
//  2. increments it by CAS (lock cmpxchg) for S seconds, counting its own
//     successful CASes.
// Prints "cas_counter L: increments K" (K excludes the arrival). If the CAS
// is atomic everywhere, the final counter is exactly P + the sum of every K.
// --read prints "cas_counter: value V". --ring writes the ivshmem Doorbell
// register (BAR0 + 12, through resource0) with (machine_peer_id << 16) |
// VECTOR: a guest's doorbell to the machine (guest_abi.h).
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sim/machine.h"

namespace {

using nichandover::sim::Machine;

int64_t NowNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string ReadLine(const std::string& path) {
  char buf[64] = {};
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return "";
  if (std::fgets(buf, sizeof(buf), f) == nullptr) buf[0] = '\0';
  std::fclose(f);
  std::string s(buf);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The sysfs directory of the first ivshmem-doorbell function, enabled; "" if none.
std::string FindIvshmem() {
  const std::string root = "/sys/bus/pci/devices/";
  DIR* dir = opendir(root.c_str());
  if (dir == nullptr) return "";
  std::string found;
  while (struct dirent* e = readdir(dir)) {
    std::string dev = root + e->d_name;
    if (std::strtoul(ReadLine(dev + "/vendor").c_str(), nullptr, 16) == NH_SIM_IVSHMEM_VENDOR &&
        std::strtoul(ReadLine(dev + "/device").c_str(), nullptr, 16) == NH_SIM_IVSHMEM_DEVICE) {
      found = dev;
      break;
    }
  }
  closedir(dir);
  if (found.empty()) return "";
  // Memory decoding on: sysfs refuses to map a disabled device's BARs.
  FILE* enable = std::fopen((found + "/enable").c_str(), "w");
  if (enable != nullptr) {
    std::fputs("1", enable);
    std::fclose(enable);
  }
  return found;
}

// Rings the machine through the guest's own ivshmem BAR0 Doorbell register.
int Ring(const std::string& device, uint32_t peer, uint32_t vector) {
  int fd = open((device + "/resource0").c_str(), O_RDWR | O_SYNC | O_CLOEXEC);
  if (fd < 0) {
    std::perror("cas_counter: resource0");
    return 1;
  }
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    std::perror("cas_counter: mmap resource0");
    return 1;
  }
  auto* regs = static_cast<volatile uint32_t*>(p);
  regs[NH_SIM_IVSHMEM_REG_DOORBELL / 4] = (peer << 16) | vector;
  std::printf("cas_counter: rang peer %u vector %u (my peer id %u)\n", peer, vector,
              regs[NH_SIM_IVSHMEM_REG_IVPOSITION / 4]);
  munmap(p, 4096);
  return 0;
}

int Usage() {
  std::fprintf(stderr,
               "usage: cas_counter --memory PATH|--ivshmem (--participants P --seconds S"
               " [--label L] | --read) | --ivshmem --ring VECTOR\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string memory, device, label = "host";
  long ring = -1;
  long participants = 0;
  double seconds = 0;
  bool read_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--memory") {
      memory = value();
    } else if (arg == "--ivshmem") {
      device = FindIvshmem();
      if (device.empty()) {
        std::fprintf(stderr, "cas_counter: no ivshmem-doorbell function (1af4:1110)\n");
        return 1;
      }
      memory = device + "/resource2";
    } else if (arg == "--participants") {
      participants = std::strtol(value().c_str(), nullptr, 10);
    } else if (arg == "--seconds") {
      seconds = std::strtod(value().c_str(), nullptr);
    } else if (arg == "--label") {
      label = value();
    } else if (arg == "--ring") {
      ring = std::strtol(value().c_str(), nullptr, 10);
    } else if (arg == "--read") {
      read_only = true;
    } else {
      return Usage();
    }
  }
  if (memory.empty() || (ring >= 0 && device.empty()) ||
      (!read_only && ring < 0 && (participants < 1 || seconds <= 0))) {
    return Usage();
  }
  auto machine = Machine::AttachExisting(memory);
  if (!machine.ok()) {
    std::fprintf(stderr, "cas_counter: %s\n", machine.status().ToString().c_str());
    return 1;
  }
  // Through the directory, as a guest finds it.
  char* base = reinterpret_cast<char*>(&(*machine)->layout());
  auto* counter = reinterpret_cast<uint64_t*>(base + (*machine)->layout().directory.cas_test_offset);
  if (ring >= 0) {
    return Ring(device, (*machine)->layout().directory.machine_peer_id,
                static_cast<uint32_t>(ring));
  }
  if (read_only) {
    std::printf("cas_counter: value %llu\n",
                static_cast<unsigned long long>(__atomic_load_n(counter, __ATOMIC_SEQ_CST)));
    return 0;
  }
  auto increment = [counter] {
    uint64_t seen = __atomic_load_n(counter, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(counter, &seen, seen + 1, /*weak=*/false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
  };
  increment();  // arrival
  const int64_t give_up = NowNanos() + int64_t{600} * 1000000000;
  while (__atomic_load_n(counter, __ATOMIC_SEQ_CST) < static_cast<uint64_t>(participants)) {
    if (NowNanos() > give_up) {
      std::printf("cas_counter %s: the others never arrived\n", label.c_str());
      return 1;
    }
  }
  uint64_t increments = 0;
  const int64_t end = NowNanos() + static_cast<int64_t>(seconds * 1e9);
  while (NowNanos() < end) {
    for (int i = 0; i < 64; ++i) increment();
    increments += 64;
  }
  std::printf("cas_counter %s: increments %llu\n", label.c_str(),
              static_cast<unsigned long long>(increments));
  std::fflush(stdout);
  return 0;
}
