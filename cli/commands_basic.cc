// nicctl nodes | version | help | completion; the table of all commands
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/context.h"
#include "common/version.h"
#include "google/protobuf/struct.pb.h"

namespace nichandover {
namespace cli {
namespace {

std::string NodeStateText(const v1::Node& node) {
  switch (node.state()) {
    case v1::NODE_STATE_REACHABLE:
      return "reachable";
    case v1::NODE_STATE_UNREACHABLE:
      return "unreachable";
    default:
      return "-";
  }
}

std::string CpusText(const v1::Node& node) {
  std::vector<std::string> parts;
  for (const auto& cpu : node.cpus()) parts.push_back(absl::StrCat(cpu.cpu(), "(", cpu.apic_id(), ")"));
  return parts.empty() ? "-" : absl::StrJoin(parts, ",");
}

int RunNodes(Context& ctx) {
  auto* service = ctx.NodeService();
  if (service == nullptr) return kExitUsage;
  v1::ListNodesRequest request;
  v1::ListNodesResponse response;
  auto call = ctx.NewCall();
  grpc::Status status = service->ListNodes(call.get(), request, &response);
  if (!status.ok()) return ctx.Fail(status, "listing nodes");
  if (ctx.json()) {
    ctx.PrintJson(response);
    return kExitOk;
  }
  Table table({"NODE", "LOCAL", "STATE", "PLATFORM", "CPUS(APIC)", "ADDRESS", "VERSION"});
  for (const auto& node : response.nodes()) {
    table.AddRow({node.node_id(), node.local() ? "*" : "", NodeStateText(node),
                  node.platform().empty() ? "-" : node.platform(), CpusText(node),
                  node.address().empty() ? "-" : node.address(),
                  node.version().empty() ? "-" : node.version()});
  }
  table.Print(ctx.out());
  for (const auto& node : response.nodes()) {
    if (node.state() == v1::NODE_STATE_UNREACHABLE && !node.state_detail().empty()) {
      ctx.out() << node.node_id() << ": " << node.state_detail() << "\n";
    }
  }
  return kExitOk;
}

int RunVersion(Context& ctx) {
  google::protobuf::Struct doc;
  auto& client = *(*doc.mutable_fields())["client"].mutable_struct_value()->mutable_fields();
  client["version"].set_string_value(kVersion);
  client["api"].set_string_value(kApiVersion);
  int rc = kExitOk;
  grpc::Status status;
  v1::Node local;
  if (!ctx.HasFlag("client")) {
    auto* service = ctx.NodeService();
    if (service == nullptr) return kExitUsage;
    v1::ListNodesRequest request;
    request.set_skip_probe(true);
    v1::ListNodesResponse response;
    auto call = ctx.NewCall();
    status = service->ListNodes(call.get(), request, &response);
    if (status.ok() && response.nodes_size() > 0) {
      local = response.nodes(0);
      auto& server = *(*doc.mutable_fields())["server"].mutable_struct_value()->mutable_fields();
      server["version"].set_string_value(local.version());
      server["node_id"].set_string_value(local.node_id());
      server["platform"].set_string_value(local.platform());
      server["address"].set_string_value(ctx.server());
    }
  }
  if (ctx.json()) {
    ctx.PrintJson(doc);
  } else {
    ctx.out() << "nicctl " << kVersion << " (" << kApiVersion << ")\n";
    if (status.ok() && !local.node_id().empty()) {
      ctx.out() << "nichandoverd " << local.version() << " on node " << local.node_id()
                << " (platform " << local.platform() << ") at " << ctx.server() << "\n";
    }
  }
  if (!status.ok()) rc = ctx.Fail(status, "asking the daemon for its version");
  return rc;
}

int RunHelp(Context& ctx) {
  if (ctx.HasFlag("markdown")) {
    ctx.out() << MarkdownReference();
    return kExitOk;
  }
  if (ctx.HasFlag("man")) {
    ctx.out() << ManPage();
    return kExitOk;
  }
  if (ctx.args().empty()) {
    ctx.out() << TopLevelHelp();
    return kExitOk;
  }
  std::string wanted = absl::StrJoin(ctx.args(), " ");
  for (const auto& c : AllCommands()) {
    if (absl::StrJoin(c.words, " ") == wanted) {
      ctx.out() << CommandHelp(c);
      return kExitOk;
    }
  }
  return ctx.UsageError(absl::StrCat("no command '", wanted, "'; run 'nicctl --help'"));
}

int RunCompletion(Context& ctx) {
  if (ctx.args()[0] != "bash") {
    return ctx.UsageError(absl::StrCat("no completion for shell '", ctx.args()[0],
                                       "' (supported: bash)"));
  }
  ctx.out() << BashCompletion();
  return kExitOk;
}

}  // namespace

std::vector<CommandSpec> NodeCommands() {
  return {
      {{"nodes"},
       "",
       "List the OS nodes: this node and its peers, with CPUs, APIC IDs and reachability",
       "Asks the daemon for its node and probes each configured peer's daemon\n"
       "(PeerService.Hello, at most 1 s each, all at once).",
       {},
       0,
       0,
       RunNodes},
  };
}

std::vector<CommandSpec> BasicCommands() {
  return {
      {{"version"},
       "",
       "Show nicctl's version and the daemon's",
       "",
       {{"client", "", "only nicctl's own version; do not contact the daemon"}},
       0,
       0,
       RunVersion},
      {{"help"},
       "[COMMAND...]",
       "Show help for nicctl or one command",
       "",
       {{"markdown", "", "print the full reference (docs/nicctl.md) as Markdown"},
        {"man", "", "print the nicctl(1) manual page (roff)"}},
       0,
       -1,
       RunHelp},
      {{"completion"},
       "bash",
       "Print a shell completion script",
       "Load it with:  source <(nicctl completion bash)",
       {},
       1,
       1,
       RunCompletion},
  };
}

const std::vector<CommandSpec>& AllCommands() {
  static const auto* all = [] {
    auto* v = new std::vector<CommandSpec>();
    for (auto group : {NodeCommands, NicCommands, HandoverCommands, DrainCommands, BasicCommands}) {
      for (auto& c : group()) v->push_back(std::move(c));
    }
    return v;
  }();
  return *all;
}

}  // namespace cli
}  // namespace nichandover
