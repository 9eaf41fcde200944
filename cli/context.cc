#include "cli/context.h"

#include <cstdlib>
#include <ostream>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/address.h"
#include "google/protobuf/util/json_util.h"

namespace nichandover {
namespace cli {
namespace {

const char* HintFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
      return "is nichandoverd running there? Start it, or point nicctl at it with --server "
             "ADDR or NICCTL_SERVER";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "the daemon did not answer in time; retry, or raise --rpc-timeout";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "this daemon's version or platform backend does not support it";
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return "check the daemon's peer and secret configuration";
    default:
      return nullptr;
  }
}

}  // namespace

Context::Context(ParsedCommandLine parsed, std::ostream& out, std::ostream& err,
                 bool out_is_tty)
    : parsed_(std::move(parsed)), out_(out), err_(err), out_is_tty_(out_is_tty) {
  if (HasFlag("server")) {
    server_ = Flag("server");
  } else if (const char* env = std::getenv("NICCTL_SERVER"); env != nullptr && *env) {
    server_ = env;
  } else {
    server_ = absl::StrCat("unix:", kDefaultSocketPath);
  }
  if (HasFlag("rpc-timeout")) {
    auto d = ParseUserDuration(Flag("rpc-timeout"));
    if (d.ok()) {
      rpc_timeout_ = *d;
    } else {
      usage_problem_ = absl::StrCat("--rpc-timeout: ", d.status().message());
    }
  }
}

std::string Context::Flag(const std::string& name, const std::string& fallback) const {
  auto it = parsed_.flags.find(name);
  return it == parsed_.flags.end() ? fallback : it->second;
}

v1::NodeService::StubInterface* Context::NodeService() {
  if (test_stub_ != nullptr) return test_stub_;
  if (stub_ != nullptr) return stub_.get();
  if (!usage_problem_.empty()) {
    UsageError(usage_problem_);
    return nullptr;
  }
  auto addr = ParseAddress(server_);
  if (!addr.ok()) {
    UsageError(absl::StrCat("server address '", server_, "': ", addr.status().message()));
    return nullptr;
  }
  stub_ = v1::NodeService::NewStub(
      grpc::CreateChannel(addr->GrpcUri(), grpc::InsecureChannelCredentials()));
  return stub_.get();
}

std::unique_ptr<grpc::ClientContext> Context::NewCall() const {
  auto call = std::make_unique<grpc::ClientContext>();
  call->set_deadline(absl::ToChronoTime(absl::Now() + rpc_timeout_));
  return call;
}

int Context::Fail(const grpc::Status& status, absl::string_view what) {
  return Fail(status, what, "");
}

int Context::Fail(const grpc::Status& status, absl::string_view what, absl::string_view hint) {
  std::string detail = status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    detail = absl::StrCat("cannot reach nichandoverd at ", server_,
                          detail.empty() ? "" : " (", detail, detail.empty() ? "" : ")");
  }
  // `what` may quote the user's input: at most a prefix of it.
  constexpr size_t kMaxWhat = 160;
  std::string shown(what.substr(0, kMaxWhat));
  if (what.size() > kMaxWhat) absl::StrAppend(&shown, "... (", what.size(), " bytes)");
  err_ << "nicctl: " << shown << ": " << detail << "\n";
  if (hint.empty() && status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      detail.find("Permission denied") != std::string::npos) {
    // The daemon gives its socket to its operator_group, by default the
    // packaged group nichandover (docs/operations.md).
    hint = "the socket's permissions refuse you: join the nichandover group (or the group "
           "the daemon's operator_group names; sudo adduser $USER nichandover, then log in "
           "again) or run nicctl as root";
  }
  if (!hint.empty()) {
    err_ << "  hint: " << hint << "\n";
  } else if (const char* generic = HintFor(status.error_code())) {
    err_ << "  hint: " << generic << "\n";
  }
  return ExitCodeFor(status);
}

int Context::UsageError(absl::string_view message) {
  err_ << "nicctl: " << message << "\n";
  return kExitUsage;
}

void Context::PrintJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  options.always_print_enums_as_ints = false;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    err_ << "nicctl: cannot render JSON: " << status.ToString() << "\n";
    return;
  }
  out_ << json;
  if (json.empty() || json.back() != '\n') out_ << "\n";
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

absl::StatusOr<absl::Duration> ParseUserDuration(absl::string_view text) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a positive duration like 500ms, 10s or 2m"));
  }
  // ParseDuration saturates to infinity; the daemon bounds finite ones.
  if (d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is too long"));
  }
  return d;
}

std::string NewRequestId(absl::string_view prefix) {
  std::random_device random;
  uint64_t value = (static_cast<uint64_t>(random()) << 32) ^ random();
  return absl::StrFormat("%s%016x", prefix, value);
}

}  // namespace cli
}  // namespace nichandover
