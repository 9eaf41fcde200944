// Test support: the few NodeService calls the soaks and benchmarks make
// against a running nichandoverd (over its operator socket), without nicctl
// in between.
#ifndef NICHANDOVER_TESTS_TESTING_NODE_CLIENT_H_
#define NICHANDOVER_TESTS_TESTING_NODE_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nichandover/v1/node_service.grpc.pb.h"

namespace nichandover {
namespace testing {

// A stub for the daemon at `address` ("unix:/path" or "host:port").
std::unique_ptr<v1::NodeService::Stub> NodeServiceStub(const std::string& address);

// CreateHandover of `nic` to `target`; returns once the daemon has started it
// (it runs on; GetHandover follows it).
absl::StatusOr<v1::Handover> StartHandover(const std::string& address, const std::string& nic,
                                           const std::string& target,
                                           const std::string& request_id,
                                           absl::Duration rpc_timeout = absl::Seconds(5));

absl::StatusOr<v1::Handover> GetHandover(const std::string& address,
                                         const std::string& handover_id,
                                         absl::Duration rpc_timeout = absl::Seconds(5));

// Whether any handover the daemon lists is still running (either role); an
// error when it does not answer.
absl::StatusOr<bool> AnyHandoverLive(const std::string& address,
                                     absl::Duration rpc_timeout = absl::Seconds(2));

}  // namespace testing
}  // namespace nichandover

#endif  // NICHANDOVER_TESTS_TESTING_NODE_CLIENT_H_
