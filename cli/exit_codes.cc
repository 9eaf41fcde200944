#include "cli/exit_codes.h"

namespace nichandover {
namespace cli {

ExitCode ExitCodeFor(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kExitUsage;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return kExitRefused;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitTimedOut;
    case grpc::StatusCode::UNAVAILABLE:
      return kExitUnreachable;
    default:
      return kExitError;
  }
}

const char* ExitCodeTable() {
  return "  0  success\n"
         "  1  error not covered below\n"
         "  2  usage error (bad command line or invalid argument)\n"
         "  3  not found (unknown NIC, node or handover)\n"
         "  4  refused (the target refused, or the NIC's state forbids it now)\n"
         "  5  rolled back (the source still owns the NIC)\n"
         "  6  timed out\n"
         "  7  daemon unreachable\n"
         "  8  handover failed and needs `nicctl recover`\n"
         "130  interrupted (Ctrl-C) while waiting: a handover goes on without nicctl, a drain stops\n";
}

}  // namespace cli
}  // namespace nichandover
