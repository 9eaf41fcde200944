// nichandoverd as a real process: health, reflection, ListNodes across peers,
// peer authentication, clean and unclean stops, bad configs.
#include <signal.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nichandover/v1/node_service.grpc.pb.h"
#include "nichandover/v1/peer_service.grpc.pb.h"
#include "tests/testing/daemon_cluster.h"

namespace nichandover {
namespace {

using ::nichandover::testing::DaemonCluster;
using ::nichandover::testing::IsServing;
using ::nichandover::testing::NodeSpec;
using ::nichandover::testing::RunCommand;
using ::nichandover::testing::RunfilePath;

std::vector<NodeSpec> TwoNodes() {
  return {{"node0", {{0, 0}, {1, 2}}}, {"node1", {{0, 4}, {1, 6}}}};
}

v1::ListNodesResponse ListNodes(const std::string& address, grpc::Status* status) {
  auto stub = v1::NodeService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::ListNodesResponse response;
  *status = stub->ListNodes(&ctx, v1::ListNodesRequest(), &response);
  return response;
}

// Operators' listeners serve NodeService, the peer listener PeerService;
// neither serves the other's.
TEST(DaemonTest, AnswersHealthForServerAndEachService) {
  DaemonCluster cluster({{"node0", {{0, 0}}}});
  ASSERT_TRUE(cluster.Start(0).ok());
  for (const std::string& address : {cluster.socket_address(0), cluster.tcp_address(0)}) {
    EXPECT_TRUE(IsServing(address, "")) << address;
    EXPECT_TRUE(IsServing(address, "nichandover.v1.NodeService")) << address;
    EXPECT_FALSE(IsServing(address, "nichandover.v1.PeerService")) << address;
    EXPECT_FALSE(IsServing(address, "no.such.Service")) << address;
  }
  const std::string peer = cluster.peer_address(0);
  EXPECT_TRUE(IsServing(peer, "")) << peer;
  EXPECT_TRUE(IsServing(peer, "nichandover.v1.PeerService")) << peer;
  EXPECT_FALSE(IsServing(peer, "nichandover.v1.NodeService")) << peer;
}

TEST(DaemonTest, ServerReflectionDescribesTheApi) {
  DaemonCluster cluster({{"node0", {{0, 0}}}});
  ASSERT_TRUE(cluster.Start(0).ok());
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(
      grpc::CreateChannel(cluster.tcp_address(0), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  auto stream = stub->ServerReflectionInfo(&ctx);

  grpc::reflection::v1alpha::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::set<std::string> services;
  for (const auto& s : response.list_services_response().service()) services.insert(s.name());
  EXPECT_TRUE(services.count("nichandover.v1.NodeService"));
  EXPECT_FALSE(services.count("nichandover.v1.PeerService"));  // the peer listener's
  EXPECT_TRUE(services.count("grpc.health.v1.Health"));

  grpc::reflection::v1alpha::ServerReflectionRequest symbol;
  symbol.set_file_containing_symbol("nichandover.v1.NodeService");
  ASSERT_TRUE(stream->Write(symbol));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_file_descriptor_response()) << response.DebugString();
  std::set<std::string> methods;
  for (const auto& bytes : response.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    for (const auto& service : file.service()) {
      if (service.name() != "NodeService") continue;
      for (const auto& m : service.method()) methods.insert(m.name());
    }
  }
  for (const char* m : {"ListNodes", "ListNics", "GetNic", "CreateHandover", "GetHandover",
                        "ListHandovers", "WatchHandover", "CancelHandover", "RecoverNic"}) {
    EXPECT_TRUE(methods.count(m)) << m;
  }
  stream->WritesDone();
}

TEST(DaemonTest, ListNodesReportsPeersAsTheyDescribeThemselves) {
  DaemonCluster cluster(TwoNodes());
  ASSERT_TRUE(cluster.StartAll().ok());
  grpc::Status status;
  v1::ListNodesResponse nodes = ListNodes(cluster.socket_address(0), &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(nodes.nodes_size(), 2);
  EXPECT_EQ(nodes.nodes(0).node_id(), "node0");
  EXPECT_TRUE(nodes.nodes(0).local());
  EXPECT_EQ(nodes.nodes(0).platform(), "fake");
  ASSERT_EQ(nodes.nodes(0).cpus_size(), 2);
  EXPECT_EQ(nodes.nodes(0).cpus(1).apic_id(), 2u);
  const v1::Node& peer = nodes.nodes(1);
  EXPECT_EQ(peer.node_id(), "node1");
  EXPECT_FALSE(peer.local());
  EXPECT_EQ(peer.state(), v1::NODE_STATE_REACHABLE);
  EXPECT_EQ(peer.address(), cluster.peer_address(1));
  // The CPUs come from node1's own config, through PeerService.Hello.
  ASSERT_EQ(peer.cpus_size(), 2);
  EXPECT_EQ(peer.cpus(0).apic_id(), 4u);
  EXPECT_EQ(peer.cpus(1).apic_id(), 6u);

  ASSERT_TRUE(cluster.Stop(1, SIGKILL).ok());
  nodes = ListNodes(cluster.socket_address(0), &status);
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(nodes.nodes_size(), 2);
  EXPECT_EQ(nodes.nodes(1).state(), v1::NODE_STATE_UNREACHABLE);
  EXPECT_FALSE(nodes.nodes(1).state_detail().empty());
  EXPECT_EQ(nodes.nodes(1).cpus_size(), 0);
}

TEST(DaemonTest, PeerServiceRefusesCallersThatAreNotPeers) {
  DaemonCluster cluster(TwoNodes());
  ASSERT_TRUE(cluster.Start(0).ok());
  auto stub = v1::PeerService::NewStub(
      grpc::CreateChannel(cluster.peer_address(0), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    v1::HelloResponse r;
    grpc::Status s = stub->Hello(&ctx, v1::HelloRequest(), &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-nichandover-node", "mallory");
    v1::HelloRequest req;
    req.set_node_id("mallory");
    v1::HelloResponse r;
    grpc::Status s = stub->Hello(&ctx, req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(s.error_message().find("mallory"), std::string::npos);
  }
  {
    // Issue 16.7: a configured node's name is not enough, peers are
    // authenticated by default (the cluster has a generated secret).
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-nichandover-node", "node1");
    v1::HelloRequest req;
    req.set_node_id("node1");
    v1::HelloResponse r;
    grpc::Status s = stub->Hello(&ctx, req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-nichandover-node", "node1");
    std::string secret = testing::ReadFile(cluster.secret_path());
    ctx.AddMetadata("x-nichandover-secret", secret.substr(0, secret.find('\n')));
    v1::HelloRequest req;
    req.set_node_id("node1");
    v1::HelloResponse r;
    grpc::Status s = stub->Hello(&ctx, req, &r);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(r.node().node_id(), "node0");
  }
}

TEST(DaemonTest, ClusterSecretMustMatch) {
  DaemonCluster cluster(TwoNodes());
  const std::string good = cluster.dir() + "/good.secret";
  const std::string bad = cluster.dir() + "/bad.secret";
  testing::WriteFile(good, "0123456789abcdef0123\n");
  testing::WriteFile(bad, "fedcba9876543210fedc\n");
  // The daemon refuses a secret other users can read.
  ASSERT_EQ(chmod(good.c_str(), 0600), 0);
  ASSERT_EQ(chmod(bad.c_str(), 0600), 0);
  for (int i = 0; i < 2; ++i) {
    std::string conf = testing::ReadFile(cluster.config_path(i));
    conf = absl::StrReplaceAll(conf, {{cluster.secret_path(), i == 0 ? good : bad}});
    testing::WriteFile(cluster.config_path(i), conf);
  }
  ASSERT_TRUE(cluster.StartAll().ok());
  grpc::Status status;
  auto nodes = ListNodes(cluster.socket_address(0), &status);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(nodes.nodes(1).state(), v1::NODE_STATE_UNREACHABLE);
  EXPECT_NE(nodes.nodes(1).state_detail().find("secret"), std::string::npos)
      << nodes.nodes(1).state_detail();

  // Same secret on both sides: reachable.
  ASSERT_TRUE(cluster.Stop(1, SIGTERM).ok());
  std::string conf = testing::ReadFile(cluster.config_path(1));
  testing::WriteFile(cluster.config_path(1), absl::StrReplaceAll(conf, {{bad, good}}));
  ASSERT_TRUE(cluster.Start(1).ok());
  nodes = ListNodes(cluster.socket_address(0), &status);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(nodes.nodes(1).state(), v1::NODE_STATE_REACHABLE) << nodes.nodes(1).state_detail();
}

// Issue 16.7: who may operate a node is the operator group's business: the
// operator socket is mode 0660 with operator_group; the peer socket is for
// the daemon's own user (0600).
TEST(DaemonTest, OperatorSocketBelongsToTheOperatorGroupPeerSocketToTheDaemon) {
  const struct group* own = ::getgrgid(::getgid());
  ASSERT_NE(own, nullptr);
  testing::ClusterOptions options;
  options.nodes = TwoNodes();
  options.extra_config = absl::StrCat("operator_group: \"", own->gr_name, "\"");
  DaemonCluster cluster(options);
  ASSERT_TRUE(cluster.Start(0).ok());
  const std::string operator_socket = cluster.socket_address(0).substr(strlen("unix:"));
  const std::string peer_socket = cluster.peer_address(0).substr(strlen("unix:"));
  struct stat st;
  ASSERT_EQ(::stat(operator_socket.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u) << std::oct << st.st_mode;
  EXPECT_EQ(st.st_gid, ::getgid());
  ASSERT_EQ(::stat(peer_socket.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u) << std::oct << st.st_mode;
}

// Without operator_group: the packages' group "nichandover" when the daemon
// can give the socket to it, else owner-only.
TEST(DaemonTest, OperatorSocketDefaultsToTheNichandoverGroupOrOwnerOnly) {
  DaemonCluster cluster(TwoNodes());
  ASSERT_TRUE(cluster.Start(0).ok());
  struct stat st;
  ASSERT_EQ(::stat(cluster.socket_address(0).substr(strlen("unix:")).c_str(), &st), 0);
  const struct group* packaged = ::getgrnam("nichandover");
  if (packaged != nullptr && st.st_gid == packaged->gr_gid) {
    EXPECT_EQ(st.st_mode & 07777, 0660u) << std::oct << st.st_mode;
  } else {
    EXPECT_EQ(st.st_mode & 07777, 0600u) << std::oct << st.st_mode;
  }
}

TEST(DaemonTest, SigtermStopsCleanlyAndRemovesTheSocket) {
  DaemonCluster cluster({{"node0", {{0, 0}}}});
  ASSERT_TRUE(cluster.Start(0).ok());
  const std::string socket = cluster.socket_address(0).substr(5);
  const std::string peer_socket = cluster.peer_address(0).substr(5);
  struct stat st;
  ASSERT_EQ(stat(socket.c_str(), &st), 0);
  ASSERT_EQ(stat(peer_socket.c_str(), &st), 0);
  auto code = cluster.Stop(0, SIGTERM);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << cluster.process(0).Stderr();
  EXPECT_NE(stat(socket.c_str(), &st), 0) << "socket left behind";
  EXPECT_NE(stat(peer_socket.c_str(), &st), 0) << "peer socket left behind";
  EXPECT_NE(cluster.process(0).Stderr().find("shutting down"), std::string::npos);
}

TEST(DaemonTest, SigintStopsCleanly) {
  DaemonCluster cluster({{"node0", {{0, 0}}}});
  ASSERT_TRUE(cluster.Start(0).ok());
  auto code = cluster.Stop(0, SIGINT);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
}

TEST(DaemonTest, RestartAfterCrashReplacesStaleSocket) {
  DaemonCluster cluster({{"node0", {{0, 0}}}});
  ASSERT_TRUE(cluster.Start(0).ok());
  ASSERT_TRUE(cluster.Stop(0, SIGKILL).ok());
  struct stat st;
  ASSERT_EQ(stat(cluster.socket_address(0).substr(5).c_str(), &st), 0)
      << "a crash leaves the socket file";
  ASSERT_TRUE(cluster.Start(0).ok());
  EXPECT_NE(cluster.process(0).Stderr().find("removing stale socket"), std::string::npos);
}

TEST(DaemonTest, SecondDaemonOnTheSameNodeIsRefused) {
  DaemonCluster cluster({{"node0", {{0, 0}}}});
  ASSERT_TRUE(cluster.Start(0).ok());
  // Same state directory: the journal is locked.
  auto result = RunCommand(
      {RunfilePath("daemon/nichandoverd"), "--config", cluster.config_path(0)}, cluster.dir(),
      {}, absl::Seconds(10));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("is in use by another process"), std::string::npos) << result.err;
  // Another state directory but the same socket: the live socket is kept.
  const std::string other = cluster.dir() + "/other.conf";
  testing::WriteFile(other, absl::StrReplaceAll(testing::ReadFile(cluster.config_path(0)),
                                                {{"node0.state", "other.state"}}));
  result = RunCommand({RunfilePath("daemon/nichandoverd"), "--config", other}, cluster.dir(), {},
                      absl::Seconds(10));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("another process is serving"), std::string::npos) << result.err;
  EXPECT_TRUE(IsServing(cluster.socket_address(0))) << "the first daemon must be unharmed";
}

TEST(DaemonTest, BadConfigExitsWithUsageCodeNamingFileAndField) {
  DaemonCluster cluster({{"node0", {{0, 0}}}});
  const std::string path = cluster.dir() + "/broken.conf";
  testing::WriteFile(path, "node_id: \"node0\"\nplatform { fake { state_path: \"/tmp/x\" } }\n");
  auto result = RunCommand({RunfilePath("daemon/nichandoverd"), "--config", path}, cluster.dir());
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find(path + ": cpus: at least one CPU"), std::string::npos) << result.err;

  result = RunCommand({RunfilePath("daemon/nichandoverd"), "--config", cluster.config_path(0),
                       "--check-config"},
                      cluster.dir());
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("OK (node node0, platform fake)"), std::string::npos);

  result = RunCommand({RunfilePath("daemon/nichandoverd")}, cluster.dir());
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--config FILE is required"), std::string::npos);
}

}  // namespace
}  // namespace nichandover
