#include "daemon/journal/file_journal.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/journal/crc32c.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace journal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr uint64_t kHeaderBytes = 16;

std::string TestPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
  unlink(path.c_str());
  unlink((path + ".compact").c_str());
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// Writes `records` through a journal and closes it; returns the file bytes.
std::string MakeJournal(const std::string& path, const std::vector<std::string>& records) {
  auto journal = FileJournal::Open(path, nullptr);
  EXPECT_TRUE(journal.ok()) << journal.status();
  EXPECT_TRUE((*journal)->Append(records).ok());
  EXPECT_TRUE((*journal)->Sync().ok());
  journal->reset();
  return ReadFile(path);
}

std::vector<std::string> Reopen(const std::string& path, RecoveredJournal* recovered = nullptr) {
  RecoveredJournal local;
  if (recovered == nullptr) recovered = &local;
  auto journal = FileJournal::Open(path, recovered);
  EXPECT_TRUE(journal.ok()) << journal.status();
  return recovered->records;
}

TEST(FileJournalTest, CreatesAnEmptyJournalWithAHeader) {
  std::string path = TestPath("new.journal");
  RecoveredJournal recovered;
  auto journal = FileJournal::Open(path, &recovered);
  ASSERT_TRUE(journal.ok()) << journal.status();
  EXPECT_THAT(recovered.records, IsEmpty());
  EXPECT_TRUE(recovered.created);
  EXPECT_EQ((*journal)->Stats().size_bytes, kHeaderBytes);
  EXPECT_EQ(ReadFile(path), JournalHeader());
  journal->reset();
  // An existing journal, even without records, was not lost.
  ASSERT_TRUE(FileJournal::Open(path, &recovered).ok());
  EXPECT_FALSE(recovered.created);
}

TEST(FileJournalTest, RecordsRoundTripInOrder) {
  std::string path = TestPath("roundtrip.journal");
  std::string binary("\0\x01\xff\n\r", 5);
  std::vector<std::string> records = {"intent: offer nic 0000:03:00.0", "", binary,
                                      std::string(100000, 'x')};
  {
    auto journal = FileJournal::Open(path, nullptr);
    ASSERT_TRUE(journal.ok()) << journal.status();
    ASSERT_TRUE((*journal)->Append({records[0], records[1]}).ok());
    ASSERT_TRUE((*journal)->Append({records[2], records[3]}).ok());
    ASSERT_TRUE((*journal)->Sync().ok());
    EXPECT_EQ((*journal)->Stats().records, 4u);
  }
  RecoveredJournal recovered;
  EXPECT_EQ(Reopen(path, &recovered), records);
  EXPECT_EQ(recovered.truncated_bytes, 0u);
}

TEST(FileJournalTest, OneSyncPerBatchAndNoneWhenNothingIsPending) {
  std::string path = TestPath("syncs.journal");
  auto journal = FileJournal::Open(path, nullptr);
  ASSERT_TRUE(journal.ok()) << journal.status();
  ASSERT_TRUE((*journal)->Append({"a", "b", "c"}).ok());
  ASSERT_TRUE((*journal)->Sync().ok());
  ASSERT_TRUE((*journal)->Sync().ok());
  EXPECT_EQ((*journal)->Stats().syncs, 1u);
  ASSERT_TRUE((*journal)->Append({"d"}).ok());
  ASSERT_TRUE((*journal)->Sync().ok());
  EXPECT_EQ((*journal)->Stats().syncs, 2u);
}

TEST(FileJournalTest, AppendsAfterReopenFollowTheOldRecords) {
  std::string path = TestPath("reopen.journal");
  MakeJournal(path, {"one", "two"});
  {
    auto journal = FileJournal::Open(path, nullptr);
    ASSERT_TRUE(journal.ok()) << journal.status();
    ASSERT_TRUE((*journal)->Append({"three"}).ok());
    ASSERT_TRUE((*journal)->Sync().ok());
  }
  EXPECT_THAT(Reopen(path), ElementsAre("one", "two", "three"));
}

