// What two nichandoverd hold after many handovers (issue 17: "RSS and open
// fds after 10,000 handovers, bounded"). Two real daemons on the fake
// platform (tests/testing/daemon_cluster.h) hand one NIC back and forth
// through CreateHandover, one at a time, each waited for; every --every
// handovers it prints each daemon's RSS, open fds, threads and journal size.
//
//   bazel run -c opt //bench:history_bench -- [--handovers 10000] [--every 1000]
//       [--history-per-nic N]
//
// Results: docs/performance.md. Everything it starts is stopped when it exits.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/testing/daemon_cluster.h"
#include "tests/testing/node_client.h"
#include "tests/testing/process.h"

namespace nichandover {
namespace {

using testing::ClusterOptions;
using testing::DaemonCluster;
using testing::NodeSpec;

constexpr char kNic[] = "0000:03:00.0";

uint64_t DirBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ignored)) {
    if (entry.is_regular_file(ignored)) total += entry.file_size(ignored);
  }
  return total;
}

void PrintRow(DaemonCluster& cluster, int done, absl::Duration elapsed) {
  std::printf("%9d %9.1f", done, absl::ToDoubleSeconds(elapsed));
  for (int i = 0; i < cluster.size(); ++i) {
    testing::ProcessUsage u = testing::ReadProcessUsage(cluster.process(i).pid());
    const uint64_t journal =
        DirBytes(absl::StrCat(cluster.dir(), "/", cluster.node_id(i), ".state"));
    std::printf(" | %8.1f %5d %7d %9.1f", u.rss_kib / 1024.0, u.open_fds, u.threads,
                journal / 1024.0);
  }
  std::printf("\n");
  std::fflush(stdout);
}

int Run(int handovers, int every, int history_per_nic) {
  ClusterOptions options;
  options.nodes = {NodeSpec{"node0", {{0, 0}}}, NodeSpec{"node1", {{0, 16}}}};
  if (history_per_nic > 0) options.extra_config = absl::StrCat("history_per_nic: ", history_per_nic);
  DaemonCluster cluster(options);
  if (absl::Status s = cluster.StartAll(); !s.ok()) {
    std::fprintf(stderr, "history_bench: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("machine: %d CPUs; fake platform, 2 daemons, one NIC, %d handovers, history_per_nic %s\n",
              static_cast<int>(std::thread::hardware_concurrency()), handovers,
              history_per_nic > 0 ? std::to_string(history_per_nic).c_str() : "default");
  std::printf("%9s %9s | %s\n", "handovers", "seconds",
              "node0: RSS MiB, fds, threads, journal KiB | node1: the same");
  const absl::Time start = absl::Now();
  PrintRow(cluster, 0, absl::ZeroDuration());
  int owner = 0, failed = 0;
  for (int k = 1; k <= handovers; ++k) {
    const std::string address = cluster.socket_address(owner);
    absl::StatusOr<v1::Handover> started = testing::StartHandover(
        address, kNic, cluster.node_id(1 - owner), absl::StrCat("history-bench-", k));
    bool committed = false;
    if (started.ok()) {
      const std::string id = started->handover_id();
      testing::WaitUntil(
          [&] {
            absl::StatusOr<v1::Handover> h = testing::GetHandover(address, id);
            committed = h.ok() && h->phase() == v1::HANDOVER_PHASE_COMMITTED;
            return h.ok() && h->done();
          },
          absl::Seconds(60), absl::Milliseconds(1));
    }
    if (committed) {
      owner = 1 - owner;
    } else {
      ++failed;
      std::fprintf(stderr, "history_bench: handover %d did not commit: %s\n", k,
                   started.ok() ? "rolled back or timed out"
                                : std::string(started.status().message()).c_str());
    }
    if (k % every == 0 || k == handovers) PrintRow(cluster, k, absl::Now() - start);
  }
  std::printf("%d of %d handovers did not commit\n", failed, handovers);
  return failed == 0 ? 0 : 1;
}

}  // namespace
}  // namespace nichandover

int main(int argc, char** argv) {
  // Under `bazel run` the daemons are in this binary's runfiles, where the
  // test helpers look for them through TEST_SRCDIR.
  if (std::getenv("TEST_SRCDIR") == nullptr) {
    const char* runfiles = std::getenv("RUNFILES_DIR");
    setenv("TEST_SRCDIR", runfiles ? runfiles : absl::StrCat(argv[0], ".runfiles").c_str(), 1);
  }
  int handovers = 10000, every = 1000, history_per_nic = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    int* value = flag == "--handovers"         ? &handovers
                 : flag == "--every"           ? &every
                 : flag == "--history-per-nic" ? &history_per_nic
                                               : nullptr;
    if (value == nullptr || i + 1 >= argc || !absl::SimpleAtoi(argv[++i], value) ||
        *value < 0 || (value != &history_per_nic && *value == 0)) {
      std::fprintf(stderr,
                   "usage: history_bench [--handovers N] [--every N] [--history-per-nic N]\n");
      return 2;
    }
  }
  return nichandover::Run(handovers, every, history_per_nic);
}
