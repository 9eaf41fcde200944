// Serves a Kernel's hook operations over gRPC (kernel_control.proto) on a
// unix socket: the simulated counterpart of the kernel module's generic
// netlink family.
#ifndef NICHANDOVER_SIM_CONTROL_SERVER_H_
#define NICHANDOVER_SIM_CONTROL_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "sim/kernel.h"

namespace nichandover {
namespace sim {

class ControlServer {
 public:
  // Listens on unix socket `socket_path` (replacing a stale socket file).
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(Kernel* kernel,
                                                              const std::string& socket_path);
  ~ControlServer();
  void Shutdown();
  void Wait();

 private:
  class Service;
  ControlServer() = default;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string socket_path_;
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_CONTROL_SERVER_H_
