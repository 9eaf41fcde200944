// fake-machine: creates, shows and manipulates a fake machine's state file,
// so shell and multi-process tests can set up a machine and flip fault knobs
// while daemons run on it.
//
//   fake-machine create --state PATH (--spec FILE | --nic BDF... [--nodes N] [--cpus N] [--vectors N])
//   fake-machine show --state PATH [--raw]
//   fake-machine set-fault --state PATH --op OP [--node NODE]
//                          [--fail CODE [--times N | --always]] [--hang [--hang-max-ms MS]]
//   fake-machine clear-fault --state PATH [--node NODE] [--op OP]
//   fake-machine check --state PATH --nic BDF [--safe]
//   fake-machine traffic --state PATH --nic BDF --packets N
//
// Exit status: 0 done, 1 the operation failed or a check found a violation,
// 2 bad usage.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/platform/fake/fake_machine.h"
#include "daemon/platform/fake/machine_model.h"
#include "google/protobuf/text_format.h"

namespace nichandover {
namespace platform {
namespace fake {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

constexpr char kUsage[] =
    "usage:\n"
    "  fake-machine create --state PATH (--spec FILE | --nic BDF... [--nodes N] [--cpus N] [--vectors N])\n"
    "  fake-machine show --state PATH [--raw]\n"
    "  fake-machine set-fault --state PATH --op OP [--node NODE]\n"
    "                         [--fail CODE [--times N | --always]] [--hang [--hang-max-ms MS]]\n"
    "  fake-machine clear-fault --state PATH [--node NODE] [--op OP]\n"
    "  fake-machine check --state PATH --nic BDF [--safe]\n"
    "  fake-machine traffic --state PATH --nic BDF --packets N\n";

const std::set<std::string> kSwitches = {"raw", "always", "hang", "safe"};

// --name VALUE / --name=VALUE options (repeatable) and bare --switches.
struct Args {
  std::string command;
  std::map<std::string, std::vector<std::string>> options;
  std::set<std::string> switches;

  std::string Get(const std::string& name) const {
    auto it = options.find(name);
    return it == options.end() ? "" : it->second.back();
  }
  bool Has(const std::string& name) const { return options.count(name) > 0 || switches.count(name) > 0; }
};

absl::StatusOr<Args> ParseArgs(int argc, char** argv) {
  if (argc < 2) return absl::InvalidArgumentError("missing command");
  Args args;
  args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", arg));
    std::string name = arg.substr(2);
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      args.options[name.substr(0, eq)].push_back(name.substr(eq + 1));
    } else if (kSwitches.count(name) > 0) {
      args.switches.insert(name);
    } else if (i + 1 < argc) {
      args.options[name].push_back(argv[++i]);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
    }
  }
  if (args.Get("state").empty()) return absl::InvalidArgumentError("--state PATH is required");
  return args;
}

absl::StatusOr<uint32_t> ParseCount(const Args& args, const std::string& name, uint32_t fallback) {
  if (!args.Has(name)) return fallback;
  uint32_t value = 0;
  if (!absl::SimpleAtoi(args.Get(name), &value)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " wants a number, got \"", args.Get(name), "\""));
  }
  return value;
}

