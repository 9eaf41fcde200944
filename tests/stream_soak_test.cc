// Issue 16.10: handovers and WatchHandover/ListHandovers streams against two
// real nichandoverd processes on the fake platform, counting the source
// daemon's threads, open files and resident memory before and after. Streams
// hold no server thread (callback API), so after any number of them the
// daemon is back at its baseline, within a small slack.
//
// The CI version is short; bench/stream_soak.sh runs the same binary with
// SOAK_HANDOVERS=10000 SOAK_STREAMS=100000 (results in docs/performance.md).
#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nichandover/v1/node_service.grpc.pb.h"
#include "tests/testing/daemon_cluster.h"

namespace nichandover {
namespace {

using ::nichandover::testing::ClusterOptions;
using ::nichandover::testing::DaemonCluster;
using ::nichandover::testing::NodeSpec;

constexpr char kNic[] = "0000:03:00.0";
// Streams open at once in one batch: below the daemon's cap of 128.
constexpr int kBatch = 100;

int EnvCount(const char* name, int fallback) {
  const char* value = std::getenv(name);
  int n = 0;
  return value != nullptr && absl::SimpleAtoi(value, &n) && n > 0 ? n : fallback;
}

struct Usage {
  int threads = 0;
  int fds = 0;
  int64_t rss_kib = 0;
};

Usage Measure(pid_t pid) {
  Usage u;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) u.threads = std::atoi(line.c_str() + 8);
    if (line.rfind("VmRSS:", 0) == 0) u.rss_kib = std::atoll(line.c_str() + 6);
  }
  if (DIR* dir = ::opendir(absl::StrCat("/proc/", pid, "/fd").c_str())) {
    while (dirent* e = ::readdir(dir)) {
      if (e->d_name[0] != '.') ++u.fds;
    }
    ::closedir(dir);
  }
  return u;
}

std::string Describe(const Usage& u) {
  return absl::StrCat(u.threads, " threads, ", u.fds, " fds, ", u.rss_kib / 1024, " MiB RSS");
}

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

class StreamSoakTest : public ::testing::Test {
 protected:
  StreamSoakTest() : cluster_(Options()) {}

  static ClusterOptions Options() {
    ClusterOptions options;
    options.nodes = {NodeSpec{"node0", {{0, 0}, {1, 1}}}, NodeSpec{"node1", {{0, 16}, {1, 17}}}};
    return options;
  }

  std::shared_ptr<grpc::Channel> Channel(int node) {
    return grpc::CreateChannel(cluster_.socket_address(node), grpc::InsecureChannelCredentials());
  }

  // One handover from `from` to the other node, followed to its end on a
  // WatchHandover stream.
  // Follows a handover on `stub`'s node to its end; its last state there.
  v1::Handover FollowToEnd(v1::NodeService::Stub* stub, const std::string& id) {
    v1::WatchHandoverRequest watch;
    watch.set_handover_id(id);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(120)));
    auto reader = stub->WatchHandover(&ctx, watch);
    v1::HandoverEvent event;
    v1::Handover last;
    while (reader->Read(&event)) last = event.handover();
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << "watch of " << id << ": " << s.error_message();
    return last;
  }

  void Handover(v1::NodeService::Stub* from_stub, int from, int n) {
    v1::CreateHandoverRequest request;
    request.set_request_id(absl::StrCat("soak-", n));
    request.set_nic(kNic);
    request.set_target_node(cluster_.node_id(1 - from));
    v1::Handover created;
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(60)));
    grpc::Status s = from_stub->CreateHandover(&ctx, request, &created);
    ASSERT_TRUE(s.ok()) << "handover " << n << ": " << s.error_message();
    // On both nodes (the target finishes after the source), each on a
    // WatchHandover stream: the next handover starts from the other node.
    v1::Handover last = FollowToEnd(from_stub, created.handover_id());
    ASSERT_EQ(last.phase(), v1::HANDOVER_PHASE_COMMITTED) << last.DebugString();
    last = FollowToEnd(stubs_[1 - from].get(), created.handover_id());
    ASSERT_EQ(last.phase(), v1::HANDOVER_PHASE_COMMITTED) << last.DebugString();
    // Done here, on its source: a watch of it on this node is one event.
    if (from == 0) last_handover_ = created.handover_id();
  }

  // On a fresh connection (closed after): `kBatch` WatchHandover streams
  // open at once, each read to its end, and one ListHandovers.
  void StreamBatch(int node) {
    auto stub = v1::NodeService::NewStub(Channel(node));
    v1::WatchHandoverRequest watch;
    watch.set_handover_id(last_handover_);
    struct Stream {
      grpc::ClientContext ctx;
      std::unique_ptr<grpc::ClientReader<v1::HandoverEvent>> reader;
    };
    std::vector<std::unique_ptr<Stream>> streams;
    for (int i = 0; i < kBatch; ++i) {
      streams.push_back(std::make_unique<Stream>());
      streams.back()->ctx.set_deadline(Deadline(absl::Seconds(60)));
      streams.back()->reader = stub->WatchHandover(&streams.back()->ctx, watch);
    }
    for (auto& stream : streams) {
      v1::HandoverEvent event;
      int events = 0;
      while (stream->reader->Read(&event)) ++events;
      grpc::Status s = stream->reader->Finish();
      ASSERT_TRUE(s.ok()) << s.error_message();
      ASSERT_EQ(events, 1) << "a finished handover's watch is its end";
    }
    v1::ListHandoversRequest list;
    list.set_page_size(10);
    v1::ListHandoversResponse page;
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(60)));
    grpc::Status s = stub->ListHandovers(&ctx, list, &page);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_GT(page.handovers_size(), 0);
  }

  DaemonCluster cluster_;
  std::vector<std::unique_ptr<v1::NodeService::Stub>> stubs_;
  std::string last_handover_;
};

