// nicctl nics | nic show | msi show
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "cli/commands.h"
#include "cli/context.h"
#include "cli/handover_text.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "pci/bdf.h"
#include "pci/dump_file.h"
#include "pci/interrupt_layout.h"
#include "pci/render.h"

namespace nichandover {
namespace cli {
namespace {

constexpr char kNicNotFoundHint[] =
    "name the NIC by BDF (0000:03:00.0 or 03:00.0) or network interface; 'nicctl nics' "
    "lists them";

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }
// " (eth0)" for a NIC with a network interface, "" otherwise.
std::string OrPrefix(const std::string& netdev) {
  return netdev.empty() ? "" : " (" + netdev + ")";
}

std::string DeviceIds(const v1::Nic& nic) {
  return absl::StrFormat("%04x:%04x", nic.vendor_id(), nic.device_id());
}

// GetNic with the failure already reported; nullopt-like false on error.
bool GetNic(Context& ctx, const std::string& name, v1::Nic* nic, int* rc) {
  auto* service = ctx.NodeService();
  if (service == nullptr) {
    *rc = kExitUsage;
    return false;
  }
  v1::GetNicRequest request;
  request.set_nic(name);
  auto call = ctx.NewCall();
  grpc::Status status = service->GetNic(call.get(), request, nic);
  if (!status.ok()) {
    *rc = ctx.Fail(status, absl::StrCat("NIC '", name, "'"),
                   status.error_code() == grpc::StatusCode::NOT_FOUND ||
                           status.error_code() == grpc::StatusCode::INVALID_ARGUMENT
                       ? kNicNotFoundHint
                       : "");
    return false;
  }
  return true;
}

int RunNics(Context& ctx) {
  auto* service = ctx.NodeService();
  if (service == nullptr) return kExitUsage;
  v1::ListNicsResponse response;
  auto call = ctx.NewCall();
  grpc::Status status = service->ListNics(call.get(), v1::ListNicsRequest(), &response);
  if (!status.ok()) return ctx.Fail(status, "listing NICs");
  if (ctx.json()) {
    ctx.PrintJson(response);
    return kExitOk;
  }
  Table table({"BDF", "DEVICE", "DRIVER", "NETDEV", "OWNER", "EPOCH", "INTERRUPTS",
               "DESTINATION"});
  for (const auto& nic : response.nics()) {
    table.AddRow({nic.bdf(), DeviceIds(nic), OrDash(nic.driver()), OrDash(nic.netdev()),
                  OwnershipText(nic.ownership()),
                  nic.ownership().epoch() ? absl::StrCat(nic.ownership().epoch()) : "-",
                  InterruptModeText(nic.interrupts()), DestinationText(nic.interrupts())});
  }
  table.Print(ctx.out());
  return kExitOk;
}

// One line per recent handover: "ID  committed  node0 -> node1  epoch 1 -> 2  48.2ms".
void PrintRecentHandovers(Context& ctx, const v1::Nic& nic) {
  if (nic.recent_handovers_size() == 0) {
    ctx.out() << "recent handovers: none\n";
    return;
  }
  ctx.out() << "recent handovers (newest first):\n";
  Table table({"  ID", "PHASE", "SOURCE", "TARGET", "EPOCH", "TOTAL", "REASON"});
  for (const auto& id : nic.recent_handovers()) {
    v1::GetHandoverRequest request;
    request.set_handover_id(id);
    v1::Handover h;
    auto call = ctx.NewCall();
    if (!ctx.NodeService()->GetHandover(call.get(), request, &h).ok()) {
      table.AddRow({"  " + id, "?", "", "", "", "", ""});
      continue;
    }
    table.AddRow({"  " + id, PhaseText(h.phase()), h.source_node(), h.target_node(),
                  absl::StrCat(h.from_epoch(), " -> ", h.to_epoch()),
                  DurationText(TotalTime(h)), OrDash(h.error().reason())});
  }
  table.Print(ctx.out());
}

int RunNicShow(Context& ctx) {
  v1::Nic nic;
  int rc = kExitOk;
  if (!GetNic(ctx, ctx.args()[0], &nic, &rc)) return rc;
  if (ctx.json()) {
    ctx.PrintJson(nic);
    return kExitOk;
  }
  auto row = [&](const char* key, const std::string& value) {
    ctx.out() << absl::StrFormat("%-12s %s\n", key, value);
  };
  row("nic", nic.bdf());
  row("device", absl::StrFormat("%s class %06x%s", DeviceIds(nic), nic.class_code(),
                                nic.description().empty() ? "" : "  " + nic.description()));
  row("driver", OrDash(nic.driver()));
  row("netdev", OrDash(nic.netdev()));
  row("owner", OwnershipText(nic.ownership()));
  row("epoch", absl::StrCat(nic.ownership().epoch()));
  if (nic.held_for_maintenance()) {
    row("maintenance", "quiesced for maintenance ('nicctl nic resume " + nic.bdf() + "')");
  }
  row("interrupts", InterruptModeText(nic.interrupts()));
  row("destination", DestinationText(nic.interrupts()));
  for (const auto& line : pci::RenderInterruptLayout(nic.interrupts())) {
    ctx.out() << "  " << line << "\n";
  }
  PrintRecentHandovers(ctx, nic);
  return kExitOk;
}

// Time the client allows beyond the drain bound: the daemon reads the record
// first and describes the NIC afterwards.
constexpr absl::Duration kMaintenanceGrace = absl::Seconds(10);

// nicctl nic quiesce / resume: one NodeService call, then the NIC it returns.
int RunMaintenance(Context& ctx, bool quiesce) {
  auto* service = ctx.NodeService();
  if (service == nullptr) return kExitUsage;
  const std::string& name = ctx.args()[0];
  auto call = ctx.NewCall();
  v1::Nic nic;
  grpc::Status status;
  if (quiesce) {
    v1::QuiesceNicRequest request;
    request.set_nic(name);
    if (ctx.HasFlag("timeout")) {
      auto drain = ParseUserDuration(ctx.Flag("timeout"));
      if (!drain.ok()) return ctx.UsageError(absl::StrCat("--timeout: ", drain.status().message()));
      request.mutable_timeout()->set_seconds(absl::ToInt64Seconds(*drain));
      request.mutable_timeout()->set_nanos(
          static_cast<int32_t>(absl::ToInt64Nanoseconds(*drain % absl::Seconds(1))));
      // The drain may take longer than an ordinary call.
      absl::Time deadline = absl::Now() + *drain + kMaintenanceGrace;
      if (absl::FromChrono(call->deadline()) < deadline) {
        call->set_deadline(absl::ToChronoTime(deadline));
      }
    }
    status = service->QuiesceNic(call.get(), request, &nic);
  } else {
    v1::ResumeNicRequest request;
    request.set_nic(name);
    status = service->ResumeNic(call.get(), request, &nic);
  }
  if (!status.ok()) {
    const char* hint = "";
    if (status.error_code() == grpc::StatusCode::NOT_FOUND ||
        status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      hint = kNicNotFoundHint;
    } else if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      hint = "only the NIC's owner quiesces it, and not while a handover of it runs; "
             "'nicctl nic show NIC' shows the owner";
    }
    return ctx.Fail(status, absl::StrCat(quiesce ? "quiescing" : "resuming", " NIC '", name, "'"),
                    hint);
  }
  if (ctx.json()) {
    ctx.PrintJson(nic);
    return kExitOk;
  }
  if (quiesce) {
    ctx.out() << nic.bdf() << OrPrefix(nic.netdev()) << " quiesced for maintenance on "
              << nic.ownership().owner_node() << " (epoch " << nic.ownership().epoch()
              << "): no transmit, no NAPI poll, interrupts masked\n"
              << "resume it with 'nicctl nic resume " << nic.bdf()
              << "'; handovers of it are refused until then\n";
  } else {
    ctx.out() << nic.bdf() << OrPrefix(nic.netdev()) << " running on "
              << nic.ownership().owner_node() << " (epoch " << nic.ownership().epoch() << ")\n";
  }
  return kExitOk;
}

int RunNicQuiesce(Context& ctx) { return RunMaintenance(ctx, /*quiesce=*/true); }
int RunNicResume(Context& ctx) { return RunMaintenance(ctx, /*quiesce=*/false); }

// {"devices": [{"bdf": ..., "description": ..., "interrupts": {InterruptLayout}}]}:
// one shape for the daemon's view and for dump files, fields in this order.
class DevicesJson {
 public:
  void Add(const std::string& bdf, const std::string& description,
           const v1::InterruptLayout& layout) {
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    options.always_print_primitive_fields = true;
    options.add_whitespace = true;
    std::string interrupts;
    (void)google::protobuf::util::MessageToJsonString(layout, &interrupts, options);
    while (!interrupts.empty() && interrupts.back() == '\n') interrupts.pop_back();
    absl::StrAppend(&devices_, devices_.empty() ? "" : ",\n", "  {\n   \"bdf\": ", Quote(bdf),
                    ",\n   \"description\": ", Quote(description),
                    ",\n   \"interrupts\": ", absl::StrReplaceAll(interrupts, {{"\n", "\n   "}}),
                    "\n  }");
  }
  std::string Document() const {
    return absl::StrCat("{\n \"devices\": [", devices_.empty() ? "" : "\n", devices_,
                        devices_.empty() ? "" : "\n ", "]\n}\n");
  }

