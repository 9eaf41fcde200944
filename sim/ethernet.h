// The wire's frames (guest_abi.h, "The wire"): the NIC is an Ethernet NIC
// whose link partner is the machine's traffic peer. Every packet buffer holds
// one Ethernet frame; the peer speaks one protocol, ethertype
// NH_SIM_ETHERTYPE, whose payload starts with a WirePacket. Used by the
// device (RX: writes frames; TX: parses them) and by the simulated kernels
// (the driver side), so both sides build and parse frames the same way a
// guest does.
#ifndef NICHANDOVER_SIM_ETHERNET_H_
#define NICHANDOVER_SIM_ETHERNET_H_

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>

#include "sim/machine_layout.h"

namespace nichandover {
namespace sim {

using MacAddress = std::array<uint8_t, 6>;

inline constexpr uint32_t kEthernetHeaderSize = 14;
// The shortest frame (without FCS): shorter ones are padded with zeros.
inline constexpr uint32_t kMinFrameSize = 60;
inline constexpr uint16_t kWireEthertype = NH_SIM_ETHERTYPE;
inline constexpr MacAddress kWirePeerMac = NH_SIM_WIRE_PEER_MAC;
static_assert(kEthernetHeaderSize + sizeof(WirePacket) <= kPacketBufferSize,
              "a wire frame must fit a buffer");

// Writes the frame dst, src, NH_SIM_ETHERTYPE, `packet` (padded to
// kMinFrameSize) into `buffer` (kPacketBufferSize bytes); returns its length.
inline uint32_t WriteWireFrame(const MacAddress& dst, const MacAddress& src,
                               const WirePacket& packet, uint8_t* buffer) {
  std::memcpy(buffer, dst.data(), 6);
  std::memcpy(buffer + 6, src.data(), 6);
  buffer[12] = kWireEthertype >> 8;  // network byte order
  buffer[13] = kWireEthertype & 0xff;
  std::memcpy(buffer + kEthernetHeaderSize, &packet, sizeof(packet));
  uint32_t length = kEthernetHeaderSize + sizeof(packet);
  if (length < kMinFrameSize) {
    std::memset(buffer + length, 0, kMinFrameSize - length);
    length = kMinFrameSize;
  }
  return length;
}

// The WirePacket a frame of `length` bytes carries, or nullopt when it is not
// a wire frame (another ethertype, or too short or too long for a buffer).
inline std::optional<WirePacket> ReadWireFrame(const uint8_t* buffer, uint32_t length) {
  if (length < kEthernetHeaderSize + sizeof(WirePacket) || length > kPacketBufferSize) {
    return std::nullopt;
  }
  if (buffer[12] != (kWireEthertype >> 8) || buffer[13] != (kWireEthertype & 0xff)) {
    return std::nullopt;
  }
  WirePacket packet;
  std::memcpy(&packet, buffer + kEthernetHeaderSize, sizeof(packet));
  return packet;
}

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_ETHERNET_H_
