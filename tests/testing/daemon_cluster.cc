#include "tests/testing/daemon_cluster.h"

#include <signal.h>
#include <sys/stat.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace nichandover {
namespace testing {

bool IsServing(const std::string& address, const std::string& service, absl::Duration timeout) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  return stub->Check(&ctx, req, &resp).ok() &&
         resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

DaemonCluster::DaemonCluster(ClusterOptions options)
    : nodes_(std::move(options.nodes)), dir_(MakeTempDir("nhc")) {
  std::string platform_block = options.platform_block;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    ports_.push_back(PickFreePort());
    processes_.push_back(nullptr);
  }
  platform_block = absl::StrReplaceAll(platform_block, {{"{dir}", dir_}});
  // Peers are always authenticated: one generated secret for the cluster.
  if (nodes_.size() > 1) {
    WriteFile(secret_path(), absl::StrCat(RandomHex(16), "\n"));
    chmod(secret_path().c_str(), 0600);
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    std::string conf = absl::StrCat("node_id: \"", nodes_[i].node_id, "\"\n", "listen: \"",
                                    socket_address(i), "\"\n", "listen: \"", tcp_address(i),
                                    "\"\n", "peer_listen: \"", peer_address(i), "\"\n");
    for (size_t j = 0; j < nodes_.size(); ++j) {
      if (j == i) continue;
      absl::StrAppend(&conf, "peers { node_id: \"", nodes_[j].node_id, "\" address: \"",
                      peer_address(j), "\" }\n");
    }
    for (const auto& [cpu, apic] : nodes_[i].cpus) {
      absl::StrAppend(&conf, "cpus { cpu: ", cpu, " apic_id: ", apic, " }\n");
    }
    absl::StrAppend(&conf, "platform { ", platform_block, " }\n", "state_dir: \"", dir_, "/",
                    nodes_[i].node_id, ".state\"\n", options.extra_config, "\n");
    if (!options.kernel_commit) absl::StrAppend(&conf, "kernel_commit: false\n");
    if (nodes_.size() > 1) {
      absl::StrAppend(&conf, "peer_auth { secret_file: \"", secret_path(), "\" }\n");
    }
    WriteFile(config_path(i), conf);
  }
  if (absl::StartsWith(platform_block, "fake")) {
    std::string spec;
    for (const auto& node : nodes_) {
      absl::StrAppend(&spec, "nodes { node_id: \"", node.node_id, "\"");
      for (const auto& [cpu, apic] : node.cpus) {
        absl::StrAppend(&spec, " cpus { cpu: ", cpu, " apic_id: ", apic, " }");
      }
      absl::StrAppend(&spec, " }\n");
    }
    absl::StrAppend(&spec, options.fake_nics, "\n");
    WriteFile(dir_ + "/machine.spec", spec);
    CommandResult r = FakeMachine({"create", "--spec", dir_ + "/machine.spec"});
    if (r.exit_code != 0) {
      std::fprintf(stderr, "fake_machine create failed: %s %s\n", r.out.c_str(), r.err.c_str());
      std::abort();
    }
  }
}

CommandResult DaemonCluster::FakeMachine(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {RunfilePath("daemon/platform/fake/fake_machine")};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--state");
  argv.push_back(machine_path());
  return RunCommand(argv, dir_);
}

DaemonCluster::~DaemonCluster() {
  for (size_t i = 0; i < processes_.size(); ++i) {
    if (processes_[i] && processes_[i]->running()) (void)Stop(i, SIGKILL);
  }
}

std::string DaemonCluster::secret_path() const { return dir_ + "/cluster.secret"; }

std::string DaemonCluster::config_path(int i) const {
  return absl::StrCat(dir_, "/", nodes_[i].node_id, ".conf");
}

std::string DaemonCluster::socket_address(int i) const {
  return absl::StrCat("unix:", dir_, "/", nodes_[i].node_id, ".sock");
}

std::string DaemonCluster::peer_address(int i) const {
  return absl::StrCat("unix:", dir_, "/", nodes_[i].node_id, ".peer.sock");
}

std::string DaemonCluster::tcp_address(int i) const {
  return absl::StrCat("127.0.0.1:", ports_[i]);
}

absl::Status DaemonCluster::Start(int i) {
  auto p = Subprocess::Start({RunfilePath("daemon/nichandoverd"), "--config", config_path(i)},
                             dir_);
  if (!p.ok()) return p.status();
  processes_[i] = std::make_unique<Subprocess>(std::move(*p));
  bool up = WaitUntil(
      [&] { return !processes_[i]->running() || IsServing(socket_address(i)); },
      absl::Seconds(20));
  if (!up || !processes_[i]->running()) {
    return absl::UnavailableError(absl::StrCat("node ", nodes_[i].node_id,
                                               " did not come up; stderr:\n",
                                               processes_[i]->Stderr()));
  }
  return absl::OkStatus();
}

absl::Status DaemonCluster::StartAll() {
  for (int i = 0; i < size(); ++i) {
    if (absl::Status s = Start(i); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<int> DaemonCluster::Stop(int i, int sig) {
  processes_[i]->Signal(sig);
  return processes_[i]->Wait(absl::Seconds(10));
}

bool DaemonCluster::running(int i) const {
  return processes_[i] != nullptr && processes_[i]->running();
}

CommandResult DaemonCluster::Nicctl(int i, const std::vector<std::string>& args,
                                    absl::Duration timeout) {
  std::vector<std::string> argv = {RunfilePath("cli/nicctl"), "--server", socket_address(i)};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, dir_, {}, timeout);
}

}  // namespace testing
}  // namespace nichandover
