// nicctl as a user runs it: against real daemons, in text and JSON, with the
// documented exit codes.
#include <signal.h>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "nichandover/v1/node_service.pb.h"
#include "tests/testing/daemon_cluster.h"

namespace nichandover {
namespace {

using ::nichandover::testing::CommandResult;
using ::nichandover::testing::DaemonCluster;
using ::nichandover::testing::RunCommand;
using ::nichandover::testing::RunfilePath;

class NicctlTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(cluster_.StartAll().ok()); }
  DaemonCluster cluster_{std::vector<testing::NodeSpec>{{"node0", {{0, 0}, {1, 2}}}, {"node1", {{0, 4}}}}};
};

TEST_F(NicctlTest, NodesPrintsAlignedTable) {
  CommandResult r = cluster_.Nicctl(0, {"nodes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0].rfind("NODE", 0), 0u);
  // Columns line up: STATE starts at the same offset in every row.
  size_t state_col = lines[0].find("STATE");
  EXPECT_EQ(lines[1].find("reachable"), state_col) << r.out;
  EXPECT_EQ(lines[2].find("reachable"), state_col) << r.out;
  EXPECT_NE(lines[1].find("node0"), std::string::npos);
  EXPECT_NE(lines[1].find("0(0),1(2)"), std::string::npos);
  EXPECT_NE(lines[2].find("node1"), std::string::npos);
  EXPECT_NE(lines[2].find("0(4)"), std::string::npos);
  EXPECT_NE(lines[2].find(cluster_.peer_address(1)), std::string::npos);
}

TEST_F(NicctlTest, NodesJsonParsesWithDocumentedFieldNames) {
  CommandResult r = cluster_.Nicctl(1, {"nodes", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::ListNodesResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &parsed).ok()) << r.out;
  ASSERT_EQ(parsed.nodes_size(), 2);
  EXPECT_EQ(parsed.nodes(0).node_id(), "node1");
  EXPECT_EQ(parsed.nodes(1).node_id(), "node0");
  EXPECT_EQ(parsed.nodes(1).state(), v1::NODE_STATE_REACHABLE);
  // Stable names for scripts: snake_case proto names, enums as names.
  for (const char* key : {"\"node_id\"", "\"apic_id\"", "\"local\"", "\"NODE_STATE_REACHABLE\""}) {
    EXPECT_NE(r.out.find(key), std::string::npos) << key << " in " << r.out;
  }
}

TEST_F(NicctlTest, VersionShowsClientAndServer) {
  CommandResult r = cluster_.Nicctl(0, {"version"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("nicctl 0."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nichandoverd 0."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("on node node0 (platform fake)"), std::string::npos) << r.out;

  r = cluster_.Nicctl(0, {"version", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  google::protobuf::Struct doc;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &doc).ok()) << r.out;
  EXPECT_EQ(doc.fields().at("server").struct_value().fields().at("node_id").string_value(),
            "node0");
  EXPECT_FALSE(doc.fields().at("client").struct_value().fields().at("version").string_value().empty());
}

TEST_F(NicctlTest, ServerFromEnvironment) {
  CommandResult r = RunCommand({RunfilePath("cli/nicctl"), "nodes", "--json"}, cluster_.dir(),
                               {{"NICCTL_SERVER", cluster_.tcp_address(1)}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"node1\""), std::string::npos);
}

TEST_F(NicctlTest, UnreachableDaemonExits7WithAdvice) {
  std::string dead = "unix:" + cluster_.dir() + "/nobody.sock";
  CommandResult r =
      RunCommand({RunfilePath("cli/nicctl"), "--server", dead, "nodes"}, cluster_.dir());
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_NE(r.err.find("cannot reach nichandoverd at " + dead), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("hint: is nichandoverd running there?"), std::string::npos) << r.err;

  r = RunCommand({RunfilePath("cli/nicctl"), "--server", dead, "version"}, cluster_.dir());
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_NE(r.out.find("nicctl 0."), std::string::npos) << "client version still printed";
  r = RunCommand({RunfilePath("cli/nicctl"), "--server", dead, "version", "--client"},
                 cluster_.dir());
  EXPECT_EQ(r.exit_code, 0);
}

TEST_F(NicctlTest, PeerDownShowsUnreachableButSucceeds) {
  ASSERT_TRUE(cluster_.Stop(1, SIGKILL).ok());
  CommandResult r = cluster_.Nicctl(0, {"nodes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("unreachable"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("node1: "), std::string::npos) << "the reason is printed: " << r.out;
}

TEST_F(NicctlTest, UsageErrorsExit2) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"frobnicate"}, {"nodes", "--bogus"}, {"nodes", "extra"}, {},
           {"--server", "nonsense", "nodes"}, {"--rpc-timeout", "soon", "nodes"}}) {
    std::vector<std::string> argv = {RunfilePath("cli/nicctl")};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult r = RunCommand(argv, cluster_.dir());
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << ": " << r.err;
    EXPECT_FALSE(r.err.empty());
  }
}

TEST_F(NicctlTest, HelpAndCompletion) {
  CommandResult r = RunCommand({RunfilePath("cli/nicctl"), "--help"}, cluster_.dir());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("Usage: nicctl"), std::string::npos);
  EXPECT_NE(r.out.find("Exit status:"), std::string::npos);
  r = RunCommand({RunfilePath("cli/nicctl"), "nodes", "--help"}, cluster_.dir());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("Usage: nicctl nodes"), std::string::npos);
  r = RunCommand({RunfilePath("cli/nicctl"), "completion", "bash"}, cluster_.dir());
  EXPECT_EQ(r.exit_code, 0);
  // The script is valid bash.
  testing::WriteFile(cluster_.dir() + "/completion.bash", r.out);
  CommandResult check =
      RunCommand({"/bin/bash", "-n", cluster_.dir() + "/completion.bash"}, cluster_.dir());
  EXPECT_EQ(check.exit_code, 0) << check.err;
}

}  // namespace
}  // namespace nichandover