// "UNAVAILABLE", "unavailable" or "14".
absl::StatusOr<absl::StatusCode> ParseCode(const std::string& text) {
  int number = 0;
  if (absl::SimpleAtoi(text, &number) && number > 0 && number <= 16) {
    return static_cast<absl::StatusCode>(number);
  }
  std::string upper = absl::AsciiStrToUpper(text);
  for (int code = 1; code <= 16; ++code) {
    if (absl::StatusCodeToString(static_cast<absl::StatusCode>(code)) == upper) {
      return static_cast<absl::StatusCode>(code);
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("--fail wants a status code name or number, got \"", text, "\""));
}

absl::Status Create(const Args& args, FakeMachine* machine) {
  FakeMachineSpec spec;
  if (args.Has("spec")) {
    std::ifstream in(args.Get("spec"));
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read spec ", args.Get("spec")));
    std::stringstream text;
    text << in.rdbuf();
    if (!google::protobuf::TextFormat::ParseFromString(text.str(), &spec)) {
      return absl::InvalidArgumentError(absl::StrCat("spec ", args.Get("spec"), " is not a FakeMachineSpec in text format"));
    }
  } else {
    auto nics = args.options.find("nic");
    if (nics == args.options.end()) return absl::InvalidArgumentError("create needs --spec FILE or --nic BDF");
    absl::StatusOr<uint32_t> nodes = ParseCount(args, "nodes", 2);
    absl::StatusOr<uint32_t> cpus = ParseCount(args, "cpus", 2);
    absl::StatusOr<uint32_t> vectors = ParseCount(args, "vectors", 4);
    for (const auto* parsed : {&nodes, &cpus, &vectors}) {
      if (!parsed->ok()) return parsed->status();
    }
    spec = SimpleMachineSpec(static_cast<int>(*nodes), static_cast<int>(*cpus), nics->second, *vectors);
  }
  return machine->Create(spec);
}

absl::Status Show(const Args& args, const FakeMachine& machine) {
  if (args.Has("raw")) {
    absl::StatusOr<FakeMachineState> state = machine.State();
    if (!state.ok()) return state.status();
    std::string text;
    google::protobuf::TextFormat::PrintToString(*state, &text);
    std::cout << text;
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> text = machine.Describe();
  if (!text.ok()) return text.status();
  std::cout << *text;
  return absl::OkStatus();
}

absl::Status SetFault(const Args& args, FakeMachine* machine) {
  absl::StatusOr<FakeOperation> operation = ParseFakeOperation(args.Get("op"));
  if (!operation.ok()) return operation.status();
  FakeFault fault;
  fault.set_node_id(args.Get("node"));
  fault.set_operation(*operation);
  fault.set_hang(args.Has("hang"));
  absl::StatusOr<uint32_t> hang_max = ParseCount(args, "hang-max-ms", 0);
  if (!hang_max.ok()) return hang_max.status();
  fault.set_hang_max_ms(*hang_max);
  if (args.Has("fail")) {
    absl::StatusOr<absl::StatusCode> code = ParseCode(args.Get("fail"));
    if (!code.ok()) return code.status();
    fault.set_fail_code(static_cast<int>(*code));
    absl::StatusOr<uint32_t> times = ParseCount(args, "times", 1);
    if (!times.ok()) return times.status();
    fault.set_fail_times(*times);
    fault.set_fail_always(args.Has("always"));
  }
  return machine->SetFault(fault);
}

absl::Status ClearFault(const Args& args, FakeMachine* machine) {
  FakeOperation operation = FAKE_OP_UNSPECIFIED;
  if (args.Has("op")) {
    absl::StatusOr<FakeOperation> parsed = ParseFakeOperation(args.Get("op"));
    if (!parsed.ok()) return parsed.status();
    operation = *parsed;
  }
  return machine->ClearFaults(args.Get("node"), operation);
}

absl::Status Check(const Args& args, const FakeMachine& machine) {
  if (args.Get("nic").empty()) return absl::InvalidArgumentError("check needs --nic BDF");
  absl::Status status = args.Has("safe") ? machine.CheckSafe(args.Get("nic")) : machine.CheckSettled(args.Get("nic"));
  if (status.ok()) std::cout << args.Get("nic") << ": ok\n";
  return status;
}

absl::Status Traffic(const Args& args, FakeMachine* machine) {
  absl::StatusOr<uint32_t> packets = ParseCount(args, "packets", 0);
  if (!packets.ok()) return packets.status();
  return machine->RunTraffic(args.Get("nic"), *packets);
}

int Main(int argc, char** argv) {
  absl::StatusOr<Args> args = ParseArgs(argc, argv);
  if (!args.ok()) {
    std::cerr << "fake-machine: " << args.status().message() << "\n" << kUsage;
    return kExitUsage;
  }
  FakeMachine machine(args->Get("state"));
  absl::Status status;
  if (args->command == "create") {
    status = Create(*args, &machine);
  } else if (args->command == "show") {
    status = Show(*args, machine);
  } else if (args->command == "set-fault") {
    status = SetFault(*args, &machine);
  } else if (args->command == "clear-fault") {
    status = ClearFault(*args, &machine);
  } else if (args->command == "check") {
    status = Check(*args, machine);
  } else if (args->command == "traffic") {
    status = Traffic(*args, &machine);
  } else {
    std::cerr << "fake-machine: unknown command \"" << args->command << "\"\n" << kUsage;
    return kExitUsage;
  }
  if (!status.ok()) {
    std::cerr << "fake-machine " << args->command << ": " << status << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  return kExitOk;
}

}  // namespace
}  // namespace fake
}  // namespace platform
}  // namespace nichandover

int main(int argc, char** argv) { return nichandover::platform::fake::Main(argc, argv); }
