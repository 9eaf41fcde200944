#include "tests/sim_cluster.h"

#include <signal.h>
#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "kernel_control.grpc.pb.h"
#include "pci/interrupt_layout.h"
#include "pci/x86_msi.h"
#include "sim/config_space_image.h"
#include "tests/testing/daemon_cluster.h"

namespace nichandover {
namespace testing {
namespace {

bool IsSocket(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

uint64_t Number(const google::protobuf::Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  return it == object.fields().end() ? 0 : static_cast<uint64_t>(it->second.number_value());
}

double Real(const google::protobuf::Struct& object, const std::string& key) {
  auto it = object.fields().find(key);
  return it == object.fields().end() ? 0 : it->second.number_value();
}

TrafficDirection ParseDirection(const google::protobuf::Struct& direction) {
  TrafficDirection d;
  d.sent = Number(direction, "sent");
  d.refused = Number(direction, "refused");
  d.wire_drops = Number(direction, "wire_drops");
  d.received = Number(direction, "received");
  d.unique = Number(direction, "unique");
  d.duplicated = Number(direction, "duplicated");
  d.out_of_order = Number(direction, "out_of_order");
  d.lost = Number(direction, "lost");
  auto changes = direction.fields().find("handovers");
  if (changes != direction.fields().end()) {
    for (const auto& change : changes->second.list_value().values()) {
      const auto& f = change.struct_value().fields();
      d.node_changes.push_back(
          absl::StrCat(f.at("from").string_value(), "->", f.at("to").string_value()));
    }
  }
  return d;
}

}  // namespace

absl::StatusOr<TrafficResult> ParseTrafficReport(const std::string& json) {
  google::protobuf::Struct report;
  auto parsed = google::protobuf::util::JsonStringToMessage(json, &report);
  if (!parsed.ok() || !report.fields().contains("inbound") ||
      !report.fields().contains("outbound")) {
    return absl::InvalidArgumentError(absl::StrCat("not a traffic report: ", json));
  }
  TrafficResult result;
  result.json = json;
  result.inbound = ParseDirection(report.fields().at("inbound").struct_value());
  result.outbound = ParseDirection(report.fields().at("outbound").struct_value());
  auto device = report.fields().find("device");
  if (device != report.fields().end()) {
    result.rx_missed = Number(device->second.struct_value(), "rx_missed");
  }
  result.rx_socket_drops = Number(report, "rx_socket_drops");
  auto nics = report.fields().find("nics");
  if (nics != report.fields().end()) {
    for (const auto& value : nics->second.list_value().values()) {
      const google::protobuf::Struct& nic = value.struct_value();
      NicTrafficResult n;
      auto bdf = nic.fields().find("bdf");
      if (bdf != nic.fields().end()) n.bdf = bdf->second.string_value();
      auto in = nic.fields().find("inbound");
      auto out = nic.fields().find("outbound");
      if (in != nic.fields().end()) n.inbound = ParseDirection(in->second.struct_value());
      if (out != nic.fields().end()) n.outbound = ParseDirection(out->second.struct_value());
      n.rx_missed = Number(nic, "rx_missed");
      n.rx_socket_drops = Number(nic, "rx_socket_drops");
      n.max_blackout_us = Real(nic, "max_blackout_us");
      result.nics.push_back(std::move(n));
    }
  }
  return result;
}

SimCluster::SimCluster(uint32_t ring_size) : SimCluster([ring_size] {
        SimClusterOptions options;
        options.ring_size = ring_size;
        return options;
      }()) {}

SimCluster::SimCluster(const SimClusterOptions& options)
    : options_(options),
      dir_(MakeTempDir("nhs")),
      machine_path_(dir_ + "/machine"),
      kernels_(options.nodes),
      daemons_(options.nodes) {
  // Peers are always authenticated: a generated cluster secret, owner-only.
  const std::string secret = dir_ + "/cluster.secret";
  WriteFile(secret, RandomHex(16) + "\n");
  chmod(secret.c_str(), 0600);
  for (int i = 0; i < options_.nodes; ++i) {
    std::string peers;
    for (int other = 0; other < options_.nodes; ++other) {
      if (other == i) continue;
      absl::StrAppendFormat(&peers, "peers { node_id: \"%s\" address: \"unix:%s\" }\n",
                            node_id(other), peer_socket(other));
    }
    std::string conf = absl::StrFormat(
        "node_id: \"%s\"\n"
        "listen: \"unix:%s\"\n"
        "peer_listen: \"unix:%s\"\n"
        "%s"
        "cpus { cpu: 0 apic_id: %d }\n"
        "cpus { cpu: 1 apic_id: %d }\n"
        "platform { sim { machine_path: \"%s\" kernel_socket: \"%s\" } }\n"
        "state_dir: \"%s/%s.state\"\n"
        "peer_auth { secret_file: \"%s\" }\n"
        "%s\n",
        node_id(i), daemon_socket(i), peer_socket(i), peers, 2 * i, 2 * i + 1, machine_path_,
        kernel_socket(i), dir_, node_id(i), secret, options_.extra_config);
    WriteFile(config_path(i), conf);
  }
}

std::string SimCluster::nic_bdf(int i) {
  absl::StatusOr<std::string> bdf = sim::NicBdf(kSimNic, static_cast<uint32_t>(i));
  return bdf.ok() ? *bdf : "";
}

SimCluster::~SimCluster() {
  // Daemons and traffic first, the kernels and the device last, as a
  // machine shuts down; Subprocess's destructor SIGKILLs and reaps.
  traffic_.reset();
  for (auto& d : daemons_) d.reset();
  for (auto& k : kernels_) {
    if (k) k->Signal(SIGCONT);  // a test may have stopped it
    k.reset();
  }
  device_.reset();
  machine_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string SimCluster::config_path(int i) const {
  return absl::StrCat(dir_, "/", node_id(i), ".conf");
}
std::string SimCluster::daemon_socket(int i) const {
  return absl::StrCat(dir_, "/", node_id(i), ".sock");
}
std::string SimCluster::peer_socket(int i) const {
  return absl::StrCat(dir_, "/", node_id(i), ".peer.sock");
}
std::string SimCluster::kernel_socket(int i) const {
  return absl::StrCat(dir_, "/", node_id(i), "-kernel.sock");
}

absl::Status SimCluster::StartMachine() {
  std::vector<std::string> create = {RunfilePath("sim/nh-sim-machine"), "create", "--path",
                                     machine_path_};
  for (int i = 0; i < options_.nodes; ++i) {
    create.push_back("--node");
    create.push_back(absl::StrFormat("%s:%d,%d", node_id(i), 2 * i, 2 * i + 1));
  }
  for (const std::string& arg :
       {std::string("--owner"), options_.spread_owners ? std::string("spread") : node_id(0),
        std::string("--ring-size"), std::to_string(options_.ring_size), std::string("--nics"),
        std::to_string(options_.nics), std::string("--queues"),
        std::to_string(options_.queues)}) {
    create.push_back(arg);
  }
  CommandResult created = RunCommand(create, dir_);
  if (created.exit_code != 0) {
    return absl::InternalError(absl::StrCat("nh-sim-machine create: ", created.err));
  }
  auto machine = sim::Machine::Open(machine_path_);
  if (!machine.ok()) return machine.status();
  machine_ = std::move(*machine);
  if (!options_.owners.empty()) {
    if (options_.owners.size() != static_cast<size_t>(options_.nics)) {
      return absl::InvalidArgumentError("SimClusterOptions.owners: one node per NIC");
    }
    // The records as built, before any kernel or daemon reads them: the
    // per-NIC owners nh-sim-machine create has no flag for.
    for (int nic = 0; nic < options_.nics; ++nic) {
      sim::Ownership built = machine_->ReadOwnership(nic);
      sim::Ownership wanted = built;
      wanted.owner = options_.owners[nic];
      if (!(machine_->CompareAndSwapOwnership(built, wanted, nic) == wanted)) {
        return absl::InternalError(absl::StrCat("NIC ", nic, "'s record changed under the test"));
      }
    }
  }
  auto device = Subprocess::Start({RunfilePath("sim/nh-sim-machine"), "run", "--path",
                                   machine_path_},
                                  dir_);
  if (!device.ok()) return device.status();
  device_ = std::make_unique<Subprocess>(std::move(*device));
  if (!WaitUntil([&] { return machine_->layout().device_pid.load() != 0; }, absl::Seconds(10))) {
    return absl::UnavailableError(absl::StrCat("the device did not start: ", device_->Stderr()));
  }
  return absl::OkStatus();
}

absl::Status SimCluster::StartKernel(int i, const std::vector<std::string>& extra_args) {
  ::unlink(kernel_socket(i).c_str());
  std::vector<std::string> argv = {RunfilePath("sim/nh-sim-kernel"), "--machine", machine_path_,
                                   "--node", node_id(i), "--socket", kernel_socket(i)};
  argv.insert(argv.end(), options_.kernel_flags.begin(), options_.kernel_flags.end());
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  auto kernel = Subprocess::Start(argv, dir_);
  if (!kernel.ok()) return kernel.status();
  kernels_[i] = std::make_unique<Subprocess>(std::move(*kernel));
  if (!WaitUntil([&] { return !kernels_[i]->running() || IsSocket(kernel_socket(i)); },
                 absl::Seconds(10)) ||
      !kernels_[i]->running()) {
    return absl::UnavailableError(
        absl::StrCat(node_id(i), "'s kernel did not start: ", kernels_[i]->Stderr()));
  }
  return absl::OkStatus();
}

absl::Status SimCluster::StartDaemon(int i) {
  auto daemon =
      Subprocess::Start({RunfilePath("daemon/nichandoverd"), "--config", config_path(i)}, dir_);
  if (!daemon.ok()) return daemon.status();
  daemons_[i] = std::make_unique<Subprocess>(std::move(*daemon));
  const std::string address = "unix:" + daemon_socket(i);
  if (!WaitUntil([&] { return !daemons_[i]->running() || IsServing(address); },
                 absl::Seconds(20)) ||
      !daemons_[i]->running()) {
    return absl::UnavailableError(
        absl::StrCat(node_id(i), "'s daemon did not come up: ", daemons_[i]->Stderr()));
  }
  return absl::OkStatus();
}

absl::Status SimCluster::StartAll() {
  if (absl::Status s = StartMachine(); !s.ok()) return s;
  // Kernels before daemons: the sim backend talks to its kernel at start.
  for (int i = 0; i < options_.nodes; ++i) {
    if (absl::Status s = StartKernel(i); !s.ok()) return s;
  }
  for (int i = 0; i < options_.nodes; ++i) {
    if (absl::Status s = StartDaemon(i); !s.ok()) return s;
  }
  return absl::OkStatus();
}

CommandResult SimCluster::Nicctl(int i, const std::vector<std::string>& args,
                                 absl::Duration timeout) {
  std::vector<std::string> argv = {RunfilePath("cli/nicctl"), "--server",
                                   "unix:" + daemon_socket(i)};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, dir_, {}, timeout);
}

absl::Status SimCluster::StartTraffic(int pps) {
  ::unlink((dir_ + "/traffic.json").c_str());
  auto traffic = Subprocess::Start({RunfilePath("sim/nh-sim-traffic"), "--machine", machine_path_,
                                    "--pps", std::to_string(pps), "--report",
                                    dir_ + "/traffic.json"},
                                   dir_);
  if (!traffic.ok()) return traffic.status();
  traffic_ = std::make_unique<Subprocess>(std::move(*traffic));
  // Running once it claimed the machine (after it set up its signals): a
  // StopTraffic right after must not kill it before it can report.
  if (!WaitUntil([&] {
        return !traffic_->running() || machine_->layout().traffic_pid.load() == traffic_->pid();
      }, absl::Seconds(30)) ||
      !traffic_->running()) {
    return absl::UnavailableError(absl::StrCat("nh-sim-traffic did not start: ", traffic_->Stderr()));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrafficResult> SimCluster::StopTraffic() {
  if (!traffic_) return absl::FailedPreconditionError("no traffic runs");
  traffic_->Signal(SIGTERM);
  auto code = traffic_->Wait(absl::Seconds(15));
  if (!code.ok()) return code.status();
  if (*code != 0) {
    return absl::InternalError(absl::StrCat("nh-sim-traffic exited with ", *code, ": ",
                                            traffic_->Stderr()));
  }
  return ParseTrafficReport(ReadFile(dir_ + "/traffic.json"));
}

uint64_t SimCluster::Delivered(int node) const {
  uint64_t total = 0;
  for (const auto& count : machine_->node(node).delivered) total += count.load();
  return total;
}

int SimCluster::InterruptNode(int nic) const {
  sim::NicState& state = machine_->nic(nic);
  sim::SimConfigSpace config(state, machine_->layout().device_bell);
  sim::SimBarMemory bars(state, machine_->layout().device_bell);
  absl::StatusOr<v1::InterruptLayout> layout = pci::DecodeInterruptLayout(config, &bars);
  if (!layout.ok() || !layout->enabled() || layout->vectors_size() == 0) return sim::kNoNode;
  int node = sim::kNoNode;
  for (const auto& v : layout->vectors()) {
    pci::X86MsiMessage msg = pci::DecodeX86Msi(v.message().address(), v.message().data());
    int here = msg.IsInterruptAddress() ? machine_->NodeOfApicId(msg.destination_apic_id)
                                        : sim::kNoNode;
    if (here == sim::kNoNode || (node != sim::kNoNode && here != node)) return sim::kNoNode;
    node = here;
  }
  return node;
}

uint64_t SimCluster::RxDelivered(int node) const {
  return machine_->node(node).counters.rx_delivered.load();
}

uint64_t SimCluster::DriverXmits(int node) const {
  return machine_->node(node).counters.driver_xmits.load();
}

namespace {

std::unique_ptr<sim::v1::KernelControl::Stub> KernelStub(const std::string& socket) {
  return sim::v1::KernelControl::NewStub(
      grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
}

absl::Status FromGrpc(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

// Long enough for a kernel thread a loaded 2-core machine left unscheduled.
constexpr absl::Duration kKernelCallDeadline = absl::Seconds(30);

}  // namespace

absl::Status SimCluster::InjectFault(int node, const std::string& point,
                                     const std::string& action) {
  sim::v1::InjectFaultRequest request;
  request.set_point(point);
  request.set_action(action);
  sim::v1::Empty response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kKernelCallDeadline));
  return FromGrpc(KernelStub(kernel_socket(node))->InjectFault(&context, request, &response),
                  absl::StrCat(node_id(node), "'s kernel: InjectFault ", point, " ", action));
}

absl::StatusOr<sim::v1::StatusResponse> SimCluster::KernelStatus(int node, int nic) {
  sim::v1::StatusRequest request;
  request.set_bdf(nic_bdf(nic));
  sim::v1::StatusResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kKernelCallDeadline));
  absl::Status s = FromGrpc(KernelStub(kernel_socket(node))->Status(&context, request, &response),
                            absl::StrCat(node_id(node), "'s kernel: Status"));
  if (!s.ok()) return s;
  return response;
}

absl::Status SimCluster::RingDoorbell(int node, int nic, uint64_t epoch) {
  CommandResult rung = RunCommand({RunfilePath("sim/nh-sim-machine"), "doorbell", "--path",
                                   machine_path_, "--node", node_id(node), "--nic",
                                   std::to_string(nic), "--epoch", std::to_string(epoch)},
                                  dir_);
  if (rung.exit_code != 0) {
    return absl::InternalError(absl::StrCat("nh-sim-machine doorbell: ", rung.err));
  }
  return absl::OkStatus();
}

std::string SimCluster::Logs() const {
  std::string logs;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ignored)) {
    if (entry.path().extension() != ".err") continue;
    std::string text = ReadFile(entry.path().string());
    if (text.size() > 4000) text = "..." + text.substr(text.size() - 4000);
    absl::StrAppend(&logs, "---- ", entry.path().filename().string(), "\n", text);
  }
  return logs;
}

}  // namespace testing
}  // namespace nichandover
