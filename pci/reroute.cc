#include "pci/reroute.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pci/interrupt_layout.h"
#include "pci/msi.h"

namespace nichandover {
namespace pci {
namespace {

using Kind = RegisterOp::Kind;
using Space = RegisterOp::Space;

RegisterOp ConfigOp(Kind kind, uint32_t offset, int width, uint32_t value, uint32_t vector,
                    std::string what) {
  RegisterOp op;
  op.kind = kind;
  op.space = Space::kConfig;
  op.offset = offset;
  op.width = width;
  op.value = value;
  op.vector = vector;
  op.what = std::move(what);
  return op;
}

RegisterOp BarOp(Kind kind, int bar, uint64_t offset, uint32_t value, uint32_t vector,
                 std::string what) {
  RegisterOp op;
  op.kind = kind;
  op.space = Space::kBar;
  op.bar = bar;
  op.offset = offset;
  op.width = 4;
  op.value = value;
  op.vector = vector;
  op.what = std::move(what);
  return op;
}

// Appends a write and its read-back check.
void WriteAndVerify(std::vector<RegisterOp>& ops, RegisterOp write) {
  RegisterOp verify = write;
  verify.kind = Kind::kVerify;
  ops.push_back(std::move(write));
  ops.push_back(std::move(verify));
}

bool IsRemappable(const RawMsiMessage& m) {
  return DecodeX86Msi(m).IsInterruptAddress() && DecodeX86Msi(m).remappable;
}

absl::Status CheckTargets(const std::vector<RawMsiMessage>& previous,
                          const std::vector<RawMsiMessage>& target) {
  for (uint32_t i = 0; i < previous.size(); ++i) {
    if (IsRemappable(previous[i])) return RemappableRefusal(i, previous[i], "device's current");
  }
  for (uint32_t i = 0; i < target.size(); ++i) {
    const X86MsiMessage decoded = DecodeX86Msi(target[i]);
    if (!decoded.IsInterruptAddress()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "target message %u: address 0x%016x is not an x86 interrupt address (0xfeexxxxx)", i,
          target[i].address));
    }
    if (decoded.remappable) return RemappableRefusal(i, target[i], "target");
  }
  return absl::OkStatus();
}

// ---- MSI-X ----

void MsixEntryOps(std::vector<RegisterOp>& ops, const MsixCapability& cap, uint32_t i,
                  const RawMsiMessage& message, uint32_t masked_control,
                  uint32_t final_control) {
  const int bar = static_cast<int>(cap.table_bar());
  const uint64_t base = cap.EntryOffset(i);
  const std::string entry = absl::StrFormat("MSI-X entry %u", i);
  WriteAndVerify(ops, BarOp(Kind::kWrite, bar, base + 12, masked_control, i, entry + " vector control (mask)"));
  ops.push_back(BarOp(Kind::kWrite, bar, base, static_cast<uint32_t>(message.address), i, entry + " address low"));
  ops.push_back(BarOp(Kind::kWrite, bar, base + 4, static_cast<uint32_t>(message.address >> 32), i, entry + " address high"));
  ops.push_back(BarOp(Kind::kWrite, bar, base + 8, message.data, i, entry + " data"));
  ops.push_back(BarOp(Kind::kVerify, bar, base, static_cast<uint32_t>(message.address), i, entry + " address low"));
  ops.push_back(BarOp(Kind::kVerify, bar, base + 4, static_cast<uint32_t>(message.address >> 32), i, entry + " address high"));
  ops.push_back(BarOp(Kind::kVerify, bar, base + 8, message.data, i, entry + " data"));
  if (final_control != masked_control) {
    WriteAndVerify(ops, BarOp(Kind::kWrite, bar, base + 12, final_control, i, entry + " vector control (unmask)"));
  }
}

void MsixPendingOps(std::vector<RegisterOp>& ops, const MsixCapability& cap, uint32_t count) {
  for (uint32_t i = 0; i < count; ++i) {
    RegisterOp op = BarOp(Kind::kReadPending, static_cast<int>(cap.pba_bar()),
                          cap.pba_offset() + 4ull * (i / 32), 0, i,
                          absl::StrFormat("MSI-X PBA bit %u", i));
    op.bit = i % 32;
    ops.push_back(std::move(op));
  }
}

absl::StatusOr<ReroutePlan> PlanMsix(const MsixCapability& cap, BarMemory* bars,
                                     const std::vector<RawMsiMessage>& target) {
  if (bars == nullptr) {
    return absl::FailedPreconditionError(
        "the MSI-X table lives in BAR memory and no BAR access was given (on Linux the kernel "
        "module provides it)");
  }
  if (target.empty() || target.size() > cap.table_size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "MSI-X reroute needs 1..%u target messages, got %u", cap.table_size(), target.size()));
  }
  ReroutePlan plan;
  plan.mode = v1::INTERRUPT_MODE_MSIX;
  plan.target = target;
  std::vector<uint32_t> controls;
  for (uint32_t i = 0; i < target.size(); ++i) {
    absl::StatusOr<MsixTableEntry> entry = ReadMsixEntry(*bars, cap, i);
    if (!entry.ok()) return entry.status();
    plan.previous.push_back({entry->address(), entry->data});
    controls.push_back(entry->vector_control);
  }
  if (absl::Status s = CheckTargets(plan.previous, target); !s.ok()) return s;
  for (uint32_t i = 0; i < target.size(); ++i) {
    const uint32_t masked = controls[i] | kMsixVectorControlMask;
    MsixEntryOps(plan.forward, cap, i, target[i], masked, masked);
    MsixEntryOps(plan.inverse, cap, i, plan.previous[i], masked, controls[i]);
  }
  MsixPendingOps(plan.forward, cap, target.size());
  MsixPendingOps(plan.inverse, cap, target.size());
  return plan;
}

