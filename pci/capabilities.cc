#include "pci/capabilities.h"

#include <bitset>

#include "absl/strings/str_format.h"

namespace nichandover {
namespace pci {
namespace {

constexpr uint32_t kExtendedListStart = 0x100;

absl::Status NotCaptured(const ConfigSpace& config, uint32_t offset, const char* what) {
  return absl::FailedPreconditionError(absl::StrFormat(
      "%s at 0x%03x cannot be read: only %u bytes of config space are available "
      "(a short dump, or config space read without privileges)",
      what, offset, config.readable_size()));
}

void WalkStandard(ConfigSpace& config, CapabilityWalk& walk) {
  absl::StatusOr<uint16_t> status = config.Read16(kStatusRegister);
  absl::StatusOr<uint8_t> header_type = config.Read8(kHeaderTypeRegister);
  if (!status.ok() || !header_type.ok()) {
    walk.status = !status.ok() ? status.status() : header_type.status();
    return;
  }
  if (!config.IsReadable(0, kHeaderSize)) {
    walk.status = NotCaptured(config, 0, "the standard header");
    return;
  }
  if ((*status & kStatusCapabilityList) == 0) return;
  uint32_t pointer_register = kCapabilityPointer;
  switch (*header_type & 0x7f) {
    case 0:
    case 1:
      break;
    case 2:
      pointer_register = kCardbusCapabilityPointer;
      break;
    default:
      walk.status = absl::DataLossError(absl::StrFormat(
          "unknown header type 0x%02x: no capability pointer to follow", *header_type & 0x7f));
      return;
  }
  absl::StatusOr<uint8_t> first = config.Read8(pointer_register);
  if (!first.ok()) {
    walk.status = first.status();
    return;
  }
  std::bitset<kConventionalConfigSize / 4> visited;
  uint32_t offset = *first & ~3u;  // the low two bits are reserved
  uint32_t came_from = pointer_register;
  while (offset != 0) {
    if (offset < kHeaderSize) {
      walk.status = absl::DataLossError(absl::StrFormat(
          "capability pointer at 0x%02x points into the header (0x%02x < 0x40)", came_from,
          offset));
      return;
    }
    if (offset + 4 > kConventionalConfigSize) {  // cannot happen with & ~3, kept for clarity
      walk.status = absl::DataLossError(absl::StrFormat(
          "capability pointer at 0x%02x points past the end (0x%02x)", came_from, offset));
      return;
    }
    if (!config.IsReadable(offset, 4)) {
      walk.status = NotCaptured(config, offset, "capability");
      return;
    }
    if (visited[offset / 4]) {
      walk.status = absl::DataLossError(absl::StrFormat(
          "capability list loops: pointer at 0x%02x leads back to 0x%02x", came_from, offset));
      return;
    }
    visited[offset / 4] = true;
    absl::StatusOr<uint16_t> header = config.Read16(offset);
    if (!header.ok()) {
      walk.status = header.status();
      return;
    }
    const uint8_t id = *header & 0xff;
    if (id == 0xff) {
      walk.status = absl::DataLossError(absl::StrFormat(
          "capability list broken at 0x%02x (ID 0xff: the bytes read as all-ones)", offset));
      return;
    }
    walk.capabilities.push_back({CapabilityList::kStandard, id, offset, 0});
    if (id == kCapIdExpress) walk.express = true;
    came_from = offset + 1;
    offset = (*header >> 8) & ~3u;
  }
}

void WalkExtended(ConfigSpace& config, CapabilityWalk& walk) {
  if (config.size() < kExtendedConfigSize || !config.IsReadable(kExtendedListStart, 4)) {
    return;  // no extended space (conventional device, or a 256-byte dump)
  }
  std::bitset<kExtendedConfigSize / 4> visited;
  uint32_t offset = kExtendedListStart;
  uint32_t came_from = 0;
  while (true) {
    if (!config.IsReadable(offset, 4)) {
      walk.extended_status = NotCaptured(config, offset, "extended capability");
      return;
    }
    if (visited[offset / 4]) {
      walk.extended_status = absl::DataLossError(absl::StrFormat(
          "extended capability list loops: header at 0x%03x leads back to 0x%03x", came_from,
          offset));
      return;
    }
    visited[offset / 4] = true;
    absl::StatusOr<uint32_t> header = config.Read32(offset);
    if (!header.ok()) {
      walk.extended_status = header.status();
      return;
    }
    // All zeroes: no extended capabilities. All ones: the extended space is
    // not implemented behind this path (e.g. a PCIe device under a
    // conventional bridge); the kernel treats both as "none".
    if (*header == 0 || (*header == 0xffffffff && offset == kExtendedListStart)) return;
    if (*header == 0xffffffff) {
      walk.extended_status = absl::DataLossError(absl::StrFormat(
          "extended capability list broken at 0x%03x (reads as all-ones)", offset));
      return;
    }
    walk.capabilities.push_back({CapabilityList::kExtended, static_cast<uint16_t>(*header & 0xffff),
                                 offset, static_cast<uint8_t>((*header >> 16) & 0xf)});
    const uint32_t next = (*header >> 20) & 0xffc;
    if (next == 0) return;
    if (next < kExtendedListStart) {
      walk.extended_status = absl::DataLossError(absl::StrFormat(
          "extended capability at 0x%03x points into the standard space (0x%03x < 0x100)",
          offset, next));
      return;
    }
    came_from = offset;
    offset = next;
  }
}

}  // namespace

CapabilityWalk WalkCapabilities(ConfigSpace& config) {
  CapabilityWalk walk;
  WalkStandard(config, walk);
  if (walk.express) WalkExtended(config, walk);
  return walk;
}

absl::StatusOr<Capability> FindCapability(const CapabilityWalk& walk, CapabilityList list,
                                          uint16_t id) {
  for (const Capability& cap : walk.capabilities) {
    if (cap.list == list && cap.id == id) return cap;
  }
  const absl::Status& list_status =
      list == CapabilityList::kStandard ? walk.status : walk.extended_status;
  if (!list_status.ok()) return list_status;
  return absl::NotFoundError(absl::StrFormat("no %s capability 0x%02x",
                                             list == CapabilityList::kStandard ? "standard"
                                                                               : "extended",
                                             id));
}

absl::Status CheckStructure(const ConfigSpace& config, uint32_t offset, uint32_t length,
                            const char* what) {
  if (static_cast<uint64_t>(offset) + length > config.size() ||
      (offset < kConventionalConfigSize && offset + length > kConventionalConfigSize)) {
    return absl::DataLossError(absl::StrFormat(
        "%s at 0x%02x needs %u bytes and runs past the end of its config space", what, offset,
        length));
  }
  if (!config.IsReadable(offset, length)) return NotCaptured(config, offset, what);
  return absl::OkStatus();
}

}  // namespace pci
}  // namespace nichandover