// A crash can stop the last write after any byte: every such file must open
// with the earlier records intact, the partial one cut off, and take appends.
TEST(FileJournalTest, TornLastRecordIsTruncatedAtEveryByteOffset) {
  std::string path = TestPath("torn.journal");
  std::string full = MakeJournal(path, {"first record", "second record", "the last record, torn"});
  size_t last_start = full.size() - FrameRecord("the last record, torn").size();
  for (size_t cut = last_start + 1; cut < full.size(); ++cut) {
    SCOPED_TRACE(absl::StrCat("file cut at byte ", cut));
    WriteFile(path, full.substr(0, cut));
    RecoveredJournal recovered;
    auto journal = FileJournal::Open(path, &recovered);
    ASSERT_TRUE(journal.ok()) << journal.status();
    EXPECT_THAT(recovered.records, ElementsAre("first record", "second record"));
    EXPECT_EQ(recovered.truncated_at, last_start);
    EXPECT_EQ(recovered.truncated_bytes, cut - last_start);
    EXPECT_EQ(ReadFile(path).size(), last_start);
    ASSERT_TRUE((*journal)->Append({"after the crash"}).ok());
    ASSERT_TRUE((*journal)->Sync().ok());
    journal->reset();
    EXPECT_THAT(Reopen(path), ElementsAre("first record", "second record", "after the crash"));
  }
}

// Issue 16.8: a last record whose bytes are all there but whose checksum
// fails was damaged after it was written: refused like damage in the middle.
TEST(FileJournalTest, BadChecksumOnACompleteLastRecordIsRefused) {
  std::string path = TestPath("badtail.journal");
  std::string full = MakeJournal(path, {"kept", "damaged at the tail"});
  for (size_t flip : {full.size() - 3, full.size() - FrameRecord("damaged at the tail").size() + 5}) {
    SCOPED_TRACE(absl::StrCat("bit flipped at byte ", flip));
    std::string damaged = full;
    damaged[flip] ^= 0x10;
    WriteFile(path, damaged);
    RecoveredJournal recovered;
    auto journal = FileJournal::Open(path, &recovered);
    ASSERT_FALSE(journal.ok());
    EXPECT_EQ(journal.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(journal.status().message()),
                ::testing::HasSubstr("fails its checksum"));
    EXPECT_EQ(ReadFile(path), damaged) << "the damaged journal must stay as it is";
  }
}

// A crash after the file grew but before its data blocks were written can
// leave a tail of zeros (delayed allocation): also a torn tail.
TEST(FileJournalTest, ZeroFilledTailIsTruncated) {
  std::string path = TestPath("zerotail.journal");
  std::string full = MakeJournal(path, {"kept one", "kept two"});
  WriteFile(path, full + std::string(4096, '\0'));
  RecoveredJournal recovered;
  EXPECT_THAT(Reopen(path, &recovered), ElementsAre("kept one", "kept two"));
  EXPECT_EQ(recovered.truncated_bytes, 4096u);
  EXPECT_EQ(ReadFile(path), full);
}

// Damage followed by intact records is not a crash: refuse, and say where.
TEST(FileJournalTest, FlippedBitInTheMiddleIsRefusedNamingFileAndOffset) {
  std::string path = TestPath("middle.journal");
  std::string full = MakeJournal(path, {"first", "second, to be damaged", "third", "fourth"});
  size_t second_start = kHeaderBytes + FrameRecord("first").size();
  size_t second_size = FrameRecord("second, to be damaged").size();
  // Every bit of the damaged record: its length, its CRC and its payload.
  for (size_t byte = second_start; byte < second_start + second_size; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      SCOPED_TRACE(absl::StrCat("byte ", byte, " bit ", bit));
      std::string damaged = full;
      damaged[byte] = static_cast<char>(damaged[byte] ^ (1 << bit));
      WriteFile(path, damaged);
      auto journal = FileJournal::Open(path, nullptr);
      ASSERT_FALSE(journal.ok());
      EXPECT_EQ(journal.status().code(), absl::StatusCode::kDataLoss);
      EXPECT_THAT(journal.status().message(), HasSubstr(path));
      EXPECT_THAT(journal.status().message(),
                  HasSubstr(absl::StrCat("corrupt record at byte offset ", second_start)));
      EXPECT_EQ(ReadFile(path), damaged) << "a refused journal must be left as found";
    }
  }
}

