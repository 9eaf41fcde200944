#include "daemon/journal/memory_journal.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace journal {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(MemoryJournalTest, OnlySyncedRecordsSurviveACrash) {
  MemoryJournal journal({"from before"});
  ASSERT_TRUE(journal.Append({"synced"}).ok());
  ASSERT_TRUE(journal.Sync().ok());
  ASSERT_TRUE(journal.Append({"not synced"}).ok());
  EXPECT_THAT(journal.DurableRecords(), ElementsAre("from before", "synced"));
  EXPECT_THAT(journal.AllRecords(), ElementsAre("from before", "synced", "not synced"));
  EXPECT_EQ(journal.Stats().syncs, 1u);
}

TEST(MemoryJournalTest, FailedSyncBreaksTheJournalForGood) {
  MemoryJournal journal;
  ASSERT_TRUE(journal.Append({"a"}).ok());
  journal.FailNextSync(absl::InternalError("fdatasync: EIO"));
  EXPECT_EQ(journal.Sync().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(journal.Sync().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(journal.Append({"b"}).code(), absl::StatusCode::kInternal);
  EXPECT_THAT(journal.DurableRecords(), IsEmpty());
}

TEST(MemoryJournalTest, FailedAppendFailsOnceAndAddsNothing) {
  MemoryJournal journal;
  journal.FailNextAppend(absl::ResourceExhaustedError("disk full"));
  EXPECT_EQ(journal.Append({"lost"}).code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(journal.Append({"kept"}).ok());
  ASSERT_TRUE(journal.Sync().ok());
  EXPECT_THAT(journal.DurableRecords(), ElementsAre("kept"));
}

TEST(MemoryJournalTest, CompactionReplacesEverythingDurably) {
  MemoryJournal journal({"old"});
  ASSERT_TRUE(journal.Append({"pending"}).ok());
  ASSERT_TRUE(journal.Compact({"live"}).ok());
  EXPECT_THAT(journal.AllRecords(), ElementsAre("live"));
  EXPECT_THAT(journal.DurableRecords(), ElementsAre("live"));
  EXPECT_EQ(journal.Stats().records, 1u);
}

}  // namespace
}  // namespace journal
}  // namespace nichandover