 private:
  // A JSON string literal, escaped by protobuf's own JSON writer.
  static std::string Quote(const std::string& text) {
    google::protobuf::Value value;
    value.set_string_value(text);
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(value, &json);
    return json;
  }
  std::string devices_;
};

void PrintDeviceText(Context& ctx, const std::string& header, const v1::InterruptLayout& layout) {
  ctx.out() << header << "\n";
  for (const auto& line : pci::RenderInterruptLayout(layout)) ctx.out() << "\t" << line << "\n";
}

int RunMsiShowDump(Context& ctx) {
  const std::string path = ctx.Flag("dump");
  auto dump = pci::DumpFile::Load(path);
  if (!dump.ok()) {
    ctx.err() << "nicctl: dump file " << path << ": " << dump.status().message() << "\n";
    ctx.err() << "  hint: give a file written by 'lspci -xxx' (or -xxxx, -vvv -xxx)\n";
    return dump.status().code() == absl::StatusCode::kNotFound ? kExitNotFound : kExitUsage;
  }
  std::vector<const pci::DumpDevice*> devices;
  if (!ctx.args().empty()) {
    auto bdf = pci::ParseBdf(ctx.args()[0]);
    if (!bdf.ok()) return ctx.UsageError(absl::StrCat("BDF: ", bdf.status().message()));
    const pci::DumpDevice* device = dump->Find(*bdf);
    if (device == nullptr) {
      ctx.err() << "nicctl: no device " << bdf->ToString() << " in " << path << "\n"
                << "  hint: run without a BDF to see every device in the file\n";
      return kExitNotFound;
    }
    devices.push_back(device);
  } else {
    for (const auto& d : dump->devices()) devices.push_back(&d);
  }
  DevicesJson doc;
  int rc = kExitOk;
  for (const pci::DumpDevice* device : devices) {
    auto config = pci::ConfigSpaceOf(*device);
    auto layout = pci::DecodeInterruptLayout(*config, nullptr);
    const std::string bdf = device->bdf.ToString();
    if (!layout.ok()) {
      ctx.err() << "nicctl: " << bdf << " (line " << device->line
                << "): cannot decode: " << layout.status().message() << "\n";
      rc = kExitError;
      continue;
    }
    if (ctx.json()) {
      doc.Add(bdf, device->description, *layout);
    } else {
      PrintDeviceText(ctx, absl::StrCat(bdf, " ", device->description), *layout);
    }
  }
  if (ctx.json()) ctx.out() << doc.Document();
  return rc;
}

int RunMsiShow(Context& ctx) {
  if (ctx.HasFlag("dump")) return RunMsiShowDump(ctx);
  if (ctx.args().empty()) {
    return ctx.UsageError("msi show needs a NIC, or --dump FILE; see 'nicctl msi show --help'");
  }
  v1::Nic nic;
  int rc = kExitOk;
  if (!GetNic(ctx, ctx.args()[0], &nic, &rc)) return rc;
  if (ctx.json()) {
    DevicesJson doc;
    doc.Add(nic.bdf(), nic.description(), nic.interrupts());
    ctx.out() << doc.Document();
    return kExitOk;
  }
  PrintDeviceText(ctx,
                  absl::StrCat(nic.bdf(), " ", DeviceIds(nic),
                               nic.netdev().empty() ? "" : " " + nic.netdev(), ", owner ",
                               OwnershipText(nic.ownership())),
                  nic.interrupts());
  return kExitOk;
}

}  // namespace