// ---- MSI ----

absl::Status CheckMsiTargets(const MsiCapability& cap, const std::vector<RawMsiMessage>& target) {
  const uint32_t n = cap.vectors_enabled();
  if (target.size() != n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "MSI moves all %u enabled vectors together; got %u target messages", n, target.size()));
  }
  for (uint32_t i = 0; i < n; ++i) {
    if (target[i].address != target[0].address) {
      return absl::InvalidArgumentError(
          "MSI vectors share one address: every target message must have the same address");
    }
    if (target[i].data > 0xffff) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "target message %u: data 0x%x does not fit MSI's 16-bit data register", i,
          target[i].data));
    }
    if (target[i].data != ((target[0].data & ~(n - 1)) | i) || (target[0].data & (n - 1)) != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "multiple-message MSI needs %u consecutive vectors starting at a multiple of %u", n, n));
    }
  }
  if (!cap.is_64bit() && (target[0].address >> 32) != 0) {
    return absl::InvalidArgumentError("a 32-bit MSI capability cannot hold a 64-bit address");
  }
  return absl::OkStatus();
}

void MsiAddressOps(std::vector<RegisterOp>& ops, const MsiCapability& cap, uint64_t address) {
  WriteAndVerify(ops, ConfigOp(Kind::kWrite, cap.address_low_offset(), 4,
                               static_cast<uint32_t>(address), 0, "MSI address low"));
  if (cap.is_64bit()) {
    WriteAndVerify(ops, ConfigOp(Kind::kWrite, cap.address_high_offset(), 4,
                                 static_cast<uint32_t>(address >> 32), 0, "MSI address high"));
  }
}

void MsiDataOps(std::vector<RegisterOp>& ops, const MsiCapability& cap, uint32_t data) {
  WriteAndVerify(ops, ConfigOp(Kind::kWrite, cap.data_offset(), 2, data, 0, "MSI data"));
}