TEST(FileJournalTest, RefusesAFileThatIsNotAJournal) {
  std::string path = TestPath("foreign.journal");
  WriteFile(path, "node_id: \"node0\"\nlisten: \"unix:/run/x.sock\"\n");
  auto journal = FileJournal::Open(path, nullptr);
  ASSERT_FALSE(journal.ok());
  EXPECT_EQ(journal.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(journal.status().message(), HasSubstr("not a nichandover journal"));
}

TEST(FileJournalTest, RefusesAnUnknownFormatVersion) {
  std::string path = TestPath("version.journal");
  // A well-formed header of a future version 2 (valid header CRC).
  std::string header = JournalHeader().substr(0, 8) + std::string("\x02\0\0\0", 4);
  uint32_t crc = Crc32c(header);
  for (int i = 0; i < 4; ++i) header.push_back(static_cast<char>((crc >> (8 * i)) & 0xFF));
  WriteFile(path, header);
  auto journal = FileJournal::Open(path, nullptr);
  ASSERT_FALSE(journal.ok());
  EXPECT_EQ(journal.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(journal.status().message(), HasSubstr("format version 2"));
}

TEST(FileJournalTest, HeaderTornAtCreationIsRewritten) {
  std::string path = TestPath("tornheader.journal");
  WriteFile(path, JournalHeader().substr(0, 5));
  RecoveredJournal recovered;
  auto journal = FileJournal::Open(path, &recovered);
  ASSERT_TRUE(journal.ok()) << journal.status();
  EXPECT_THAT(recovered.records, IsEmpty());
  EXPECT_EQ(ReadFile(path), JournalHeader());
}

TEST(FileJournalTest, SecondOpenOfAJournalInUseIsRefused) {
  std::string path = TestPath("locked.journal");
  auto first = FileJournal::Open(path, nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = FileJournal::Open(path, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("in use by another process"));
  first->reset();
  EXPECT_TRUE(FileJournal::Open(path, nullptr).ok());
}

TEST(FileJournalTest, CompactionKeepsOnlyTheLiveRecordsAndShrinksTheFile) {
  std::string path = TestPath("compact.journal");
  auto journal = FileJournal::Open(path, nullptr);
  ASSERT_TRUE(journal.ok()) << journal.status();
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE((*journal)->Append({absl::StrCat("handover ", i, " step record")}).ok());
  }
  ASSERT_TRUE((*journal)->Sync().ok());
  uint64_t before = (*journal)->Stats().size_bytes;
  ASSERT_TRUE((*journal)->Compact({"snapshot: node0 owns 0000:03:00.0 at epoch 9", "history"}).ok());
  JournalStats stats = (*journal)->Stats();
  EXPECT_EQ(stats.records, 2u);
  EXPECT_EQ(stats.compactions, 1u);
  EXPECT_LT(stats.size_bytes, before);
  EXPECT_EQ(stats.size_bytes, ReadFile(path).size());
  EXPECT_FALSE(FileExists(path + ".compact"));
  // The journal goes on in the compacted file.
  ASSERT_TRUE((*journal)->Append({"after compaction"}).ok());
  ASSERT_TRUE((*journal)->Sync().ok());
  journal->reset();
  EXPECT_THAT(Reopen(path), ElementsAre("snapshot: node0 owns 0000:03:00.0 at epoch 9", "history",
                                        "after compaction"));
}

TEST(FileJournalTest, CompactedJournalStaysLockedAgainstASecondInstance) {
  std::string path = TestPath("compactlock.journal");
  auto journal = FileJournal::Open(path, nullptr);
  ASSERT_TRUE(journal.ok()) << journal.status();
  ASSERT_TRUE((*journal)->Compact({"live"}).ok());
  auto second = FileJournal::Open(path, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
}

// A crash during compaction, before the rename, leaves the old journal and a
// temporary file: the old journal wins and the leftover is removed.
TEST(FileJournalTest, InterruptedCompactionLeavesTheOldJournal) {
  std::string path = TestPath("interrupted.journal");
  MakeJournal(path, {"old one", "old two"});
  WriteFile(path + ".compact", JournalHeader() + FrameRecord("half-written new journal"));
  EXPECT_THAT(Reopen(path), ElementsAre("old one", "old two"));
  EXPECT_FALSE(FileExists(path + ".compact"));
}

TEST(FileJournalTest, OversizedRecordIsRejectedAndChangesNothing) {
  std::string path = TestPath("oversized.journal");
  auto journal = FileJournal::Open(path, nullptr);
  ASSERT_TRUE(journal.ok()) << journal.status();
  absl::Status status = (*journal)->Append({"fine", std::string(kMaxRecordBytes + 1, 'x')});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE((*journal)->Sync().ok());
  journal->reset();
  EXPECT_THAT(Reopen(path), IsEmpty());
}

}  // namespace
}  // namespace journal
}  // namespace nichandover
