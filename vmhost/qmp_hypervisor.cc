#include "qmp_hypervisor.h"

#include "absl/strings/str_cat.h"

namespace nichandover {
namespace vmhost {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr absl::Duration kCommandTimeout = absl::Seconds(5);

double Number(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? 0 : it->second.number_value();
}

// Depth-first through query-pci's buses and bridges.
std::optional<PciIdentity> Search(const ListValue& devices, const std::string& qdev_id) {
  for (const Value& d : devices.values()) {
    const Struct& dev = d.struct_value();
    auto id = dev.fields().find("qdev_id");
    if (id != dev.fields().end() && id->second.string_value() == qdev_id) {
      PciIdentity found;
      auto ids = dev.fields().find("id");
      if (ids != dev.fields().end()) {
        found.vendor_id = static_cast<uint32_t>(Number(ids->second.struct_value(), "vendor"));
        found.device_id = static_cast<uint32_t>(Number(ids->second.struct_value(), "device"));
      }
      auto cls = dev.fields().find("class_info");
      if (cls != dev.fields().end()) {
        // QEMU gives base class << 8 | subclass; the programming interface
        // of a network controller is 0.
        found.class_code = static_cast<uint32_t>(Number(cls->second.struct_value(), "class")) << 8;
      }
      return found;
    }
    auto bridge = dev.fields().find("pci_bridge");
    if (bridge == dev.fields().end()) continue;
    auto below = bridge->second.struct_value().fields().find("devices");
    if (below == bridge->second.struct_value().fields().end()) continue;
    if (auto found = Search(below->second.list_value(), qdev_id)) return found;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<QmpHypervisor::Session*> QmpHypervisor::SessionOf(const std::string& vm) {
  if (!sockets_.count(vm)) return absl::NotFoundError(absl::StrCat("unknown VM '", vm, "'"));
  absl::MutexLock lock(&sessions_mu_);
  auto& session = sessions_[vm];
  if (!session) session = std::make_unique<Session>();
  return session.get();
}

absl::StatusOr<QmpConnection*> QmpHypervisor::Connected(const std::string& vm, Session& session) {
  if (!session.qmp) {
    auto qmp = QmpConnection::Connect(sockets_.at(vm), kCommandTimeout);
    if (!qmp.ok()) {
      return absl::UnavailableError(absl::StrCat("VM ", vm, ": ", qmp.status().message()));
    }
    session.qmp = *std::move(qmp);
  }
  return session.qmp.get();
}

absl::StatusOr<std::optional<PciIdentity>> QmpHypervisor::FindNic(const std::string& vm,
                                                                  const NicConfig& nic) {
  auto session = SessionOf(vm);
  if (!session.ok()) return session.status();
  absl::MutexLock lock(&(*session)->mu);
  auto qmp = Connected(vm, **session);
  if (!qmp.ok()) return qmp.status();
  auto buses = (*qmp)->Execute("query-pci", Struct(), kCommandTimeout);
  if (!buses.ok()) {
    (*session)->qmp.reset();
    return absl::UnavailableError(absl::StrCat("VM ", vm, ": ", buses.status().message()));
  }
  for (const Value& bus : buses->list_value().values()) {
    auto devices = bus.struct_value().fields().find("devices");
    if (devices == bus.struct_value().fields().end()) continue;
    if (auto found = Search(devices->second.list_value(), nic.device_id())) return found;
  }
  return std::optional<PciIdentity>();
}

absl::Status QmpHypervisor::Unplug(const std::string& vm, const NicConfig& nic,
                                   absl::Duration timeout) {
  auto session = SessionOf(vm);
  if (!session.ok()) return session.status();
  absl::MutexLock lock(&(*session)->mu);
  auto qmp = Connected(vm, **session);
  if (!qmp.ok()) return qmp.status();
  (*qmp)->DropEvents();
  Struct args;
  (*args.mutable_fields())["id"].set_string_value(nic.device_id());
  auto del = (*qmp)->Execute("device_del", args, kCommandTimeout);
  // NOT_FOUND: already gone (an earlier attempt got this far).
  if (!del.ok() && del.status().code() != absl::StatusCode::kNotFound) {
    if (del.status().code() == absl::StatusCode::kUnavailable) (*session)->qmp.reset();
    return absl::Status(del.status().code(), absl::StrCat("VM ", vm, ": ", del.status().message()));
  }
  if (del.ok()) {
    // The guest acknowledges the ACPI eject; QEMU then removes the device.
    auto deleted = (*qmp)->WaitEvent(
        "DEVICE_DELETED",
        [&](const Struct& data) {
          auto it = data.fields().find("device");
          return it != data.fields().end() && it->second.string_value() == nic.device_id();
        },
        timeout);
    if (!deleted.ok()) {
      return absl::Status(deleted.status().code(),
                          absl::StrCat("VM ", vm, ": device_del ", nic.device_id(), ": ",
                                       deleted.status().message(),
                                       " (did the guest refuse the unplug?)"));
    }
  }
  Struct netdev;
  (*netdev.mutable_fields())["id"].set_string_value(nic.netdev_id());
  auto net = (*qmp)->Execute("netdev_del", netdev, kCommandTimeout);
  if (!net.ok() && net.status().code() != absl::StatusCode::kNotFound &&
      net.status().message().find("not found") == std::string::npos) {
    return absl::Status(net.status().code(), absl::StrCat("VM ", vm, ": ", net.status().message()));
  }
  return absl::OkStatus();
}

absl::Status QmpHypervisor::Plug(const std::string& vm, const NicConfig& nic) {
  auto session = SessionOf(vm);
  if (!session.ok()) return session.status();
  absl::MutexLock lock(&(*session)->mu);
  auto qmp = Connected(vm, **session);
  if (!qmp.ok()) return qmp.status();
  Struct netdev;
  auto& nf = *netdev.mutable_fields();
  nf["type"].set_string_value("stream");
  nf["id"].set_string_value(nic.netdev_id());
  nf["server"].set_bool_value(false);
  auto& addr = *nf["addr"].mutable_struct_value()->mutable_fields();
  addr["type"].set_string_value("unix");
  addr["path"].set_string_value(nic.stream_socket());
  auto net = (*qmp)->Execute("netdev_add", netdev, kCommandTimeout);
  // A leftover netdev of an interrupted plug is reused.
  if (!net.ok() && net.status().message().find("Duplicate") == std::string::npos) {
    if (net.status().code() == absl::StatusCode::kUnavailable) (*session)->qmp.reset();
    return absl::Status(net.status().code(), absl::StrCat("VM ", vm, ": ", net.status().message()));
  }
  Struct device;
  auto& df = *device.mutable_fields();
  df["driver"].set_string_value(nic.model());
  df["id"].set_string_value(nic.device_id());
  df["netdev"].set_string_value(nic.netdev_id());
  df["bus"].set_string_value(nic.bus());
  df["mac"].set_string_value(nic.mac());
  df["romfile"].set_string_value("");
  auto dev = (*qmp)->Execute("device_add", device, kCommandTimeout);
  if (!dev.ok()) {
    if (dev.status().code() == absl::StatusCode::kUnavailable) (*session)->qmp.reset();
    return absl::Status(dev.status().code(), absl::StrCat("VM ", vm, ": ", dev.status().message()));
  }
  return absl::OkStatus();
}

}  // namespace vmhost
}  // namespace nichandover