void MsiPendingOps(std::vector<RegisterOp>& ops, const MsiCapability& cap) {
  for (uint32_t i = 0; i < cap.vectors_enabled(); ++i) {
    RegisterOp op = ConfigOp(Kind::kReadPending, cap.pending_offset(), 4, 0, i,
                             absl::StrFormat("MSI pending bit %u", i));
    op.bit = i;
    ops.push_back(std::move(op));
  }
}

// Masked update: mask, write, verify, then (inverse only) the old mask back.
void MaskedMsiOps(std::vector<RegisterOp>& ops, const MsiCapability& cap,
                  const RawMsiMessage& message, uint32_t masked_bits, uint32_t final_bits) {
  WriteAndVerify(ops, ConfigOp(Kind::kWrite, cap.mask_offset(), 4, masked_bits, 0, "MSI mask bits (mask)"));
  MsiAddressOps(ops, cap, message.address);
  MsiDataOps(ops, cap, message.data);
  if (final_bits != masked_bits) {
    WriteAndVerify(ops, ConfigOp(Kind::kWrite, cap.mask_offset(), 4, final_bits, 0, "MSI mask bits (unmask)"));
  }
  MsiPendingOps(ops, cap);
}

// Unmasked update from `from` to `to`, one register at a time. Returns
// whether the move needed two steps (both vector and destination changed).
bool UnmaskedMsiOps(std::vector<RegisterOp>& ops, const MsiCapability& cap,
                    const RawMsiMessage& from, const RawMsiMessage& to) {
  const bool data_changes = from.data != to.data;
  const bool address_changes = from.address != to.address;
  if (data_changes) MsiDataOps(ops, cap, to.data);  // new vector, old destination first
  if (address_changes) MsiAddressOps(ops, cap, to.address);
  return data_changes && address_changes;
}

absl::StatusOr<ReroutePlan> PlanMsi(const MsiCapability& cap,
                                    const std::vector<RawMsiMessage>& target) {
  ReroutePlan plan;
  plan.mode = v1::INTERRUPT_MODE_MSI;
  plan.target = target;
  for (uint32_t i = 0; i < cap.vectors_enabled(); ++i) {
    plan.previous.push_back({cap.address(), cap.DataForVector(i)});
  }
  if (absl::Status s = CheckTargets(plan.previous, target); !s.ok()) return s;
  if (absl::Status s = CheckMsiTargets(cap, target); !s.ok()) return s;
  // The data register holds the base: vector 0's data.
  const RawMsiMessage from{cap.address(), cap.data};
  const RawMsiMessage to = target[0];
  if (cap.per_vector_masking()) {
    const uint32_t vector_bits =
        cap.vectors_enabled() >= 32 ? 0xffffffffu : (1u << cap.vectors_enabled()) - 1;
    const uint32_t masked = cap.mask_bits | vector_bits;
    MaskedMsiOps(plan.forward, cap, to, masked, masked);
    MaskedMsiOps(plan.inverse, cap, from, masked, cap.mask_bits);
  } else {
    plan.replay_required = UnmaskedMsiOps(plan.forward, cap, from, to);
    UnmaskedMsiOps(plan.inverse, cap, to, from);
  }
  return plan;
}

absl::StatusOr<uint32_t> ReadOp(const RegisterOp& op, ConfigSpace& config, BarMemory* bars) {
  if (op.space == Space::kBar) {
    if (bars == nullptr) return absl::FailedPreconditionError("no BAR access");
    return bars->Read32(op.bar, op.offset);
  }
  if (op.width == 2) {
    absl::StatusOr<uint16_t> v = config.Read16(static_cast<uint32_t>(op.offset));
    if (!v.ok()) return v.status();
    return *v;
  }
  return config.Read32(static_cast<uint32_t>(op.offset));
}