std::vector<CommandSpec> NicCommands() {
  return {
      {{"nics"},
       "",
       "List the NICs this node sees: BDF, driver, netdev, owner, epoch, interrupts",
       "One row per PCI function the node's platform backend knows. OWNER is the\n"
       "ownership record (\"node0 (active)\", or source -> target while a handover\n"
       "runs), EPOCH its fencing token, INTERRUPTS the mode and vector count, and\n"
       "DESTINATION the node and APIC IDs the vectors point at now.",
       {},
       0,
       0,
       RunNics},
      {{"nic", "show"},
       "NIC",
       "Show everything known about one NIC, with its interrupt routing and recent handovers",
       "NIC is a BDF (0000:03:00.0 or 03:00.0) or the NIC's network interface name\n"
       "on the node (eth1).",
       {},
       1,
       1,
       RunNicShow},
      {{"nic", "quiesce"},
       "NIC [--timeout D]",
       "Stop a NIC this node owns for maintenance, without handing it over",
       "The hook gates transmit, waits for the TX completions (at most --timeout,\n"
       "the daemon's quiesce timeout by default), stops NAPI polling and masks the\n"
       "NIC's interrupts; the ownership record stays as it is. The NIC stays stopped\n"
       "until 'nicctl nic resume', and handovers of it are refused until then. Only\n"
       "on the owner, and not while a handover of the NIC runs. Quiescing a NIC that\n"
       "is already held succeeds at once. A drain that misses --timeout fails and\n"
       "the NIC runs again. A daemon restart resumes the NIC.",
       {{"timeout", "D", "bound of the drain (e.g. 2s); not how long the NIC stays stopped"}},
       1,
       1,
       RunNicQuiesce},
      {{"nic", "resume"},
       "NIC",
       "Run a NIC again after 'nicctl nic quiesce'",
       "The exact reverse of the quiesce: interrupts unmasked, NAPI polling and\n"
       "transmit reopened. Resuming a NIC that is not held succeeds and changes\n"
       "nothing. A failed resume leaves the NIC held; retry it.",
       {},
       1,
       1,
       RunNicResume},
      {{"msi", "show"},
       "[NIC | --dump FILE [BDF]]",
       "Decode a NIC's MSI/MSI-X capability and where each vector points",
       "With NIC, asks the daemon (which also reads the MSI-X table in BAR memory).\n"
       "With --dump FILE, decodes a config-space dump offline ('lspci -xxx' output,\n"
       "e.g. from another machine), every device in it or only BDF; no daemon needed.\n"
       "MSI-X vectors live in BAR memory, so a dump shows the capability only.",
       {{"dump", "FILE", "decode the config space in FILE (lspci -x/-xxx/-xxxx format)"}},
       0,
       1,
       RunMsiShow},
  };
}

}  // namespace cli
}  // namespace nichandover
