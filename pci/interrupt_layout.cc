#include "pci/interrupt_layout.h"

#include "pci/capabilities.h"

namespace nichandover {
namespace pci {
namespace {

void AddVector(v1::InterruptLayout& layout, uint32_t index, uint64_t address, uint32_t data,
               bool masked, bool pending) {
  v1::InterruptVector* vector = layout.add_vectors();
  vector->set_index(index);
  vector->mutable_message()->set_address(address);
  vector->mutable_message()->set_data(data);
  *vector->mutable_route() = ToDecodedRoute(DecodeX86Msi(address, data));
  vector->set_masked(masked);
  vector->set_pending(pending);
}

void DescribeMsi(const MsiCapability& msi, v1::InterruptLayout& layout) {
  layout.set_capability_offset(msi.offset);
  layout.set_enabled(msi.enabled());
  layout.set_vectors_supported(msi.vectors_capable());
  layout.set_vectors_enabled(msi.vectors_enabled());
  layout.set_address_64bit(msi.is_64bit());
  layout.set_per_vector_masking(msi.per_vector_masking());
  for (uint32_t i = 0; i < msi.vectors_enabled(); ++i) {
    AddVector(layout, i, msi.address(), msi.DataForVector(i),
              msi.per_vector_masking() && ((msi.mask_bits >> i) & 1),
              msi.per_vector_masking() && ((msi.pending_bits >> i) & 1));
  }
}

void DescribeMsix(const MsixCapability& msix, BarMemory* bars, v1::InterruptLayout& layout) {
  layout.set_capability_offset(msix.offset);
  layout.set_enabled(msix.enabled());
  layout.set_vectors_supported(msix.table_size());
  layout.set_vectors_enabled(msix.table_size());
  layout.set_address_64bit(true);
  layout.set_per_vector_masking(true);
  layout.set_function_masked(msix.function_masked());
  layout.set_table_bar(msix.table_bar());
  layout.set_table_offset(msix.table_offset());
  layout.set_pba_bar(msix.pba_bar());
  layout.set_pba_offset(msix.pba_offset());
  if (bars == nullptr) return;
  v1::InterruptLayout with_vectors = layout;
  for (uint32_t i = 0; i < msix.table_size(); ++i) {
    absl::StatusOr<MsixTableEntry> entry = ReadMsixEntry(*bars, msix, i);
    absl::StatusOr<bool> pending = ReadMsixPending(*bars, msix, i);
    if (!entry.ok() || !pending.ok()) return;  // table unreadable: no vectors
    AddVector(with_vectors, i, entry->address(), entry->data, entry->masked(), *pending);
  }
  layout = std::move(with_vectors);
}

}  // namespace

v1::InterruptMode DeviceInterrupts::mode() const {
  if (msix.has_value() && msix->enabled()) return v1::INTERRUPT_MODE_MSIX;
  if (msi.has_value() && msi->enabled()) return v1::INTERRUPT_MODE_MSI;
  return v1::INTERRUPT_MODE_INTX;
}

absl::StatusOr<DeviceInterrupts> ReadDeviceInterrupts(ConfigSpace& config) {
  const CapabilityWalk walk = WalkCapabilities(config);
  DeviceInterrupts device;
  absl::StatusOr<Capability> msi = FindCapability(walk, CapabilityList::kStandard, kCapIdMsi);
  absl::StatusOr<Capability> msix = FindCapability(walk, CapabilityList::kStandard, kCapIdMsix);
  for (const absl::StatusOr<Capability>* found : {&msi, &msix}) {
    if (!found->ok() && found->status().code() != absl::StatusCode::kNotFound) {
      return found->status();
    }
  }
  if (msi.ok()) {
    absl::StatusOr<MsiCapability> decoded = ReadMsiCapability(config, msi->offset);
    if (!decoded.ok()) return decoded.status();
    device.msi = *decoded;
  }
  if (msix.ok()) {
    absl::StatusOr<MsixCapability> decoded = ReadMsixCapability(config, msix->offset);
    if (!decoded.ok()) return decoded.status();
    device.msix = *decoded;
  }
  return device;
}

absl::StatusOr<v1::InterruptLayout> DecodeInterruptLayout(ConfigSpace& config, BarMemory* bars) {
  absl::StatusOr<DeviceInterrupts> device = ReadDeviceInterrupts(config);
  if (!device.ok()) return device.status();
  v1::InterruptLayout layout;
  layout.set_mode(device->mode());
  const bool use_msix = device->mode() == v1::INTERRUPT_MODE_MSIX ||
                        (device->mode() == v1::INTERRUPT_MODE_INTX && device->msix.has_value());
  if (use_msix) {
    DescribeMsix(*device->msix, bars, layout);
    if (device->msi.has_value()) {
      v1::InterruptLayout* other = layout.mutable_other_capability();
      DescribeMsi(*device->msi, *other);
      other->set_mode(v1::INTERRUPT_MODE_MSI);
      other->clear_vectors();
    }
  } else if (device->msi.has_value()) {
    DescribeMsi(*device->msi, layout);
    if (device->msix.has_value()) {
      v1::InterruptLayout* other = layout.mutable_other_capability();
      DescribeMsix(*device->msix, /*bars=*/nullptr, *other);
      other->set_mode(v1::INTERRUPT_MODE_MSIX);
    }
  }
  return layout;
}

v1::DecodedRoute ToDecodedRoute(const X86MsiMessage& message) {
  v1::DecodedRoute route;
  route.set_x86_address(message.IsInterruptAddress());
  route.set_remappable(message.remappable);
  if (message.remappable) {
    route.set_irte_handle(message.irte_handle);
  } else {
    route.set_destination_apic_id(message.destination_apic_id);
    route.set_redirection_hint(message.redirection_hint);
    route.set_logical_destination(message.logical_destination);
  }
  route.set_vector(message.vector);
  route.set_delivery_mode(static_cast<v1::DeliveryMode>(message.delivery_mode));
  route.set_level_assert(message.level_assert);
  route.set_level_trigger(message.level_trigger);
  return route;
}

}  // namespace pci
}  // namespace nichandover