absl::Status WriteOp(const RegisterOp& op, ConfigSpace& config, BarMemory* bars) {
  if (op.space == Space::kBar) {
    if (bars == nullptr) return absl::FailedPreconditionError("no BAR access");
    return bars->Write32(op.bar, op.offset, op.value);
  }
  if (op.width == 2) {
    return config.Write16(static_cast<uint32_t>(op.offset), static_cast<uint16_t>(op.value));
  }
  return config.Write32(static_cast<uint32_t>(op.offset), op.value);
}

}  // namespace

absl::Status RemappableRefusal(uint32_t vector, const RawMsiMessage& message, const char* whose) {
  return absl::FailedPreconditionError(absl::StrFormat(
      "interrupt remapping is on: the %s message of vector %u (address 0x%016x) is in the "
      "remappable format and carries IRTE handle 0x%04x, so the route lives in the IOMMU's "
      "interrupt remapping table: the IRTE must be edited instead of the device's MSI message",
      whose, vector, message.address, DecodeX86Msi(message).irte_handle));
}

absl::StatusOr<ReroutePlan> PlanReroute(ConfigSpace& config, BarMemory* bars,
                                        const std::vector<RawMsiMessage>& target) {
  absl::StatusOr<DeviceInterrupts> device = ReadDeviceInterrupts(config);
  if (!device.ok()) return device.status();
  switch (device->mode()) {
    case v1::INTERRUPT_MODE_MSIX:
      return PlanMsix(*device->msix, bars, target);
    case v1::INTERRUPT_MODE_MSI:
      return PlanMsi(*device->msi, target);
    default:
      return absl::FailedPreconditionError(
          "neither MSI nor MSI-X is enabled: the device signals legacy INTx, which cannot be "
          "routed to another node's CPU");
  }
}

absl::StatusOr<ApplyOutcome> ApplyRegisterOps(const std::vector<RegisterOp>& ops,
                                              ConfigSpace& config, BarMemory* bars) {
  ApplyOutcome outcome;
  for (const RegisterOp& op : ops) {
    if (op.kind == Kind::kWrite) {
      if (absl::Status s = WriteOp(op, config, bars); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat("writing ", op.what, ": ", s.message()));
      }
      continue;
    }
    absl::StatusOr<uint32_t> value = ReadOp(op, config, bars);
    if (!value.ok()) {
      return absl::Status(value.status().code(),
                          absl::StrCat("reading ", op.what, ": ", value.status().message()));
    }
    if (op.kind == Kind::kVerify && *value != op.value) {
      return absl::AbortedError(absl::StrFormat(
          "%s reads back 0x%0*x after writing 0x%0*x: the device did not take the write", op.what,
          op.width * 2, *value, op.width * 2, op.value));
    }
    if (op.kind == Kind::kReadPending && ((*value >> op.bit) & 1)) {
      outcome.pending_vectors.push_back(op.vector);
    }
  }
  return outcome;
}

absl::StatusOr<ReroutePlan> Reroute(ConfigSpace& config, BarMemory* bars,
                                    const std::vector<RawMsiMessage>& target,
                                    ApplyOutcome* outcome) {
  absl::StatusOr<ReroutePlan> plan = PlanReroute(config, bars, target);
  if (!plan.ok()) return plan.status();
  absl::StatusOr<ApplyOutcome> applied = ApplyRegisterOps(plan->forward, config, bars);
  if (!applied.ok()) return applied.status();
  applied->replay_required = plan->replay_required;
  if (outcome != nullptr) *outcome = *applied;
  return plan;
}

absl::StatusOr<ApplyOutcome> Restore(ConfigSpace& config, BarMemory* bars,
                                     const ReroutePlan& plan) {
  absl::StatusOr<ApplyOutcome> applied = ApplyRegisterOps(plan.inverse, config, bars);
  if (!applied.ok()) return applied.status();
  applied->replay_required = plan.replay_required;
  return applied;
}

}  // namespace pci
}  // namespace nichandover
