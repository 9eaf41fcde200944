// nh-sim-machine: the simulated machine's life cycle.
//
//   nh-sim-machine create --path P --node node0:0,1 --node node1:2,3
//                         --owner node0 [--ring-size 1024] [--bdf 0000:03:00.0]
//                         [--nics N] [--queues Q]
//   nh-sim-machine create --path P --nodes 3 [--cpus 2] --nics 64 --queues 2
//                         [--owner node0 | --owner spread]
//       --nodes N names them node0..N-1, each with --cpus APIC IDs (node i:
//       i*cpus ..); --owner spread gives NIC i to node i % N. NIC i is on
//       --bdf's bus + i.
//   nh-sim-machine run --path P       # the NIC (device model) until SIGTERM
//                      [--ivshmem-dir DIR [--guest NODE]...]
//       with --ivshmem-dir, QEMU guests attach to nodes through
//       DIR/<node>.sock (ivshmem-doorbell, see docs/simulator.md): to each
//       --guest NODE, or to every node when none is named.
//   nh-sim-machine show --path P [--json]  # nodes, record, MSI-X, counters
//       --json: one JSON object, per NIC its record and "timeline" (the
//       latest handover's steps, CLOCK_MONOTONIC ns, 0 = not reached), per
//       node its counters (with stale_doorbells).
//   nh-sim-machine doorbell --path P --node ID --nic I --epoch E
//       rings node ID's kernel commit doorbell for NIC I (index or BDF) at
//       epoch E by hand, as a source kernel's HandOff does (a kernel not
//       armed for exactly that ignores it and counts a stale doorbell).
//   nh-sim-machine inject --socket KERNEL_SOCK --point P --action A
//       InjectFault on a kernel started with --fault-injection (points
//       handoff-entry, handoff-before-doorbell, commit-after-cas; actions
//       hold, crash, drop-doorbell, release).
//   nh-sim-machine destroy --path P
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "grpcpp/grpcpp.h"
#include "kernel_control.grpc.pb.h"
#include "pci/interrupt_layout.h"
#include "pci/x86_msi.h"
#include "sim/config_space_image.h"
#include "sim/device.h"
#include "sim/doorbell.h"
#include "sim/flags.h"
#include "sim/interrupt_fabric.h"
#include "sim/ivshmem_server.h"
#include "sim/machine.h"
#include "sim/realtime.h"

