// nicctl nics | nic show | msi show against real daemons on the fake
// platform (and msi show --dump offline), in text and --json.
#include "absl/strings/match.h"
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

constexpr char kNic[] = "0000:03:00.0";

class NicctlNicTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(cluster_.StartAll().ok()); }

  // The fake machine names the NIC's interface on node0.
  std::string Netdev() {
    CommandResult r = cluster_.Nicctl(0, {"nics", "--json"});
    v1::ListNicsResponse nics;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &nics).ok()) << r.out;
    return nics.nics_size() ? nics.nics(0).netdev() : "";
  }

  DaemonCluster cluster_{std::vector<testing::NodeSpec>{{"node0", {{0, 0}, {1, 1}}},
                                                        {"node1", {{0, 16}}}}};
};

TEST_F(NicctlNicTest, NicsTableShowsOwnerEpochInterruptsAndDestination) {
  CommandResult r = cluster_.Nicctl(0, {"nics"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << r.out;
  for (const char* column : {"BDF", "DRIVER", "NETDEV", "OWNER", "EPOCH", "INTERRUPTS",
                             "DESTINATION"}) {
    EXPECT_NE(lines[0].find(column), std::string::npos) << column;
  }
  // Columns line up with the header.
  EXPECT_EQ(lines[1].find("node0 (active)"), lines[0].find("OWNER")) << r.out;
  EXPECT_EQ(lines[1].find("MSI-X x3"), lines[0].find("INTERRUPTS")) << r.out;
  EXPECT_EQ(lines[1].find("node0 (APIC 0,1)"), lines[0].find("DESTINATION")) << r.out;
  EXPECT_EQ(lines[1].rfind(kNic, 0), 0u);
  EXPECT_NE(lines[1].find("8086:10d3"), std::string::npos);
  EXPECT_NE(lines[1].find("e1000e"), std::string::npos);
}

TEST_F(NicctlNicTest, NicsJsonHasDocumentedFields) {
  CommandResult r = cluster_.Nicctl(0, {"nics", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::ListNicsResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &parsed).ok()) << r.out;
  ASSERT_EQ(parsed.nics_size(), 1);
  EXPECT_EQ(parsed.nics(0).bdf(), kNic);
  EXPECT_EQ(parsed.nics(0).ownership().owner_node(), "node0");
  EXPECT_EQ(parsed.nics(0).ownership().epoch(), 1u);
  EXPECT_EQ(parsed.nics(0).interrupts().vectors_size(), 3);
  for (const char* key : {"\"nics\"", "\"bdf\"", "\"driver\"", "\"netdev\"", "\"ownership\"",
                          "\"owner_node\"", "\"epoch\"", "\"interrupts\"", "\"mode\"",
                          "\"INTERRUPT_MODE_MSIX\"", "\"destination_apic_id\"",
                          "\"destination_node\"", "\"recent_handovers\""}) {
    EXPECT_NE(r.out.find(key), std::string::npos) << key << " in " << r.out;
  }
}

TEST_F(NicctlNicTest, NicShowByFullShortBdfAndNetdev) {
  const std::string netdev = Netdev();
  ASSERT_FALSE(netdev.empty());
  for (const std::string& name : {std::string(kNic), std::string("03:00.0"), netdev}) {
    CommandResult r = cluster_.Nicctl(0, {"nic", "show", name});
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_NE(r.out.find("nic          0000:03:00.0\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("owner        node0 (active)\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("netdev       " + netdev + "\n"), std::string::npos) << r.out;
    // The MSI-X decoding, one line per vector with the node it reaches.
    EXPECT_NE(r.out.find("MSI-X: Enable+ Count=3"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Vector 2: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(node node0)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("recent handovers: none"), std::string::npos) << r.out;
  }
  CommandResult r = cluster_.Nicctl(0, {"nic", "show", "03:00.0", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::Nic nic;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &nic).ok()) << r.out;
  EXPECT_EQ(nic.bdf(), kNic);
  EXPECT_EQ(nic.netdev(), netdev);
}

TEST_F(NicctlNicTest, NicShowListsRecentHandovers) {
  CommandResult r = cluster_.Nicctl(0, {"handover", kNic, "--to", "node1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  v1::Handover h;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &h).ok()) << r.out;
  r = cluster_.Nicctl(1, {"nic", "show", kNic});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("owner        node1 (active)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("epoch        2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("destination  node1 (APIC 16)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("recent handovers (newest first):"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(h.handover_id()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("committed"), std::string::npos) << r.out;
}

TEST_F(NicctlNicTest, UnknownNicExits3WithAdvice) {
  for (const char* name : {"0000:99:00.0", "eth9"}) {
    for (const std::vector<std::string>& cmd :
         {std::vector<std::string>{"nic", "show", name}, {"msi", "show", name}}) {
      CommandResult r = cluster_.Nicctl(0, cmd);
      EXPECT_EQ(r.exit_code, 3) << name << ": " << r.err;
      EXPECT_NE(r.err.find("nicctl: NIC '"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("hint: "), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("'nicctl nics' lists them"), std::string::npos) << r.err;
      EXPECT_EQ(r.err.find("NOT_FOUND"), std::string::npos) << "no bare gRPC code: " << r.err;
    }
  }
  CommandResult r = cluster_.Nicctl(0, {"nic", "show", "00:zz.9"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

TEST_F(NicctlNicTest, MsiShowThroughTheDaemon) {
  CommandResult r = cluster_.Nicctl(0, {"msi", "show", "03:00.0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 5u) << r.out;
  EXPECT_EQ(lines[0].rfind(kNic, 0), 0u) << r.out;
  EXPECT_EQ(lines[1], "\tCapabilities: [70] MSI-X: Enable+ Count=3 Masked-") << r.out;
  int vectors = 0;
  for (const auto& line : lines) {
    if (absl::StrContains(line, "\tVector ") && absl::StrContains(line, "-> APIC ")) ++vectors;
  }
  EXPECT_EQ(vectors, 3) << r.out;

  r = cluster_.Nicctl(0, {"msi", "show", "03:00.0", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  google::protobuf::Struct doc;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &doc).ok()) << r.out;
  const auto& device = doc.fields().at("devices").list_value().values(0).struct_value();
  EXPECT_EQ(device.fields().at("bdf").string_value(), kNic);
  v1::InterruptLayout layout;
  std::string layout_json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(device.fields().at("interrupts"),
                                                          &layout_json)
                  .ok());
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(layout_json, &layout).ok())
      << layout_json;
  EXPECT_EQ(layout.mode(), v1::INTERRUPT_MODE_MSIX);
  ASSERT_EQ(layout.vectors_size(), 3);
  EXPECT_EQ(layout.vectors(1).route().destination_apic_id(), 1u);
  EXPECT_EQ(layout.vectors(1).route().destination_node(), "node0");
}

// Offline: no daemon involved (--server points nowhere).
class NicctlDumpTest : public ::testing::Test {
 protected:
  CommandResult MsiShowDump(std::vector<std::string> args) {
    std::vector<std::string> argv = {RunfilePath("cli/nicctl"), "--server",
                                     "unix:" + dir_ + "/nobody.sock", "msi", "show"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, dir_);
  }
  std::string Dump(const std::string& name) { return RunfilePath("tests/testdata/nicctl/" + name); }
  std::string dir_ = testing::MakeTempDir("nicctl-dump");
};

TEST_F(NicctlDumpTest, DecodesMsiFromARealDump) {
  // RTL8111 with MSI enabled, one vector to APIC 5, vector 0x21 (lspci -vvv:
  // "MSI: Enable+ Count=1/1 Maskable- 64bit+ Address: 00000000fee05000 Data: 4021").
  CommandResult r = MsiShowDump({"--dump", Dump("realtek-rtl8111-8168-r8169_07-00.0.txt")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("0000:07:00.0 Ethernet controller: Realtek"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\tCapabilities: [50] MSI: Enable+ Count=1/1 Maskable- 64bit+"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\t\tAddress: 00000000fee05000  Data: 4021"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("APIC 5 vector 0x21 fixed edge physical"), std::string::npos) << r.out;
  // Its MSI-X capability, disabled, shows too (lspci: "MSI-X: Enable- Count=2
  // Masked-", "Vector table: BAR=4 offset=00000000", "PBA: BAR=4 offset=00000800").
  EXPECT_NE(r.out.find("\tCapabilities: [b0] MSI-X: Enable- Count=2 Masked-"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\t\tVector table: BAR=4 offset=00000000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\t\tPBA: BAR=4 offset=00000800"), std::string::npos) << r.out;

  r = MsiShowDump({"--json", "--dump", Dump("realtek-rtl8111-8168-r8169_07-00.0.txt"), "07:00.0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  google::protobuf::Struct doc;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &doc).ok()) << r.out;
  const auto& devices = doc.fields().at("devices").list_value();
  ASSERT_EQ(devices.values_size(), 1);
  const auto& interrupts = devices.values(0).struct_value().fields().at("interrupts").struct_value();
  EXPECT_EQ(interrupts.fields().at("mode").string_value(), "INTERRUPT_MODE_MSI");
  EXPECT_EQ(interrupts.fields().at("capability_offset").number_value(), 0x50);
  const auto& route = interrupts.fields().at("vectors").list_value().values(0).struct_value()
                          .fields().at("route").struct_value();
  EXPECT_EQ(route.fields().at("destination_apic_id").number_value(), 5);
  EXPECT_EQ(route.fields().at("vector").number_value(), 0x21);
  const auto& other = interrupts.fields().at("other_capability").struct_value();
  EXPECT_EQ(other.fields().at("mode").string_value(), "INTERRUPT_MODE_MSIX");
  EXPECT_EQ(other.fields().at("capability_offset").number_value(), 0xb0);
  EXPECT_EQ(other.fields().at("pba_offset").number_value(), 0x800);
}

TEST_F(NicctlDumpTest, MsixTableLivesInBarSoOnlyTheCapabilityShows) {
  CommandResult r = MsiShowDump({"--dump", Dump("intel-i210-igb_8086-1533.txt"), "01:00.0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("MSI-X: Enable+ Count=5 Masked-"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Vector table: BAR=3 offset=00000000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PBA: BAR=3 offset=00002000"), std::string::npos) << r.out;
}

TEST_F(NicctlDumpTest, BadFilesAndAddresses) {
  CommandResult r = MsiShowDump({"--dump", dir_ + "/missing.txt"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("hint: "), std::string::npos) << r.err;
  r = MsiShowDump({"--dump", Dump("intel-i210-igb_8086-1533.txt"), "09:00.0"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("no device 0000:09:00.0"), std::string::npos) << r.err;
  r = MsiShowDump({"--dump", Dump("intel-i210-igb_8086-1533.txt"), "nonsense"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  testing::WriteFile(dir_ + "/broken.txt", "01:00.0 Ethernet\n00: 86 zz\n");
  r = MsiShowDump({"--dump", dir_ + "/broken.txt"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
  r = MsiShowDump({});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

}  // namespace
}  // namespace nichandover
