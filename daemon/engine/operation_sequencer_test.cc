#include "daemon/engine/operation_sequencer.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace nichandover {
namespace engine {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(OperationSequencerTest, IncarnationStartsAtOneAndGrowsAtEveryStart) {
  const std::string path = TempPath("grows");
  std::remove(path.c_str());
  EXPECT_EQ(*OperationSequencer::NextIncarnation(path), 1u);
  EXPECT_EQ(*OperationSequencer::NextIncarnation(path), 2u);
  EXPECT_EQ(*OperationSequencer::NextIncarnation(path), 3u);
  EXPECT_EQ(ReadFile(path), "3\n");
}

TEST(OperationSequencerTest, IdsGrowWithinAndAcrossIncarnations) {
  const std::string path = TempPath("ids");
  std::remove(path.c_str());
  OperationSequencer first(*OperationSequencer::NextIncarnation(path));
  const uint64_t a = first.Next();
  const uint64_t b = first.Next();
  EXPECT_LT(a, b);
  EXPECT_EQ(a >> 32, 1u);
  // Many ids later the first daemon crashes; its successor's ids are higher
  // than any of them (a late call of the first is fenced).
  uint64_t last = b;
  for (int i = 0; i < 10000; ++i) last = first.Next();
  OperationSequencer second(*OperationSequencer::NextIncarnation(path));
  EXPECT_GT(second.Next(), last);
}

TEST(OperationSequencerTest, RefusesAFileThatHoldsNoNumber) {
  const std::string path = TempPath("garbage");
  WriteFile(path, "twelve\n");
  EXPECT_EQ(OperationSequencer::NextIncarnation(path).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadFile(path), "twelve\n");  // left as it was
  WriteFile(path, "4294967296\n");
  EXPECT_EQ(OperationSequencer::NextIncarnation(path).status().code(), absl::StatusCode::kDataLoss);
}

TEST(OperationSequencerTest, RefusesToWrapAround) {
  const std::string path = TempPath("last");
  WriteFile(path, "4294967295\n");
  EXPECT_EQ(OperationSequencer::NextIncarnation(path).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(OperationSequencerTest, AMissingDirectoryIsNotFound) {
  EXPECT_EQ(
      OperationSequencer::NextIncarnation(TempPath("no/such/dir/incarnation")).status().code(),
      absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace engine
}  // namespace nichandover
