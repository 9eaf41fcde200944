// QmpHypervisor against a scripted QMP server on a unix socket, answering as
// QEMU 7.2 does (greeting, capabilities, query-pci through a root port,
// device_del answered at once and DEVICE_DELETED later).
#include "qmp_hypervisor.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace vmhost {
namespace {

// One VM's QMP monitor: whether nic0 is plugged, and every command received.
class FakeQemu {
 public:
  explicit FakeQemu(bool nic_plugged) : plugged_(nic_plugged) {
    char tmpl[] = "/tmp/nhqmp.XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/vm.qmp";
    listener_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path_.c_str());
    EXPECT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(listener_, 4), 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeQemu() {
    shutdown(listener_, SHUT_RDWR);
    close(listener_);
    thread_.join();
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }
  std::vector<std::string> commands() {
    absl::MutexLock lock(&mu_);
    return commands_;
  }
  // device_del is acknowledged but the guest never ejects.
  void GuestIgnoresUnplug() {
    absl::MutexLock lock(&mu_);
    ignore_unplug_ = true;
  }

 private:
  void Serve() {
    int fd = accept(listener_, nullptr, nullptr);
    if (fd < 0) return;
    Write(fd, R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}})");
    std::string buffer;
    char chunk[4096];
    for (;;) {
      size_t eol;
      while ((eol = buffer.find('\n')) != std::string::npos) {
        std::string line = buffer.substr(0, eol);
        buffer.erase(0, eol + 1);
        Answer(fd, line);
      }
      ssize_t n = read(fd, chunk, sizeof(chunk));
      if (n <= 0) break;
      buffer.append(chunk, static_cast<size_t>(n));
    }
    close(fd);
  }
  void Write(int fd, const std::string& json) {
    std::string line = json + "\r\n";
    ASSERT_EQ(write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  }
  void Answer(int fd, const std::string& line) {
    absl::MutexLock lock(&mu_);
    commands_.push_back(line);
    if (absl::StrContains(line, "query-pci")) {
      std::string nic = plugged_ ? R"({"bus": 1, "slot": 0, "function": 0, "class_info": {"class": 512, "desc": "Ethernet controller"}, "id": {"device": 4307, "vendor": 32902}, "qdev_id": "nic0", "regions": []})" : "";
      Write(fd, R"({"return": [{"bus": 0, "devices": [{"bus": 0, "slot": 0, "function": 0, "class_info": {"class": 1536}, "id": {"device": 10688, "vendor": 32902}, "qdev_id": "", "regions": []}, {"bus": 0, "slot": 1, "function": 0, "class_info": {"class": 1540}, "id": {"device": 12, "vendor": 6966}, "qdev_id": "rp1", "regions": [], "pci_bridge": {"bus": {"number": 1, "secondary": 1, "subordinate": 1}, "devices": [)" + nic + "]}}]}]}");
    } else if (absl::StrContains(line, "device_del")) {
      Write(fd, R"({"return": {}})");
      if (ignore_unplug_) return;
      // QEMU reports the device's children first, without a device id.
      Write(fd, R"({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "DEVICE_DELETED", "data": {"path": "/machine/peripheral/nic0/virtio-backend"}})");
      Write(fd, R"({"timestamp": {"seconds": 1, "microseconds": 3}, "event": "DEVICE_DELETED", "data": {"device": "nic0", "path": "/machine/peripheral/nic0"}})");
      plugged_ = false;
    } else if (absl::StrContains(line, "device_add")) {
      if (absl::StrContains(line, "\"bus\":\"nobus\"")) {
        Write(fd, R"({"error": {"class": "GenericError", "desc": "Bus 'nobus' not found"}})");
        return;
      }
      plugged_ = true;
      Write(fd, R"({"return": {}})");
    } else {
      Write(fd, R"({"return": {}})");
    }
  }

  std::string dir_, path_;
  int listener_;
  std::thread thread_;
  absl::Mutex mu_;
  bool plugged_ ABSL_GUARDED_BY(mu_);
  bool ignore_unplug_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> commands_ ABSL_GUARDED_BY(mu_);
};

// JSON objects are equal whatever the order of their members.
bool SameJson(const std::string& a, const std::string& b) {
  google::protobuf::Struct x, y;
  return google::protobuf::util::JsonStringToMessage(a, &x).ok() &&
         google::protobuf::util::JsonStringToMessage(b, &y).ok() &&
         google::protobuf::util::MessageDifferencer::Equals(x, y);
}

