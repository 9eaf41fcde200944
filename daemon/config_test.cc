#include "daemon/config.h"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace nichandover {
namespace daemon {
namespace {

std::string TestdataPath(const std::string& name) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/nichandover/daemon/testdata/" + name;
}

constexpr char kMinimal[] = R"pb(
  node_id: "node1"
  cpus { cpu: 0 apic_id: 4 }
  platform { fake { state_path: "/tmp/m" } }
)pb";

TEST(ConfigTest, LoadsExampleFile) {
  // The example's secret, at a path this test can write.
  const std::string tmp = std::getenv("TEST_TMPDIR");
  std::ofstream(tmp + "/node0.secret") << "an-example-secret-of-32-bytes-ok\n";
  ASSERT_EQ(::chmod((tmp + "/node0.secret").c_str(), 0600), 0);
  std::ifstream in(TestdataPath("node0.conf"));
  std::stringstream text;
  text << in.rdbuf();
  std::string conf = text.str();
  conf.replace(conf.find("/etc/nichandover/secret"), strlen("/etc/nichandover/secret"),
               tmp + "/node0.secret");
  std::ofstream(tmp + "/node0.conf") << conf;
  auto config = LoadConfig(tmp + "/node0.conf");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->node_id(), "node0");
  ASSERT_EQ(config->listen_size(), 1);
  ASSERT_EQ(config->peer_listen_size(), 1);
  EXPECT_EQ(config->peer_listen(0), "127.0.0.1:7401");
  ASSERT_EQ(config->peers_size(), 1);
  EXPECT_EQ(config->peers(0).address(), "127.0.0.1:7402");
  EXPECT_EQ(config->cpus(1).apic_id(), 2u);
  EXPECT_EQ(PlatformName(*config), "fake");
  EXPECT_EQ(EffectiveTimeouts(*config).quiesce, absl::Seconds(3));
  EXPECT_EQ(EffectiveTimeouts(*config).attach, absl::Seconds(2));
}

TEST(ConfigTest, FillsDefaults) {
  auto config = ParseConfig(kMinimal, "min.conf");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->listen_size(), 1);
  EXPECT_EQ(config->listen(0), "unix:/run/nichandover/nichandoverd.sock");
  EXPECT_EQ(config->state_dir(), "/var/lib/nichandover/node1");
  EXPECT_EQ(config->vectors().first(), 0x40u);
  EXPECT_EQ(config->vectors().last(), 0xdfu);
  EXPECT_EQ(EffectiveTimeouts(*config).handover, absl::Seconds(30));
  EXPECT_EQ(config->history_per_nic(), kDefaultHistoryPerNic);
  EXPECT_TRUE(config->has_kernel_commit());
  EXPECT_TRUE(config->kernel_commit());
}

TEST(ConfigTest, KernelCommitCanBeTurnedOff) {
  auto off = ParseConfig(std::string(kMinimal) + "kernel_commit: false\n", "k.conf");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_TRUE(off->has_kernel_commit());
  EXPECT_FALSE(off->kernel_commit());
  auto on = ParseConfig(std::string(kMinimal) + "kernel_commit: true\n", "k.conf");
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->kernel_commit());
  auto bad = ParseConfig(std::string(kMinimal) + "kernel_commit: maybe\n", "k.conf");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConfigTest, HistoryPerNicIsBounded) {
  auto kept = ParseConfig(std::string(kMinimal) + "history_per_nic: 5\n", "h.conf");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->history_per_nic(), 5u);
  auto huge = ParseConfig(std::string(kMinimal) + "history_per_nic: 100001\n", "h.conf");
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(huge.status().message(), "h.conf: history_per_nic: 100001 is more than 100000");
}

TEST(ConfigTest, MissingFileIsNotFoundAndNamesIt) {
  auto config = LoadConfig("/nonexistent/dir/x.conf");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(config.status().message().find("/nonexistent/dir/x.conf"), std::string::npos);
}

TEST(ConfigTest, SyntaxErrorNamesFileLineAndField) {
  auto config = ParseConfig("node_id: \"a\"\nnod_id: \"b\"\n", "bad.conf");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(config.status().message());
  EXPECT_NE(msg.find("bad.conf:2:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nod_id"), std::string::npos) << msg;
}

struct BadCase {
  const char* name;
  std::string text;
  const char* field;
  const char* problem;
};

class BadConfigTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfigTest, IsRefusedNamingFileFieldAndProblem) {
  const BadCase& c = GetParam();
  auto config = ParseConfig(c.text, "node.conf");
  ASSERT_FALSE(config.ok()) << c.name;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(config.status().message());
  EXPECT_EQ(msg.rfind("node.conf: ", 0), 0u) << msg;
  EXPECT_NE(msg.find(std::string(c.field) + ": "), std::string::npos) << msg;
  EXPECT_NE(msg.find(c.problem), std::string::npos) << msg;
}

const std::string kCpu = "cpus { cpu: 0 apic_id: 0 } ";
const std::string kFake = "platform { fake { state_path: \"/tmp/m\" } } ";

INSTANTIATE_TEST_SUITE_P(
    Cases, BadConfigTest,
    ::testing::Values(
        BadCase{"no_node_id", kCpu + kFake, "node_id", "is required"},
        BadCase{"bad_node_id", "node_id: \"Node_0\" " + kCpu + kFake, "node_id", "[a-z0-9-]"},
        BadCase{"bad_listen", "node_id: \"n\" listen: \"localhost\" " + kCpu + kFake,
                "listen[0]", "expected unix:/PATH or HOST:PORT"},
        BadCase{"dup_listen",
                "node_id: \"n\" listen: \"unix:/a\" listen: \"unix:///a\" " + kCpu + kFake,
                "listen[1]", "listed twice"},
        BadCase{"peer_self", "node_id: \"n\" peers { node_id: \"n\" address: \"h:1\" } " + kCpu +
                                 kFake,
                "peers[0].node_id", "own id"},
        BadCase{"peer_no_address", "node_id: \"n\" peers { node_id: \"m\" } " + kCpu + kFake,
                "peers[0].address", "is required"},
        BadCase{"peer_bad_port",
                "node_id: \"n\" peers { node_id: \"m\" address: \"h:99999\" } " + kCpu + kFake,
                "peers[0].address", "0..65535"},
        BadCase{"dup_peer",
                "node_id: \"n\" peers { node_id: \"m\" address: \"h:1\" } "
                "peers { node_id: \"m\" address: \"h:2\" } " +
                    kCpu + kFake,
                "peers[1].node_id", "listed twice"},
        BadCase{"peers_without_peer_listen",
                "node_id: \"n\" peers { node_id: \"m\" address: \"h:1\" } " + kCpu + kFake,
                "peer_listen", "is required when the node has peers"},
        BadCase{"peer_listen_is_a_listen_address",
                "node_id: \"n\" listen: \"unix:/run/n.sock\" peer_listen: \"unix:/run/n.sock\" " +
                    kCpu + kFake,
                "peer_listen[0]", "is also listen[0]: operators and peers need separate"},
        BadCase{"dup_peer_listen",
                "node_id: \"n\" peer_listen: \"127.0.0.1:1\" peer_listen: \"127.0.0.1:1\" " +
                    kCpu + kFake,
                "peer_listen[1]", "listed twice"},
        BadCase{"bad_peer_listen", "node_id: \"n\" peer_listen: \"nowhere\" " + kCpu + kFake,
                "peer_listen[0]", "expected unix:/PATH or HOST:PORT"},
        BadCase{"unknown_operator_group",
                "node_id: \"n\" operator_group: \"no-such-group-nh\" " + kCpu + kFake,
                "operator_group", "group 'no-such-group-nh' does not exist"},
        BadCase{"no_cpus", "node_id: \"n\" " + kFake, "cpus", "at least one CPU"},
        BadCase{"dup_apic", "node_id: \"n\" cpus { cpu: 0 apic_id: 3 } cpus { cpu: 1 apic_id: 3 } " +
                                kFake,
                "cpus[1].apic_id", "listed twice"},
        BadCase{"big_apic", "node_id: \"n\" cpus { cpu: 0 apic_id: 300 } " + kFake,
                "cpus[0].apic_id", "8-bit"},
        BadCase{"no_platform", "node_id: \"n\" " + kCpu, "platform", "is required"},
        BadCase{"empty_platform", "node_id: \"n\" platform {} " + kCpu, "platform",
                "names no backend"},
        BadCase{"fake_no_state", "node_id: \"n\" platform { fake {} } " + kCpu,
                "platform.fake.state_path", "is required"},
        BadCase{"linux_no_arbiter", "node_id: \"n\" platform { linux {} } " + kCpu,
                "platform.linux.arbiter_file", "is required"},
        BadCase{"linux_two_arbiters",
                "node_id: \"n\" platform { linux { arbiter_file: \"/dev/shm/a\" "
                "machine_memory: \"/dev/shm/m\" } } " +
                    kCpu,
                "platform.linux.machine_memory", "cannot be given with"},
        BadCase{"sim_no_socket",
                "node_id: \"n\" platform { sim { machine_path: \"/dev/shm/m\" } } " + kCpu,
                "platform.sim.kernel_socket", "is required"},
        BadCase{"bad_vectors", "node_id: \"n\" vectors { first: 16 last: 40 } " + kCpu + kFake,
                "vectors", "32 <= first"},
        BadCase{"negative_timeout",
                "node_id: \"n\" timeouts { attach { seconds: -1 } } " + kCpu + kFake,
                "timeouts.attach", "negative"},
        BadCase{"open_listen_without_secret",
                "node_id: \"n\" listen: \"0.0.0.0:7401\" " + kCpu + kFake,
                "peer_auth.secret_file", "non-loopback"},
        BadCase{"missing_secret",
                "node_id: \"n\" peer_auth { secret_file: \"/nonexistent/secret\" } " + kCpu + kFake,
                "peer_auth.secret_file", "cannot be read"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

TEST(ConfigTest, LinuxRecordsMayLiveInTheSimulatedMachinesMemory) {
  auto config = ParseConfig(
      "node_id: \"guest-a\" platform { linux { machine_memory: "
      "\"/sys/bus/pci/devices/0000:00:04.0/resource2\" } } " + kCpu,
      "guest.conf");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->platform().linux().machine_memory(),
            "/sys/bus/pci/devices/0000:00:04.0/resource2");
}

// Issue 16.7: peers are authenticated by default; a node with peers and no
// secret does not start.
TEST(ConfigTest, PeersWithoutASecretAreRefused) {
  auto config = ParseConfig("node_id: \"n\" peers { node_id: \"m\" address: \"unix:/tmp/m\" } "
                            "peer_listen: \"unix:/tmp/n\" " +
                                kCpu + kFake,
                            "node.conf");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("peer_auth.secret_file: is required when the node has peers"),
            std::string::npos)
      << config.status();
}

TEST(ConfigTest, OperatorGroupThatExistsIsAccepted) {
  const struct group* own = ::getgrgid(::getgid());
  ASSERT_NE(own, nullptr);
  auto config = ParseConfig(
      "node_id: \"n\" operator_group: \"" + std::string(own->gr_name) + "\" " + kCpu + kFake,
      "node.conf");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(LookUpGroup(own->gr_name).value_or(-1), ::getgid());
}

// Parses a minimal config whose peer_auth.secret_file holds `content`.
absl::StatusOr<v1::DaemonConfig> ParseWithSecret(const std::string& name,
                                                 const std::string& content,
                                                 mode_t mode = 0600) {
  std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::ofstream(path) << content;
  EXPECT_EQ(::chmod(path.c_str(), mode), 0);
  return ParseConfig("node_id: \"n\" peer_auth { secret_file: \"" + path + "\" } " + kCpu +
                         kFake,
                     "node.conf");
}

TEST(ConfigTest, ShortSecretIsRefused) {
  auto config = ParseWithSecret("short.secret", "tooshort");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("at least 16"), std::string::npos)
      << config.status();
}

// Issue 16.6: a secret of whitespace used to turn authentication off.
TEST(ConfigTest, WhitespaceSecretIsRefused) {
  auto config = ParseWithSecret("blank.secret", "                                \n\n\t  \n");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("at least 16"), std::string::npos)
      << config.status();
}

TEST(ConfigTest, SecretAccessibleToOthersIsRefused) {
  const std::string secret = "0123456789abcdef0123456789abcdef\n";
  for (mode_t mode : {0644, 0604, 0620}) {
    auto config = ParseWithSecret("open.secret", secret, mode);
    ASSERT_FALSE(config.ok()) << std::oct << mode;
    EXPECT_NE(config.status().message().find("chmod 600"), std::string::npos)
        << config.status();
  }
  for (mode_t mode : {0600, 0400, 0640}) {
    auto config = ParseWithSecret("open.secret", secret, mode);
    EXPECT_TRUE(config.ok()) << std::oct << mode << ": " << config.status();
  }
}

}  // namespace
}  // namespace daemon
}  // namespace nichandover
