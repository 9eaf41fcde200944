// A full disk under the journal (issue 16.9): node0's state directory is a
// small tmpfs of this test's own mount namespace. With the filesystem full a
// new handover is refused before anything moved, the daemon keeps serving,
// and once space is back handovers work again.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nichandover/v1/node_service.grpc.pb.h"
#include "tests/testing/daemon_cluster.h"

namespace nichandover {
namespace {

using ::nichandover::testing::ClusterOptions;
using ::nichandover::testing::DaemonCluster;
using ::nichandover::testing::NodeSpec;
using ::nichandover::testing::WaitUntil;

constexpr char kNic[] = "0000:03:00.0";

bool WriteProc(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  return static_cast<bool>(out);
}

// Enters a private mount namespace (as root, or through a user namespace)
// and mounts a tmpfs of `bytes` on `dir`; the daemons started afterwards
// inherit it. Must run while the process has a single thread.
std::string MountSmallTmpfs(const std::string& dir, size_t bytes) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::StrCat("mkdir ", dir, ": ", std::strerror(errno));
  }
  const uid_t uid = getuid();
  const gid_t gid = getgid();
  if (unshare(CLONE_NEWNS) != 0) {
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
      return absl::StrCat("unshare: ", std::strerror(errno));
    }
    WriteProc("/proc/self/setgroups", "deny");
    if (!WriteProc("/proc/self/uid_map", absl::StrCat("0 ", uid, " 1")) ||
        !WriteProc("/proc/self/gid_map", absl::StrCat("0 ", gid, " 1"))) {
      return "cannot write the user namespace's id maps";
    }
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return absl::StrCat("make / private: ", std::strerror(errno));
  }
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, absl::StrCat("size=", bytes).c_str()) != 0) {
    return absl::StrCat("mount tmpfs on ", dir, ": ", std::strerror(errno));
  }
  return "";
}

// Fills the filesystem of `path` until writes fail with ENOSPC.
void FillUp(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  std::string block(4096, 'x');
  while (write(fd, block.data(), block.size()) > 0) {
  }
  EXPECT_EQ(errno, ENOSPC) << std::strerror(errno);
  close(fd);
}

TEST(JournalSpaceTest, FullDiskRefusesTheHandoverAndSpaceBackRecovers) {
  const std::string state = std::string(std::getenv("TEST_TMPDIR")) + "/node0-state";
  const std::string problem = MountSmallTmpfs(state, 512 << 10);
  if (!problem.empty()) GTEST_SKIP() << "no private tmpfs here: " << problem;

  ClusterOptions options;
  options.nodes = {NodeSpec{"node0", {{0, 0}}}, NodeSpec{"node1", {{0, 16}}}};
  DaemonCluster cluster(options);
  const std::string conf = testing::ReadFile(cluster.config_path(0));
  testing::WriteFile(cluster.config_path(0),
                     absl::StrReplaceAll(conf, {{cluster.dir() + "/node0.state", state}}));
  ASSERT_TRUE(cluster.StartAll().ok());
  auto stub = v1::NodeService::NewStub(
      grpc::CreateChannel(cluster.socket_address(0), grpc::InsecureChannelCredentials()));
  auto create = [&](const std::string& request_id, v1::Handover* h) {
    v1::CreateHandoverRequest request;
    request.set_request_id(request_id);
    request.set_nic(kNic);
    request.set_target_node("node1");
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    return stub->CreateHandover(&ctx, request, h);
  };
  auto owner = [&] {
    v1::GetNicRequest request;
    request.set_nic(kNic);
    v1::Nic nic;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    grpc::Status s = stub->GetNic(&ctx, request, &nic);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return absl::StrCat(nic.ownership().owner_node(), "@", nic.ownership().epoch());
  };

  const std::string filler = state + "/filler";
  FillUp(filler);
  v1::Handover h;
  grpc::Status s = create("disk-full", &h);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "journal")) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "No space left")) << s.error_message();
  // Nothing moved, the daemon serves on.
  EXPECT_EQ(owner(), "node0@1");
  ASSERT_TRUE(cluster.running(0)) << cluster.process(0).Stderr();

  ASSERT_EQ(unlink(filler.c_str()), 0);
  ASSERT_TRUE(create("space-back", &h).ok());
  v1::Handover done;
  ASSERT_TRUE(WaitUntil(
      [&] {
        v1::GetHandoverRequest request;
        request.set_handover_id(h.handover_id());
        grpc::ClientContext ctx;
        ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
        return stub->GetHandover(&ctx, request, &done).ok() && done.done();
      },
      absl::Seconds(60), absl::Milliseconds(50)));
  EXPECT_EQ(done.phase(), v1::HANDOVER_PHASE_COMMITTED) << done.DebugString();
  EXPECT_EQ(owner(), "node1@2");
  EXPECT_TRUE(cluster.running(0)) << cluster.process(0).Stderr();
}

}  // namespace
}  // namespace nichandover
