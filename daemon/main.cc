// nichandoverd: the per-node daemon that hands NICs over between OS nodes.
//
//   nichandoverd --config /etc/nichandover/node0.conf
#include <signal.h>
#include <systemd/sd-daemon.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/version.h"
#include "daemon/config.h"
#include "daemon/server.h"

namespace {

constexpr char kUsage[] =
    "Usage: nichandoverd --config FILE [--check-config] [--log-level LEVEL]\n"
    "       nichandoverd --version | --help\n"
    "\n"
    "Per-node daemon of nichandover: serves nichandover.v1.NodeService (for nicctl\n"
    "and orchestrators) and PeerService (for the other nodes' daemons), plus the\n"
    "gRPC health service and server reflection.\n"
    "\n"
    "Options:\n"
    "  --config FILE       configuration in protobuf text format (see\n"
    "                      docs/configuration.md)\n"
    "  --check-config      validate the configuration and exit\n"
    "  --log-level LEVEL   debug, info (default), warning or error\n"
    "  --version           print the version and exit\n"
    "  --help              print this help and exit\n"
    "\n"
    "Stops cleanly on SIGTERM or SIGINT. Exit status: 0 after a clean stop,\n"
    "1 on a runtime failure, 2 on a usage or configuration error.\n";

int UsageError(const std::string& message) {
  std::fprintf(stderr, "nichandoverd: %s\n\n%s", message.c_str(), kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using nichandover::LogSeverity;
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> const char* {
      std::string prefix = std::string(flag) + "=";
      if (absl::StartsWith(arg, prefix)) return argv[i] + prefix.size();
      if (arg == flag && i + 1 < argc) return argv[++i];
      return nullptr;
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--version") {
      std::printf("nichandoverd %s (%s)\n", nichandover::kVersion, nichandover::kApiVersion);
      return 0;
    } else if (arg == "--check-config") {
      check_only = true;
    } else if (absl::StartsWith(arg, "--config")) {
      const char* v = value("--config");
      if (v == nullptr) return UsageError("--config needs a file");
      config_path = v;
    } else if (absl::StartsWith(arg, "--log-level")) {
      const char* v = value("--log-level");
      std::string level = v ? v : "";
      if (level == "debug") {
        nichandover::SetMinLogSeverity(LogSeverity::kDebug);
      } else if (level == "info") {
        nichandover::SetMinLogSeverity(LogSeverity::kInfo);
      } else if (level == "warning") {
        nichandover::SetMinLogSeverity(LogSeverity::kWarning);
      } else if (level == "error") {
        nichandover::SetMinLogSeverity(LogSeverity::kError);
      } else {
        return UsageError("--log-level takes debug, info, warning or error");
      }
    } else {
      return UsageError("unknown argument '" + arg + "'");
    }
  }
  if (config_path.empty()) return UsageError("--config FILE is required");

  auto config = nichandover::daemon::LoadConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "nichandoverd: invalid configuration: %s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  if (check_only) {
    std::printf("%s: OK (node %s, platform %s)\n", config_path.c_str(),
                config->node_id().c_str(), nichandover::daemon::PlatformName(*config).c_str());
    return 0;
  }
  nichandover::SetLogTag(config->node_id());

  // Block the stop signals before gRPC starts its threads, so that only the
  // sigwait below ever sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto daemon = nichandover::daemon::Daemon::Start(*config);
  if (!daemon.ok()) {
    NH_LOG(ERROR) << "cannot start: " << daemon.status().message();
    return 1;
  }
  NH_LOG(INFO) << "nichandoverd " << nichandover::kVersion << " node " << config->node_id()
               << " platform " << nichandover::daemon::PlatformName(*config) << " serving on "
               << absl::StrJoin((*daemon)->serving_addresses(), ", ");
  if (!(*daemon)->peer_addresses().empty()) {
    NH_LOG(INFO) << "PeerService for the other nodes on "
                 << absl::StrJoin((*daemon)->peer_addresses(), ", ");
  }
  if (!(*daemon)->metrics_address().empty()) {
    NH_LOG(INFO) << "metrics on http://" << (*daemon)->metrics_address() << "/metrics";
  }
  // Under systemd (Type=notify): the records are read and the sockets serve.
  // A no-op when NOTIFY_SOCKET is unset.
  sd_notify(0, "READY=1");

  int sig = 0;
  sigwait(&stop_signals, &sig);
  NH_LOG(INFO) << "received " << strsignal(sig) << ", shutting down";
  sd_notify(0, "STOPPING=1");
  (*daemon)->Shutdown(absl::Seconds(2));
  daemon->reset();
  NH_LOG(INFO) << "stopped";
  return 0;
}
