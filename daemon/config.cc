#include "daemon/config.h"

#include <fstream>
#include <sstream>
#include <grp.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "common/address.h"
#include "common/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/time_util.h"

namespace nichandover {
namespace daemon {
namespace {

using google::protobuf::util::TimeUtil;

constexpr uint32_t kDefaultFirstVector = 0x40;
constexpr uint32_t kDefaultLastVector = 0xdf;

// Collects the parser's complaints as "file:line:col: message".
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit ErrorCollector(absl::string_view source) : source_(source) {}
  void AddError(int line, int column, const std::string& message) override {
    errors_.push_back(absl::StrCat(source_, ":", line + 1, ":", column + 1, ": ", message));
  }
  void AddWarning(int line, int column, const std::string& message) override {
    AddError(line, column, message);
  }
  std::string Joined() const { return absl::StrJoin(errors_, "\n"); }

 private:
  std::string source_;
  std::vector<std::string> errors_;
};

bool ValidNodeId(absl::string_view id) {
  if (id.empty() || id.size() > 63) return false;
  if (!(id[0] >= 'a' && id[0] <= 'z')) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

bool IsLoopbackOrUnix(const Address& addr) {
  if (addr.kind == Address::Kind::kUnix) return true;
  return addr.host == "localhost" || addr.host == "::1" || addr.host.rfind("127.", 0) == 0;
}

class Validator {
 public:
  Validator(absl::string_view source, v1::DaemonConfig* config)
      : source_(source), config_(config) {}

  absl::Status Run() {
    NH_RETURN_IF_ERROR(CheckNodeId());
    NH_RETURN_IF_ERROR(CheckListen());
    NH_RETURN_IF_ERROR(CheckPeers());
    NH_RETURN_IF_ERROR(CheckOperatorGroup());
    NH_RETURN_IF_ERROR(CheckCpus());
    NH_RETURN_IF_ERROR(CheckPlatform());
    NH_RETURN_IF_ERROR(CheckVectors());
    NH_RETURN_IF_ERROR(CheckTimeouts());
    NH_RETURN_IF_ERROR(CheckPeerAuth());
    NH_RETURN_IF_ERROR(CheckMetrics());
    NH_RETURN_IF_ERROR(CheckHistory());
    FillKernelCommit();
    if (config_->state_dir().empty()) {
      config_->set_state_dir(absl::StrCat("/var/lib/nichandover/", config_->node_id()));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Error(absl::string_view field, absl::string_view problem) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", field, ": ", problem));
  }

  absl::Status CheckNodeId() {
    if (config_->node_id().empty()) return Error("node_id", "is required");
    if (!ValidNodeId(config_->node_id())) {
      return Error("node_id", absl::StrCat("'", config_->node_id(),
                                           "' must be 1-63 characters of [a-z0-9-] starting "
                                           "with a letter"));
    }
    return absl::OkStatus();
  }

  absl::Status CheckListen() {
    if (config_->listen().empty()) config_->add_listen(absl::StrCat("unix:", kDefaultSocketPath));
    // Operators and peers never share an address: the operator's listener
    // does not serve PeerService at all.
    absl::flat_hash_map<std::string, std::string> seen;  // URI → field
    const std::pair<const char*, const google::protobuf::RepeatedPtrField<std::string>*>
        lists[] = {{"listen", &config_->listen()}, {"peer_listen", &config_->peer_listen()}};
    for (const auto& [name, list] : lists) {
      for (int i = 0; i < list->size(); ++i) {
        const std::string field = absl::StrCat(name, "[", i, "]");
        auto addr = ParseAddress(list->Get(i));
        if (!addr.ok()) return Error(field, addr.status().message());
        auto [it, inserted] = seen.emplace(addr->GrpcUri(), field);
        if (!inserted && absl::StartsWith(it->second, absl::StrCat(name, "["))) {
          return Error(field, absl::StrCat("'", list->Get(i), "' is listed twice"));
        }
        if (!inserted) {
          return Error(field, absl::StrCat("'", list->Get(i), "' is also ", it->second,
                                           ": operators and peers need separate addresses"));
        }
        (name == std::string("listen") ? listen_ : peer_listen_).push_back(*addr);
      }
    }
    return absl::OkStatus();
  }

  absl::Status CheckOperatorGroup() {
    const std::string& group = config_->operator_group();
    if (group.empty()) return absl::OkStatus();
    if (absl::StatusOr<gid_t> gid = LookUpGroup(group); !gid.ok()) {
      return Error("operator_group", gid.status().message());
    }
    return absl::OkStatus();
  }

  absl::Status CheckPeers() {
    absl::flat_hash_set<std::string> ids;
    for (int i = 0; i < config_->peers_size(); ++i) {
      const auto& peer = config_->peers(i);
      const std::string field = absl::StrCat("peers[", i, "]");
      if (peer.node_id().empty()) return Error(field + ".node_id", "is required");
      if (!ValidNodeId(peer.node_id())) {
        return Error(field + ".node_id",
                     absl::StrCat("'", peer.node_id(), "' is not a valid node id"));
      }
      if (peer.node_id() == config_->node_id()) {
        return Error(field + ".node_id", "is this node's own id; list only the other nodes");
      }
      if (!ids.insert(peer.node_id()).second) {
        return Error(field + ".node_id", absl::StrCat("'", peer.node_id(), "' is listed twice"));
      }
      if (peer.address().empty()) return Error(field + ".address", "is required");
      auto addr = ParseAddress(peer.address());
      if (!addr.ok()) return Error(field + ".address", addr.status().message());
      peers_.push_back(*addr);
    }
    if (config_->peers_size() > 0 && config_->peer_listen().empty()) {
      return Error("peer_listen",
                   "is required when the node has peers: the address(es) where the other "
                   "nodes' daemons call PeerService (their peers[].address), separate from "
                   "listen, which serves operators");
    }
    return absl::OkStatus();
  }

  absl::Status CheckCpus() {
    if (config_->cpus().empty()) {
      return Error("cpus", "at least one CPU (cpu and apic_id) is required");
    }
    absl::flat_hash_set<uint32_t> cpus, apics;
    for (int i = 0; i < config_->cpus_size(); ++i) {
      const auto& cpu = config_->cpus(i);
      const std::string field = absl::StrCat("cpus[", i, "]");
      if (!cpus.insert(cpu.cpu()).second) {
        return Error(field + ".cpu", absl::StrCat("CPU ", cpu.cpu(), " is listed twice"));
      }
      // Compatibility-format MSI addresses carry an 8-bit destination; larger
      // x2APIC IDs need interrupt remapping, which nichandover does not edit.
      if (cpu.apic_id() > 0xff) {
        return Error(field + ".apic_id",
                     absl::StrCat(cpu.apic_id(),
                                  " does not fit the 8-bit MSI destination field (0..255)"));
      }
      if (!apics.insert(cpu.apic_id()).second) {
        return Error(field + ".apic_id",
                     absl::StrCat("APIC ID ", cpu.apic_id(), " is listed twice"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status CheckPlatform() {
    if (!config_->has_platform()) {
      return Error("platform", "is required: one of fake, sim, linux, vm");
    }
    const auto& p = config_->platform();
    switch (p.backend_case()) {
      case v1::PlatformConfig::kFake:
        if (p.fake().state_path().empty()) {
          return Error("platform.fake.state_path", "is required");
        }
        break;
      case v1::PlatformConfig::kSim:
        if (p.sim().machine_path().empty()) {
          return Error("platform.sim.machine_path", "is required");
        }
        if (p.sim().kernel_socket().empty()) {
          return Error("platform.sim.kernel_socket", "is required");
        }
        break;
      case v1::PlatformConfig::kLinux:
        if (p.linux().arbiter_file().empty() && p.linux().machine_memory().empty()) {
          return Error("platform.linux.arbiter_file",
                       "is required: the shared file that holds the ownership records (or "
                       "platform.linux.machine_memory: the simulated machine's memory)");
        }
        if (!p.linux().arbiter_file().empty() && !p.linux().machine_memory().empty()) {
          return Error("platform.linux.machine_memory",
                       "cannot be given with platform.linux.arbiter_file: the ownership records "
                       "live in one place");
        }
        break;
      case v1::PlatformConfig::kVm:
        if (p.vm().agent_address().empty()) {
          return Error("platform.vm.agent_address", "is required");
        }
        if (auto addr = ParseAddress(p.vm().agent_address()); !addr.ok()) {
          return Error("platform.vm.agent_address", addr.status().message());
        }
        break;
      case v1::PlatformConfig::BACKEND_NOT_SET:
        return Error("platform", "names no backend: set one of fake, sim, linux, vm");
    }
    return absl::OkStatus();
  }

  absl::Status CheckVectors() {
    if (!config_->has_vectors()) {
      config_->mutable_vectors()->set_first(kDefaultFirstVector);
      config_->mutable_vectors()->set_last(kDefaultLastVector);
    }
    const auto& v = config_->vectors();
    // Vectors below 0x20 are CPU exceptions; 0xff is at most the top.
    if (v.first() < 0x20 || v.last() > 0xff || v.first() > v.last()) {
      return Error("vectors", absl::StrCat("range ", v.first(), "..", v.last(),
                                           " must satisfy 32 <= first <= last <= 255"));
    }
    return absl::OkStatus();
  }

  absl::Status CheckTimeouts() {
    const auto& t = config_->timeouts();
    const std::pair<const char*, const google::protobuf::Duration*> all[] = {
        {"timeouts.peer_call", &t.peer_call()}, {"timeouts.quiesce", &t.quiesce()},
        {"timeouts.reroute", &t.reroute()},     {"timeouts.attach", &t.attach()},
        {"timeouts.handover", &t.handover()},
    };
    for (const auto& [field, d] : all) {
      if (d->seconds() < 0 || d->nanos() < 0) return Error(field, "must not be negative");
    }
    return absl::OkStatus();
  }

  absl::Status CheckPeerAuth() {
    const std::string& file = config_->peer_auth().secret_file();
    if (file.empty() && config_->peers_size() > 0) {
      // Peers are always authenticated: the node-id header alone would let
      // any local client speak for a configured node.
      return Error("peer_auth.secret_file",
                   "is required when the node has peers (every PeerService call carries the "
                   "cluster secret); create one: head -c 32 /dev/urandom | base64 > FILE; "
                   "chmod 600 FILE");
    }
    if (file.empty()) {
      for (size_t i = 0; i < listen_.size(); ++i) {
        if (!IsLoopbackOrUnix(listen_[i])) {
          return Error("peer_auth.secret_file",
                       absl::StrCat("is required when listening on a non-loopback address (",
                                    config_->listen(i), ")"));
        }
      }
      return absl::OkStatus();
    }
    struct stat st;
    std::ifstream in(file);
    if (::stat(file.c_str(), &st) != 0 || !in) {
      return Error("peer_auth.secret_file", absl::StrCat("'", file, "' cannot be read"));
    }
    // The secret as PeerAuth uses it: without surrounding whitespace (a file
    // of blanks is no secret at all).
    std::stringstream buffer;
    buffer << in.rdbuf();
    const size_t size = PeerSecretFromFileContent(buffer.str()).size();
    if (size < kMinPeerSecretBytes) {
      return Error("peer_auth.secret_file",
                   absl::StrCat("'", file, "' holds ", size,
                                " bytes besides whitespace; a secret needs at least ",
                                kMinPeerSecretBytes));
    }
    // Anyone who can read it can act as any peer: owner (and group) only.
    if ((st.st_mode & (S_IRWXO | S_IWGRP)) != 0) {
      return Error("peer_auth.secret_file",
                   absl::StrCat("'", file, "' is accessible to other users (mode ",
                                absl::StrFormat("%04o", st.st_mode & 07777),
                                "); run chmod 600 on it"));
    }
    return absl::OkStatus();
  }

  void FillKernelCommit() {
    // Unset means allowed: the file says kernel_commit: false to turn it off.
    if (!config_->has_kernel_commit()) config_->set_kernel_commit(true);
  }

  absl::Status CheckHistory() {
    if (config_->history_per_nic() == 0) config_->set_history_per_nic(kDefaultHistoryPerNic);
    if (config_->history_per_nic() > kMaxHistoryPerNic) {
      return Error("history_per_nic", absl::StrCat(config_->history_per_nic(), " is more than ",
                                                   kMaxHistoryPerNic));
    }
    return absl::OkStatus();
  }

  absl::Status CheckMetrics() {
    const std::string& listen = config_->metrics_listen();
    if (listen.empty()) {
      if (config_->metrics_allow_remote()) {
        return Error("metrics_allow_remote", "is set but metrics_listen is empty");
      }
      return absl::OkStatus();
    }
    auto addr = ParseAddress(listen);
    if (!addr.ok()) return Error("metrics_listen", addr.status().message());
    if (addr->kind != Address::Kind::kTcp) {
      return Error("metrics_listen",
                   absl::StrCat("'", listen, "' must be host:port (Prometheus scrapes over TCP)"));
    }
    if (!IsLoopbackOrUnix(*addr) && !config_->metrics_allow_remote()) {
      return Error("metrics_listen",
                   absl::StrCat("'", listen, "' is not a loopback address; set "
                                "metrics_allow_remote: true to serve metrics to other hosts"));
    }
    const std::pair<const char*, const std::vector<Address>*> grpc_lists[] = {
        {"listen", &listen_}, {"peer_listen", &peer_listen_}};
    for (const auto& [name, list] : grpc_lists) {
      for (size_t i = 0; i < list->size(); ++i) {
        const Address& grpc = (*list)[i];
        if (grpc.kind == Address::Kind::kTcp && grpc.GrpcUri() == addr->GrpcUri() &&
            addr->port != 0) {
          return Error("metrics_listen",
                       absl::StrCat("'", listen, "' is also ", name, "[", i, "]"));
        }
      }
    }
    return absl::OkStatus();
  }

  std::string source_;
  v1::DaemonConfig* config_;
  std::vector<Address> listen_;
  std::vector<Address> peer_listen_;
  std::vector<Address> peers_;
};

absl::Duration OrDefault(const google::protobuf::Duration& d, absl::Duration fallback) {
  if (d.seconds() == 0 && d.nanos() == 0) return fallback;
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace

absl::StatusOr<v1::DaemonConfig> ParseConfig(absl::string_view text,
                                             absl::string_view source_name) {
  v1::DaemonConfig config;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors(source_name);
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &config)) {
    return absl::InvalidArgumentError(errors.Joined());
  }
  Validator validator(source_name, &config);
  if (absl::Status s = validator.Run(); !s.ok()) return s;
  return config;
}

absl::StatusOr<v1::DaemonConfig> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open config file: ",
                                            std::strerror(errno)));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseConfig(buffer.str(), path);
}

Timeouts EffectiveTimeouts(const v1::DaemonConfig& config) {
  const auto& t = config.timeouts();
  return Timeouts{
      OrDefault(t.peer_call(), absl::Seconds(2)), OrDefault(t.quiesce(), absl::Seconds(2)),
      OrDefault(t.reroute(), absl::Seconds(1)),   OrDefault(t.attach(), absl::Seconds(2)),
      OrDefault(t.handover(), absl::Seconds(30)),
  };
}

std::string PeerSecretFromFileContent(absl::string_view content) {
  // The newline of `echo secret > file` (and any other surrounding blank)
  // is not part of the secret.
  return std::string(absl::StripAsciiWhitespace(content));
}

absl::StatusOr<gid_t> LookUpGroup(const std::string& name) {
  std::vector<char> buffer(16384);
  struct group entry;
  struct group* found = nullptr;
  int rc = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot look up group '", name, "': ", std::strerror(rc)));
  }
  if (found == nullptr) {
    return absl::NotFoundError(absl::StrCat("group '", name, "' does not exist"));
  }
  return found->gr_gid;
}

std::string PlatformName(const v1::DaemonConfig& config) {
  switch (config.platform().backend_case()) {
    case v1::PlatformConfig::kFake:
      return "fake";
    case v1::PlatformConfig::kSim:
      return "sim";
    case v1::PlatformConfig::kLinux:
      return "linux";
    case v1::PlatformConfig::kVm:
      return "vm";
    case v1::PlatformConfig::BACKEND_NOT_SET:
      break;
  }
  return "none";
}

}  // namespace daemon
}  // namespace nichandover
