// nh-vm-agent: the host side of a VM deployment of nichandover (see
// docs/vm-deployment.md). Keeps the NICs' ownership records and moves NICs
// between VMs through QEMU's QMP, serving VmAgent on a unix socket.
//
//   nh-vm-agent --config FILE --listen unix:/run/nichandover/vm-agent.sock
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "agent.h"
#include "agent_service.h"
#include "common/log.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "qmp_hypervisor.h"

namespace {

constexpr char kUsage[] =
    "Usage: nh-vm-agent --config FILE --listen unix:PATH\n"
    "\n"
    "Serves nichandover.vmhost.VmAgent (ownership records, NIC placement through\n"
    "QMP) on a unix socket. FILE is an AgentConfig in protobuf text format\n"
    "(vmhost/agent.proto). Stops on SIGTERM or SIGINT.\n";

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, listen;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--config") {
      config_path = argv[i + 1];
    } else if (flag == "--listen") {
      listen = argv[i + 1];
    } else {
      std::fputs(kUsage, stderr);
      return 2;
    }
  }
  if (config_path.empty() || listen.rfind("unix:", 0) != 0 || argc % 2 == 0) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  nichandover::SetLogTag("vm-agent");
  std::ifstream in(config_path);
  std::stringstream text;
  text << in.rdbuf();
  nichandover::vmhost::AgentConfig config;
  if (!in || !google::protobuf::TextFormat::ParseFromString(text.str(), &config)) {
    std::fprintf(stderr, "nh-vm-agent: %s: cannot read or parse the configuration\n",
                 config_path.c_str());
    return 2;
  }
  std::map<std::string, std::string> sockets;
  for (const auto& vm : config.vms()) sockets[vm.name()] = vm.qmp_socket();
  nichandover::vmhost::QmpHypervisor hypervisor(sockets);
  auto agent = nichandover::vmhost::Agent::Create(config, &hypervisor);
  if (!agent.ok()) {
    std::fprintf(stderr, "nh-vm-agent: %s\n", std::string(agent.status().message()).c_str());
    return 2;
  }

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  unlink(listen.c_str() + 5);  // a socket left by an agent that died
  nichandover::vmhost::AgentService service(agent->get());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::fprintf(stderr, "nh-vm-agent: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  NH_LOG(INFO) << "serving on " << listen << ": " << config.vms_size() << " VMs, "
               << config.nics_size() << " NICs";
  int sig = 0;
  sigwait(&stop, &sig);
  NH_LOG(INFO) << "received " << strsignal(sig) << ", stopping";
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  unlink(listen.c_str() + 5);
  return 0;
}