namespace nichandover {
namespace sim {
namespace {

int Usage(const std::string& why) {
  std::fprintf(stderr,
               "nh-sim-machine: %s\n"
               "usage: nh-sim-machine create --path P --node ID:APIC[,APIC...] (repeat) --owner ID"
               " [--ring-size N] [--bdf BDF] [--nics N] [--queues Q]\n"
               "       nh-sim-machine create --path P --nodes N [--cpus C] [--nics N] [--queues Q]"
               " [--owner ID|spread] [--ring-size N] [--bdf BDF]\n"
               "       nh-sim-machine run --path P [--ivshmem-dir DIR [--guest NODE]...]"
               " [--realtime-priority N]\n"
               "       nh-sim-machine show --path P [--json]\n"
               "       nh-sim-machine doorbell --path P --node ID --nic I --epoch E\n"
               "       nh-sim-machine inject --socket KERNEL_SOCK --point P --action A\n"
               "       nh-sim-machine destroy --path P\n",
               why.c_str());
  return 2;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "nh-sim-machine: %s\n", status.ToString().c_str());
  return 1;
}

int Create(const Flags& flags) {
  MachineSpec spec;
  if (flags.Has("nodes")) {
    if (flags.Has("node")) return Usage("--nodes or --node, not both");
    auto count = flags.GetNumber("nodes", 0);
    auto cpus = flags.GetNumber("cpus", 2);
    if (!count.ok()) return Fail(count.status());
    if (!cpus.ok()) return Fail(cpus.status());
    if (*count < 1 || *count > kMaxNodes || *cpus < 1 || *cpus > kMaxApicIdsPerNode) {
      return Usage(absl::StrFormat("--nodes 1..%d, --cpus 1..%d", kMaxNodes, kMaxApicIdsPerNode));
    }
    for (int64_t i = 0; i < *count; ++i) {
      NodeSpec n;
      n.node_id = absl::StrCat("node", i);
      for (int64_t c = 0; c < *cpus; ++c) n.apic_ids.push_back(static_cast<uint32_t>(i * *cpus + c));
      spec.nodes.push_back(n);
    }
  } else if (flags.Has("cpus")) {
    return Usage("--cpus goes with --nodes");
  }
  for (const std::string& node : flags.GetAll("node")) {
    std::vector<std::string> parts = absl::StrSplit(node, ':');
    if (parts.size() != 2) return Usage("--node wants ID:APIC[,APIC...]");
    NodeSpec n;
    n.node_id = parts[0];
    for (absl::string_view apic : absl::StrSplit(parts[1], ',')) {
      uint32_t id;
      if (!absl::SimpleAtoi(apic, &id)) return Usage("bad APIC ID in --node " + node);
      n.apic_ids.push_back(id);
    }
    spec.nodes.push_back(n);
  }
  spec.initial_owner = flags.Get("owner", spec.nodes.empty() ? "" : spec.nodes[0].node_id);
  if (spec.initial_owner == "spread" && !spec.nodes.empty()) {
    spec.spread_owners = true;
    spec.initial_owner = spec.nodes[0].node_id;
  }
  auto ring = flags.GetNumber("ring-size", spec.ring_size);
  if (!ring.ok()) return Fail(ring.status());
  auto nics = flags.GetNumber("nics", 1);
  if (!nics.ok()) return Fail(nics.status());
  auto queues = flags.GetNumber("queues", 1);
  if (!queues.ok()) return Fail(queues.status());
  if (*ring < 0 || *nics < 0 || *queues < 0) return Usage("sizes must be positive");
  spec.ring_size = static_cast<uint32_t>(*ring);
  spec.nic_count = static_cast<uint32_t>(*nics);
  spec.queue_count = static_cast<uint32_t>(*queues);
  spec.bdf = flags.Get("bdf", spec.bdf);
  auto machine = Machine::Create(flags.Get("path"), spec);
  if (!machine.ok()) return Fail(machine.status());
  Machine& m = **machine;
  std::printf("created %s: %d nodes, %d NIC%s (%s%s), %d queue pair%s each, ring %d, owner %s, "
              "%llu MiB\n",
              flags.Get("path").c_str(), m.node_count(), m.nic_count(),
              m.nic_count() == 1 ? "" : "s", m.bdf(0).c_str(),
              m.nic_count() == 1 ? "" : (" .. " + m.bdf(m.nic_count() - 1)).c_str(),
              m.queue_count(), m.queue_count() == 1 ? "" : "s", spec.ring_size,
              spec.spread_owners ? "spread over the nodes" : spec.initial_owner.c_str(),
              static_cast<unsigned long long>(m.layout().total_size >> 20));
  return 0;
}

int Run(const Flags& flags) {
  // The device thread only (sim/realtime.h); the ivshmem server stays normal.
  auto realtime = ParseRealtimePriority(flags.Get("realtime-priority", "0"));
  if (!realtime.ok()) return Usage(std::string(realtime.status().message()));
  SetLogTag("device");
  BlockTerminationSignals();
  auto machine = Machine::Open(flags.Get("path"));
  if (!machine.ok()) return Fail(machine.status());
  int32_t none = 0;
  if (!(*machine)->layout().device_pid.compare_exchange_strong(none, getpid()) &&
      kill(none, 0) == 0) {
    return Fail(absl::FailedPreconditionError(
        absl::StrFormat("the device already runs as pid %d", none)));
  }
  (*machine)->layout().device_pid.store(getpid());
  std::unique_ptr<IvshmemServer> guests;
  if (flags.Has("ivshmem-dir") && (*machine)->queue_count() != 1) {
    // A guest's driver (hook/simnic) runs NIC 0's queue 0 only.
    (*machine)->layout().device_pid.store(0);
    return Fail(absl::FailedPreconditionError(absl::StrFormat(
        "QEMU guests drive one-queue NICs; this machine's have %d queues",
        (*machine)->queue_count())));
  }
  if (flags.Has("ivshmem-dir")) {
    std::vector<int> nodes;
    for (const std::string& node : flags.GetAll("guest")) {
      auto index = (*machine)->NodeIndex(node);
      if (!index.ok()) return Fail(index.status());
      nodes.push_back(*index);
    }
    if (nodes.empty()) {
      for (int i = 0; i < (*machine)->node_count(); ++i) nodes.push_back(i);
    }
    auto server = IvshmemServer::Start(**machine, flags.Get("ivshmem-dir"), nodes);
    if (!server.ok()) {
      (*machine)->layout().device_pid.store(0);
      return Fail(server.status());
    }
    guests = std::move(*server);
    NH_LOG(INFO) << "guests attach through " << flags.Get("ivshmem-dir") << "/<node>.sock";
  } else if (flags.Has("guest")) {
    return Usage("--guest needs --ivshmem-dir");
  }
  Device device(**machine, guests.get());
  std::atomic<bool> stop{false};
  std::thread hardware([&] { device.Run(stop); });
  if (absl::Status s = SetRealtimePriority(hardware.native_handle(), *realtime, "the device thread");
      !s.ok()) {
    stop = true;
    DoorbellRing((*machine)->layout().device_bell);
    hardware.join();
    (*machine)->layout().device_pid.store(0);
    return Fail(s);
  }
  NH_LOG(INFO) << (*machine)->nic_count() << " NIC(s) from " << (*machine)->bdf(0)
               << " powered on, " << (*machine)->queue_count() << " queue pair(s) each";
  WaitForTerminationSignal(-1);
  stop = true;
  hardware.join();
  guests.reset();
  (*machine)->layout().device_pid.store(0);
  return 0;
}

const char* StateName(OwnershipState state) {
  switch (state) {
    case OwnershipState::kActive:
      return "ACTIVE";
    case OwnershipState::kPreparing:
      return "PREPARING";
    case OwnershipState::kHandoff:
      return "HANDOFF";
    default:
      return "UNSPECIFIED";
  }
}

void ShowNic(Machine& m, int index) {
  NicState& nic = m.nic(index);
  Ownership record = m.ReadOwnership(index);
  const std::array<uint8_t, 6> mac = m.nic_mac(index);
  std::printf("NIC %s MAC %02x:%02x:%02x:%02x:%02x:%02x ring %d, %d queue pair%s: record %s "
              "owner=%s target=%s epoch=%llu, running on %s\n",
              m.bdf(index).c_str(), mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], m.ring_size(),
              nic.queue_count, nic.queue_count == 1 ? "" : "s", StateName(record.state),
              m.node_id(record.owner).c_str(), m.node_id(record.target).c_str(),
              static_cast<unsigned long long>(record.epoch),
              m.node_id(nic.running_node.load()).c_str());
  const DeviceRegisters& r = nic.regs;
  std::printf("  EIMS 0x%x; rx %llu missed %llu tx %llu; MSI sent %llu pended %llu replayed %llu;"
              " foreign TX frames %llu\n",
              r.eims.load(), (unsigned long long)r.rx_packets.load(),
              (unsigned long long)r.rx_missed.load(), (unsigned long long)r.tx_packets.load(),
              (unsigned long long)r.msi_sent.load(), (unsigned long long)r.msi_pended.load(),
              (unsigned long long)r.msi_replayed.load(),
              (unsigned long long)r.tx_foreign_frames.load());
  for (uint32_t q = 0; q < nic.queue_count; ++q) {
    const RingRegisters& ring = r.ring(q);
    const QueueStatistics& stats = r.queue_stats[q];
    std::printf("  queue %u (MSI-X entry %u): RDH %u RDT %u TDH %u TDT %u; rx %llu missed %llu "
                "tx %llu socket drops %llu\n",
                q, QueueVectorEntry(q), ring.rdh.load(), ring.rdt.load(), ring.tdh.load(),
                ring.tdt.load(), (unsigned long long)stats.rx_packets.load(),
                (unsigned long long)stats.rx_missed.load(),
                (unsigned long long)stats.tx_packets.load(),
                (unsigned long long)stats.rx_socket_drops.load());
  }
  SimConfigSpace config(nic, m.layout().device_bell);
  SimBarMemory bars(nic, m.layout().device_bell);
  auto layout = pci::DecodeInterruptLayout(config, &bars);
  if (!layout.ok()) return;
  std::printf("  MSI-X %s, %d entries (0 other, 1+q queue q):\n",
              layout->enabled() ? "enabled" : "disabled", layout->vectors_size());
  for (const auto& v : layout->vectors()) {
    pci::X86MsiMessage msg = pci::DecodeX86Msi(v.message().address(), v.message().data());
    int node = msg.IsInterruptAddress() ? m.NodeOfApicId(msg.destination_apic_id) : kNoNode;
    std::printf("    %d: %s -> %s%s%s\n", v.index(), pci::DescribeX86Msi(msg).c_str(),
                node == kNoNode ? "-" : m.node_id(node).c_str(), v.masked() ? " masked" : "",
                v.pending() ? " pending" : "");
  }
}

int Show(const Flags& flags) {
  auto opened = Machine::Open(flags.Get("path"));
  if (!opened.ok()) return Fail(opened.status());
  Machine& m = **opened;
  std::printf("machine %s (layout v%d, %llu bytes), %d nodes, %d NICs of %d queue pairs, "
              "device pid %d, unroutable MSIs %llu, guest doorbells (control) %llu\n",
              m.path().c_str(), kLayoutVersion,
              static_cast<unsigned long long>(m.layout().total_size), m.node_count(),
              m.nic_count(), m.queue_count(), m.layout().device_pid.load(),
              static_cast<unsigned long long>(m.layout().unroutable_msi.load()),
              static_cast<unsigned long long>(m.layout().control_doorbells.load()));
  for (int i = 0; i < m.nic_count(); ++i) ShowNic(m, i);
  for (int i = 0; i < m.node_count(); ++i) {
    NodeSlot& n = m.node(i);
    std::vector<uint32_t> apics(n.apic_ids, n.apic_ids + n.apic_count);
    std::vector<std::string> vectors;
    for (int v = 0; v < 256; ++v) {
      uint64_t count = n.delivered[v].load();
      if (count) vectors.push_back(absl::StrFormat("0x%02x:%d", v, count));
    }
    int running = 0;
    for (int nic = 0; nic < m.nic_count(); ++nic) running += m.nic(nic).running_node.load() == i;
    const NodeCounters& c = n.counters;
    std::string runs = n.kind.load() == NodeKind::kGuest
                           ? absl::StrFormat("guest (ivshmem peer %d)", n.peer_id.load())
                           : absl::StrFormat("kernel pid %d", n.kernel_pid.load());
    std::printf("node %s APIC %s %s, runs %d NIC%s: interrupts {%s} spurious %llu\n", n.node_id,
                absl::StrJoin(apics, ",").c_str(), runs.c_str(), running,
                running == 1 ? "" : "s", absl::StrJoin(vectors, " ").c_str(),
                (unsigned long long)n.spurious.load());
    std::printf("  polls %llu (max work %llu, while quiesced %llu, gated %llu) xmits %llu "
                "held %llu tx done %llu rx %llu socket drops %llu; handoff doorbells %llu "
                "(stale %llu)\n",
                (unsigned long long)c.napi_polls.load(), (unsigned long long)c.max_poll_work.load(),
                (unsigned long long)c.polls_while_quiesced.load(),
                (unsigned long long)c.gated_polls.load(), (unsigned long long)c.driver_xmits.load(),
                (unsigned long long)c.held_xmits.load(), (unsigned long long)c.tx_completed.load(),
                (unsigned long long)c.rx_delivered.load(),
                (unsigned long long)c.rx_socket_drops.load(),
                (unsigned long long)c.handoff_doorbells.load(),
                (unsigned long long)c.stale_doorbells.load());
  }
  return 0;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string TimelineJson(const HandoverTimeline& t) {
  std::vector<std::string> fields = {absl::StrFormat("\"epoch\": %d", t.epoch.load())};
  for (auto [name, field] : std::initializer_list<
           std::pair<const char*, const std::atomic<int64_t> HandoverTimeline::*>>{
           {"gate_closed_ns", &HandoverTimeline::gate_closed_ns},
           {"drained_ns", &HandoverTimeline::drained_ns},
           {"rerouted_ns", &HandoverTimeline::rerouted_ns},
           {"handed_off_ns", &HandoverTimeline::handed_off_ns},
           {"doorbell_ns", &HandoverTimeline::doorbell_ns},
           {"target_woken_ns", &HandoverTimeline::target_woken_ns},
           {"target_committed_ns", &HandoverTimeline::target_committed_ns},
           {"target_attached_ns", &HandoverTimeline::target_attached_ns},
           {"first_rx_poll_ns", &HandoverTimeline::first_rx_poll_ns}}) {
    fields.push_back(absl::StrFormat("\"%s\": %d", name, (t.*field).load()));
  }
  return "{" + absl::StrJoin(fields, ", ") + "}";
}

int ShowJson(Machine& m) {
  std::vector<std::string> nics;
  for (int i = 0; i < m.nic_count(); ++i) {
    const NicState& nic = m.nic(i);
    Ownership record = m.ReadOwnership(i);
    nics.push_back(absl::StrFormat(
        "{\"bdf\": %s, \"record\": {\"state\": \"%s\", \"owner\": %s, \"target\": %s, "
        "\"epoch\": %d}, \"running_node\": %s, \"timeline\": %s}",
        JsonString(m.bdf(i)), StateName(record.state), JsonString(m.node_id(record.owner)),
        JsonString(m.node_id(record.target)), record.epoch,
        JsonString(m.node_id(nic.running_node.load())), TimelineJson(nic.timeline)));
  }
  std::vector<std::string> nodes;
  for (int i = 0; i < m.node_count(); ++i) {
    NodeSlot& n = m.node(i);
    const NodeCounters& c = n.counters;
    nodes.push_back(absl::StrFormat(
        "{\"node\": %s, \"kernel_pid\": %d, \"counters\": {\"irqs_handled\": %d, "
        "\"napi_polls\": %d, \"polls_while_quiesced\": %d, \"held_xmits\": %d, "
        "\"tx_completed\": %d, \"rx_delivered\": %d, \"rx_socket_drops\": %d, "
        "\"handoff_doorbells\": %d, \"stale_doorbells\": %d}, \"spurious\": %d}",
        JsonString(n.node_id), n.kernel_pid.load(), c.irqs_handled.load(), c.napi_polls.load(),
        c.polls_while_quiesced.load(), c.held_xmits.load(), c.tx_completed.load(),
        c.rx_delivered.load(), c.rx_socket_drops.load(), c.handoff_doorbells.load(),
        c.stale_doorbells.load(), n.spurious.load()));
  }
  std::printf("{\"path\": %s, \"layout_version\": %d, \"nics\": [%s], \"nodes\": [%s]}\n",
              JsonString(m.path()).c_str(), kLayoutVersion, absl::StrJoin(nics, ", ").c_str(),
              absl::StrJoin(nodes, ", ").c_str());
  return 0;
}

int Inject(const Flags& flags) {
  if (!flags.Has("socket") || !flags.Has("point") || !flags.Has("action")) {
    return Usage("inject wants --socket, --point and --action");
  }
  auto kernel = v1::KernelControl::NewStub(grpc::CreateChannel(
      "unix:" + flags.Get("socket"), grpc::InsecureChannelCredentials()));
  v1::InjectFaultRequest request;
  request.set_point(flags.Get("point"));
  request.set_action(flags.Get("action"));
  v1::Empty empty;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Status status = kernel->InjectFault(&context, request, &empty);
  if (!status.ok()) {
    std::fprintf(stderr, "nh-sim-machine: inject: %s\n", status.error_message().c_str());
    // Bad point/action: a usage error; the kernel refusing: a failure.
    return status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? 2 : 1;
  }
  return 0;
}

int Doorbell(const Flags& flags) {
  if (!flags.Has("node") || !flags.Has("nic") || !flags.Has("epoch")) {
    return Usage("doorbell wants --node, --nic and --epoch");
  }
  auto opened = Machine::Open(flags.Get("path"));
  if (!opened.ok()) return Fail(opened.status());
  Machine& m = **opened;
  absl::StatusOr<int> node = m.NodeIndex(flags.Get("node"));
  if (!node.ok()) return Fail(node.status());
  int nic = -1;
  if (!absl::SimpleAtoi(flags.Get("nic"), &nic)) {
    absl::StatusOr<int> by_bdf = m.NicIndex(flags.Get("nic"));
    if (!by_bdf.ok()) return Fail(by_bdf.status());
    nic = *by_bdf;
  }
  uint64_t epoch = 0;
  if (nic < 0 || nic >= m.nic_count()) {
    return Usage(absl::StrFormat("--nic %d: the machine has NICs 0..%d", nic, m.nic_count() - 1));
  }
  if (!absl::SimpleAtoi(flags.Get("epoch"), &epoch) || epoch == 0 || epoch > kMaxEpoch) {
    return Usage("--epoch wants a positive epoch that fits 40 bits");
  }
  MsiOutcome outcome = InterruptFabric(m).RingHandoffDoorbell(*node, nic, epoch);
  std::printf("rang %s's doorbell for %s at epoch %llu: %s\n", flags.Get("node").c_str(),
              m.bdf(nic).c_str(), static_cast<unsigned long long>(epoch),
              outcome == MsiOutcome::kDelivered ? "delivered"
                                                : "no kernel took it (left in the mailbox)");
  return outcome == MsiOutcome::kDelivered ? 0 : 1;
}

int Main(int argc, char** argv) {
  auto flags = Flags::Parse(argc, argv,
                            {"path", "node", "nodes", "cpus", "owner", "ring-size", "bdf", "nics",
                             "queues", "ivshmem-dir", "guest", "json", "nic", "epoch", "socket",
                             "point", "action", "realtime-priority"},
                            /*booleans=*/{"json"});
  if (!flags.ok()) return Usage(std::string(flags.status().message()));
  if (flags->positional().size() != 1) {
    return Usage("one command: create, run, show, doorbell, inject, destroy");
  }
  const std::string& command = flags->positional()[0];
  if (command == "inject") return Inject(*flags);  // the kernel's socket, no machine
  if (!flags->Has("path")) return Usage("--path is required");
  if (command == "create") return Create(*flags);
  if (command == "run") return Run(*flags);
  if (command == "show") {
    if (flags->Has("json") && flags->Get("json") != "false") {
      auto opened = Machine::Open(flags->Get("path"));
      if (!opened.ok()) return Fail(opened.status());
      return ShowJson(**opened);
    }
    return Show(*flags);
  }
  if (command == "doorbell") return Doorbell(*flags);
  if (command == "destroy") {
    absl::Status s = Machine::Destroy(flags->Get("path"));
    return s.ok() ? 0 : Fail(s);
  }
  return Usage("unknown command " + command);
}

}  // namespace
}  // namespace sim
}  // namespace nichandover

int main(int argc, char** argv) { return nichandover::sim::Main(argc, argv); }
