// What a running nicctl command works with: its arguments, the connection to
// the daemon, output streams, and the mapping of failures to messages people
// can act on and to exit codes.
#ifndef NICHANDOVER_CLI_CONTEXT_H_
#define NICHANDOVER_CLI_CONTEXT_H_

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cli/command.h"
#include "cli/exit_codes.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"
#include "nichandover/v1/node_service.grpc.pb.h"

namespace nichandover {
namespace cli {

class Context {
 public:
  Context(ParsedCommandLine parsed, std::ostream& out, std::ostream& err, bool out_is_tty);

  const std::vector<std::string>& args() const { return parsed_.args; }
  bool json() const { return HasFlag("json"); }
  bool HasFlag(const std::string& name) const { return parsed_.flags.count(name) > 0; }
  std::string Flag(const std::string& name, const std::string& fallback = "") const;
  bool out_is_tty() const { return out_is_tty_; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

  // The daemon's address: --server, else $NICCTL_SERVER, else the default socket.
  const std::string& server() const { return server_; }

  // The NodeService stub (connects on first use). nullptr and a printed
  // error when the address is malformed.
  v1::NodeService::StubInterface* NodeService();
  // A client context with the per-call deadline (--rpc-timeout).
  std::unique_ptr<grpc::ClientContext> NewCall() const;

  // Prints "nicctl: WHAT: DETAIL" plus a hint for the status code and returns
  // the exit code for it.
  int Fail(const grpc::Status& status, absl::string_view what);
  // As above; `hint` (when not empty) replaces the generic hint for the
  // status code. For errors whose remedy the command knows better, e.g.
  // NOT_FOUND for a NIC: "list the NICs with 'nicctl nics'".
  int Fail(const grpc::Status& status, absl::string_view what, absl::string_view hint);
  // Prints "nicctl: MESSAGE" and returns kExitUsage.
  int UsageError(absl::string_view message);
  // Prints a message as JSON (proto field names, defaults included: stable
  // for scripts).
  void PrintJson(const google::protobuf::Message& message);

  // For tests: talk to a fixed stub instead of connecting.
  void SetNodeServiceForTest(v1::NodeService::StubInterface* stub) { test_stub_ = stub; }

 private:
  ParsedCommandLine parsed_;
  std::ostream& out_;
  std::ostream& err_;
  bool out_is_tty_;
  std::string server_;
  absl::Duration rpc_timeout_ = absl::Seconds(10);
  std::string usage_problem_;  // a bad global flag, reported on first use
  std::unique_ptr<v1::NodeService::Stub> stub_;
  v1::NodeService::StubInterface* test_stub_ = nullptr;
};

// Aligned columns, as `ip` and `kubectl get` print them.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Parses "10s", "1.5s", "500ms", "2m". INVALID_ARGUMENT otherwise.
absl::StatusOr<absl::Duration> ParseUserDuration(absl::string_view text);

// A request id nobody else picks: `prefix` and 16 random hex digits
// ("nicctl-" + "0123456789abcdef").
std::string NewRequestId(absl::string_view prefix);

}  // namespace cli
}  // namespace nichandover

#endif  // NICHANDOVER_CLI_CONTEXT_H_