NicConfig Nic() {
  NicConfig nic;
  nic.set_bdf("0000:01:00.0");
  nic.set_device_id("nic0");
  nic.set_netdev_id("n0");
  nic.set_model("e1000e");
  nic.set_driver("e1000e");
  nic.set_mac("52:54:00:12:34:56");
  nic.set_bus("rp1");
  nic.set_stream_socket("/tmp/traffic.sock");
  return nic;
}

TEST(QmpHypervisorTest, FindsTheNicBehindItsRootPort) {
  FakeQemu a(true), b(false);
  QmpHypervisor hv({{"vm-a", a.path()}, {"vm-b", b.path()}});
  auto in_a = hv.FindNic("vm-a", Nic());
  ASSERT_TRUE(in_a.ok()) << in_a.status();
  ASSERT_TRUE(in_a->has_value());
  EXPECT_EQ((*in_a)->vendor_id, 0x8086u);
  EXPECT_EQ((*in_a)->device_id, 0x10d3u);
  EXPECT_EQ((*in_a)->class_code, 0x020000u);
  auto in_b = hv.FindNic("vm-b", Nic());
  ASSERT_TRUE(in_b.ok()) << in_b.status();
  EXPECT_FALSE(in_b->has_value());
  EXPECT_TRUE(absl::StrContains(a.commands().at(0), "qmp_capabilities"));
  EXPECT_EQ(hv.FindNic("vm-c", Nic()).status().code(), absl::StatusCode::kNotFound);
}

TEST(QmpHypervisorTest, UnplugWaitsForTheDeviceThenDropsItsNetdev) {
  FakeQemu a(true);
  QmpHypervisor hv({{"vm-a", a.path()}});
  ASSERT_TRUE(hv.Unplug("vm-a", Nic(), absl::Seconds(5)).ok());
  std::vector<std::string> sent = a.commands();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_TRUE(SameJson(sent[1], R"({"execute":"device_del","arguments":{"id":"nic0"}})"));
  EXPECT_TRUE(SameJson(sent[2], R"({"execute":"netdev_del","arguments":{"id":"n0"}})"));
  auto after = hv.FindNic("vm-a", Nic());
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->has_value());
}

TEST(QmpHypervisorTest, UnplugTimesOutWhenTheGuestKeepsTheDevice) {
  FakeQemu a(true);
  a.GuestIgnoresUnplug();
  QmpHypervisor hv({{"vm-a", a.path()}});
  absl::Status s = hv.Unplug("vm-a", Nic(), absl::Milliseconds(300));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  // The netdev stays: the device still uses it.
  for (const auto& c : a.commands()) EXPECT_FALSE(absl::StrContains(c, "netdev_del"));
}

TEST(QmpHypervisorTest, PlugAddsTheSameBackendThenTheSameDevice) {
  FakeQemu b(false);
  QmpHypervisor hv({{"vm-b", b.path()}});
  ASSERT_TRUE(hv.Plug("vm-b", Nic()).ok());
  std::vector<std::string> sent = b.commands();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_TRUE(SameJson(
      sent[1],
      R"({"execute":"netdev_add","arguments":{"addr":{"path":"/tmp/traffic.sock","type":"unix"},"id":"n0","server":false,"type":"stream"}})"))
      << sent[1];
  EXPECT_TRUE(SameJson(
      sent[2],
      R"({"execute":"device_add","arguments":{"bus":"rp1","driver":"e1000e","id":"nic0","mac":"52:54:00:12:34:56","netdev":"n0","romfile":""}})"))
      << sent[2];
  auto found = hv.FindNic("vm-b", Nic());
  ASSERT_TRUE(found.ok());
  EXPECT_TRUE(found->has_value());
}

TEST(QmpHypervisorTest, QemuErrorsCarryItsDescription) {
  FakeQemu b(false);
  QmpHypervisor hv({{"vm-b", b.path()}});
  NicConfig nic = Nic();
  nic.set_bus("nobus");
  absl::Status s = hv.Plug("vm-b", nic);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(s.message(), "Bus 'nobus' not found")) << s;
}

TEST(QmpHypervisorTest, AMissingMonitorIsUnavailable) {
  QmpHypervisor hv(std::map<std::string, std::string>{{"vm-a", "/tmp/nonexistent-nh-qmp.sock"}});
  EXPECT_EQ(hv.FindNic("vm-a", Nic()).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace vmhost
}  // namespace nichandover
