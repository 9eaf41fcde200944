// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum iSCSI,
// ext4 and LevelDB use: it catches the bit flips and torn writes a journal
// must detect, and a 1 KiB table is all it needs.
#ifndef NICHANDOVER_DAEMON_JOURNAL_CRC32C_H_
#define NICHANDOVER_DAEMON_JOURNAL_CRC32C_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace nichandover {
namespace journal {

// Continues a CRC over `data`: Crc32cExtend(Crc32c(a), b) == Crc32c(a + b).
// Start with crc = 0.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size);

inline uint32_t Crc32c(absl::string_view data) {
  return Crc32cExtend(0, data.data(), data.size());
}

}  // namespace journal
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_JOURNAL_CRC32C_H_