TEST_F(StreamSoakTest, ThreadsAndFilesReturnToBaselineAfterHandoversAndStreams) {
  const int handovers = EnvCount("SOAK_HANDOVERS", 40);
  const int streams = EnvCount("SOAK_STREAMS", 2000);
  ASSERT_TRUE(cluster_.StartAll().ok());
  const pid_t pid = cluster_.process(0).pid();
  for (int i = 0; i < 2; ++i) stubs_.push_back(v1::NodeService::NewStub(Channel(i)));
  // Warm up: the pools and gRPC's own threads start on first use.
  for (int n = 0; n < 2; ++n) {
    ASSERT_NO_FATAL_FAILURE(Handover(stubs_[n % 2].get(), n % 2, n));
  }
  ASSERT_NO_FATAL_FAILURE(StreamBatch(0));
  const Usage before = Measure(pid);
  std::cout << "baseline: " << Describe(before) << std::endl;

  const absl::Time start = absl::Now();
  int streams_done = 0;
  int peak_threads = before.threads;
  for (int n = 2; n < handovers + 2; ++n) {
    ASSERT_NO_FATAL_FAILURE(Handover(stubs_[n % 2].get(), n % 2, n));
    // Spread the streams over the handovers.
    const int due = static_cast<int64_t>(streams) * (n - 1) / handovers;
    while (streams_done + kBatch <= due) {
      ASSERT_NO_FATAL_FAILURE(StreamBatch(0));
      streams_done += kBatch;
      peak_threads = std::max(peak_threads, Measure(pid).threads);
    }
    if (n % 1000 == 0) {
      std::cout << n << " handovers, " << streams_done << " streams: "
                << Describe(Measure(pid)) << std::endl;
    }
  }
  while (streams_done < streams) {
    ASSERT_NO_FATAL_FAILURE(StreamBatch(0));
    streams_done += kBatch;
  }
  const absl::Duration took = absl::Now() - start;
  // Closed connections and finished calls are released asynchronously.
  Usage after = Measure(pid);
  for (int i = 0; i < 100 && (after.threads > before.threads || after.fds > before.fds); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    after = Measure(pid);
  }
  std::cout << "after " << handovers << " handovers and " << streams_done << " streams (+"
            << 2 * handovers << " watch streams following them) in " << absl::FormatDuration(took) << ": "
            << Describe(after) << "; peak " << peak_threads << " threads" << std::endl;
  // gRPC may keep a few more threads (its executor grows on demand) and
  // files (the journal rotates on compaction), but nothing per stream.
  constexpr int kThreadSlack = 8;
  constexpr int kFdSlack = 8;
  EXPECT_LE(after.threads, before.threads + kThreadSlack)
      << "before: " << Describe(before) << "; after: " << Describe(after);
  EXPECT_LE(peak_threads, before.threads + kThreadSlack)
      << "threads grew with open streams (" << kBatch << " at once)";
  EXPECT_LE(after.fds, before.fds + kFdSlack)
      << "before: " << Describe(before) << "; after: " << Describe(after);
}

// Streams that wait: 100 WatchHandover streams on a handover held in
// REROUTING (a hanging fake reroute) hold no daemon thread each.
TEST_F(StreamSoakTest, WaitingStreamsHoldNoThread) {
  ASSERT_TRUE(cluster_.StartAll().ok());
  const pid_t pid = cluster_.process(0).pid();
  for (int i = 0; i < 2; ++i) stubs_.push_back(v1::NodeService::NewStub(Channel(i)));
  ASSERT_NO_FATAL_FAILURE(Handover(stubs_[0].get(), 0, 0));
  ASSERT_NO_FATAL_FAILURE(Handover(stubs_[1].get(), 1, 1));
  const Usage before = Measure(pid);
  ASSERT_EQ(cluster_.FakeMachine({"set-fault", "--node", "node0", "--op", "reroute", "--hang"})
                .exit_code,
            0);
  v1::CreateHandoverRequest request;
  request.set_request_id("held");
  request.set_nic(kNic);
  request.set_target_node("node1");
  v1::Handover held;
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(60)));
  ASSERT_TRUE(stubs_[0]->CreateHandover(&ctx, request, &held).ok());
  auto stub = v1::NodeService::NewStub(Channel(0));
  v1::WatchHandoverRequest watch;
  watch.set_handover_id(held.handover_id());
  struct Stream {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::HandoverEvent>> reader;
  };
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < kBatch; ++i) {
    streams.push_back(std::make_unique<Stream>());
    streams.back()->ctx.set_deadline(Deadline(absl::Seconds(120)));
    streams.back()->reader = stub->WatchHandover(&streams.back()->ctx, watch);
    v1::HandoverEvent first;
    ASSERT_TRUE(streams.back()->reader->Read(&first)) << "stream " << i;
  }
  const Usage open = Measure(pid);
  std::cout << "baseline: " << Describe(before) << "; with " << kBatch
            << " waiting streams: " << Describe(open) << std::endl;
  EXPECT_LE(open.threads, before.threads + 8) << "threads grew with waiting streams";
  for (auto& s : streams) s->ctx.TryCancel();
  for (auto& s : streams) s->reader->Finish();
  ASSERT_EQ(cluster_.FakeMachine({"clear-fault"}).exit_code, 0);
}

}  // namespace
}  // namespace nichandover
