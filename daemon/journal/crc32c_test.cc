#include "daemon/journal/crc32c.h"

#include <string>

#include "gtest/gtest.h"

namespace nichandover {
namespace journal {
namespace {

// Check values from RFC 3720 (iSCSI), appendix B.4, and the common
// "123456789" check value of the CRC catalogue.
TEST(Crc32cTest, MatchesPublishedVectors) {
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(descending), 0x113FDB5Cu);
}

TEST(Crc32cTest, ExtendEqualsOneShot) {
  std::string data = "nichandover journal record";
  for (size_t split = 0; split <= data.size(); ++split) {
    uint32_t first = Crc32cExtend(0, data.data(), split);
    EXPECT_EQ(Crc32cExtend(first, data.data() + split, data.size() - split), Crc32c(data))
        << "split at " << split;
  }
}

TEST(Crc32cTest, EveryFlippedBitChangesTheChecksum) {
  std::string data = "ACTIVE(node0, 7) -> PREPARING(node0, node1, 8)";
  uint32_t good = Crc32c(data);
  for (size_t byte = 0; byte < data.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = data;
      flipped[byte] = static_cast<char>(flipped[byte] ^ (1 << bit));
      EXPECT_NE(Crc32c(flipped), good) << "byte " << byte << " bit " << bit;
    }
  }
}

}  // namespace
}  // namespace journal
}  // namespace nichandover
