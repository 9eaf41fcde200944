#include "daemon/platform/shared_file/shared_file_arbiter.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "daemon/protocol/records.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace platform {
namespace {

constexpr char kNic[] = "0000:03:00.0";

using protocol::ActiveRecord;
using protocol::HandoffRecord;
using protocol::PreparingRecord;
using protocol::SameRecord;

class SharedFileArbiterTest : public ::testing::Test {
 protected:
  SharedFileArbiterTest()
      : path_(::testing::TempDir() + "/arbiter-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()) {
    absl::Status created = SharedFileArbiter::Create(
        path_, {"node-a", "node-b", "node-c", "node-d"},
        {{"03:00.0", ActiveRecord("node-a", 1)}, {"0000:04:00.0", ActiveRecord("node-b", 7)}});
    EXPECT_TRUE(created.ok()) << created;
  }
  std::unique_ptr<SharedFileArbiter> OpenArbiter() {
    auto arbiter = SharedFileArbiter::Open(path_);
    EXPECT_TRUE(arbiter.ok()) << arbiter.status();
    return arbiter.ok() ? *std::move(arbiter) : nullptr;
  }

  std::string path_;
};

TEST_F(SharedFileArbiterTest, RecordsAreReadAsCreatedAndUnknownNicsAreNotFound) {
  auto arbiter = OpenArbiter();
  ASSERT_NE(arbiter, nullptr);
  EXPECT_EQ(arbiter->nodes(), (std::vector<std::string>{"node-a", "node-b", "node-c", "node-d"}));
  auto a = arbiter->Read(kNic);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(SameRecord(*a, ActiveRecord("node-a", 1)));
  auto b = arbiter->Read("04:00.0");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->owner_node(), "node-b");
  EXPECT_EQ(b->epoch(), 7u);
  EXPECT_EQ(arbiter->Read("0000:05:00.0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(arbiter->Read("eth0").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SharedFileArbiterTest, CompareAndSwapReplacesOnlyAnEqualRecord) {
  auto arbiter = OpenArbiter();
  ASSERT_NE(arbiter, nullptr);
  const auto active = ActiveRecord("node-a", 1);
  const auto preparing = PreparingRecord("node-a", "node-b", 2);

  auto won = arbiter->CompareAndSwap(kNic, active, preparing);
  ASSERT_TRUE(won.ok()) << won.status();
  EXPECT_TRUE(SameRecord(*won, preparing));

  // The same CAS again: `expected` is stale, the answer is the record now.
  const auto handoff = HandoffRecord("node-a", "node-c", 2);
  auto lost = arbiter->CompareAndSwap(kNic, active, handoff);
  ASSERT_TRUE(lost.ok());
  EXPECT_TRUE(SameRecord(*lost, preparing));
  // Every field counts: only the target differs here.
  auto lost_target = arbiter->CompareAndSwap(kNic, PreparingRecord("node-a", "node-c", 2), handoff);
  EXPECT_TRUE(SameRecord(*lost_target, preparing));
  EXPECT_TRUE(SameRecord(*arbiter->Read(kNic), preparing));
  // A node the file does not know cannot be the current record.
  auto stranger = arbiter->CompareAndSwap(kNic, PreparingRecord("node-x", "node-b", 2), handoff);
  EXPECT_TRUE(SameRecord(*stranger, preparing));

  // The other record is untouched.
  EXPECT_EQ(arbiter->Read("0000:04:00.0")->epoch(), 7u);
}

TEST_F(SharedFileArbiterTest, WhatCannotBeStoredIsRefused) {
  auto arbiter = OpenArbiter();
  ASSERT_NE(arbiter, nullptr);
  const auto active = ActiveRecord("node-a", 1);
  EXPECT_EQ(arbiter->CompareAndSwap(kNic, active, ActiveRecord("node-x", 2)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(arbiter->CompareAndSwap(kNic, ActiveRecord("node-a", 5), ActiveRecord("node-b", 4))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      arbiter
          ->CompareAndSwap(kNic, active, ActiveRecord("node-b", SharedFileArbiter::kMaxEpoch + 1))
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  auto max =
      arbiter->CompareAndSwap(kNic, active, ActiveRecord("node-d", SharedFileArbiter::kMaxEpoch));
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(max->epoch(), SharedFileArbiter::kMaxEpoch);
  EXPECT_EQ(max->owner_node(), "node-d");
}

TEST_F(SharedFileArbiterTest, CreateRefusesBadContentAndOpenRefusesOtherFiles) {
  const std::string other = path_ + ".bad";
  EXPECT_EQ(SharedFileArbiter::Create(other, {"a", "a"}, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SharedFileArbiter::Create(other, {""}, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SharedFileArbiter::Create(other, {"a"}, {{"03:00.0", ActiveRecord("b", 1)}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      SharedFileArbiter::Create(
          other, {"a"}, {{"03:00.0", ActiveRecord("a", 1)}, {"0000:03:00.0", ActiveRecord("a", 1)}})
          .code(),
      absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(SharedFileArbiter::Open(path_ + ".missing").status().code(),
            absl::StatusCode::kNotFound);
  std::ofstream(other) << std::string(8192, 'x');
  EXPECT_EQ(SharedFileArbiter::Open(other).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SharedFileArbiterTest, HandoffRingsAreKeptPerEpoch) {
  auto arbiter = OpenArbiter();
  ASSERT_NE(arbiter, nullptr);
  EXPECT_EQ(arbiter->ReadHandoffRings(kNic, 2).status().code(), absl::StatusCode::kNotFound);
  std::vector<v1::QueueRingState> rings(2);
  rings[0].set_queue(0);
  rings[0].set_tx_next_to_use(17);
  rings[1].set_queue(1);
  rings[1].set_rx_next_to_clean(300);
  ASSERT_TRUE(arbiter->WriteHandoffRings(kNic, Fence{2, 0}, rings).ok());

  auto other_process_view = OpenArbiter();
  auto read = other_process_view->ReadHandoffRings(kNic, 2);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[0].tx_next_to_use(), 17u);
  EXPECT_EQ((*read)[1].queue(), 1u);
  EXPECT_EQ((*read)[1].rx_next_to_clean(), 300u);
  EXPECT_EQ(arbiter->ReadHandoffRings(kNic, 3).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(arbiter->ReadHandoffRings("0000:04:00.0", 2).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(
      arbiter
          ->WriteHandoffRings(kNic, Fence{2, 0},
                              std::vector<v1::QueueRingState>(SharedFileArbiter::kMaxQueues + 1))
          .code(),
      absl::StatusCode::kInvalidArgument);
}

// Runs `body(index)` in `count` forked processes that start together, and
// waits for them; each must exit 0.
template <typename Body>
void RunProcesses(int count, Body body) {
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> children;
  for (int i = 0; i < count; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(go[1]);
      char c;
      (void)!read(go[0], &c, 1);  // EOF when the parent closes: all start at once
      _exit(body(i));
    }
    children.push_back(pid);
  }
  close(go[0]);
  close(go[1]);
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child exit status " << status;
  }
}

TEST_F(SharedFileArbiterTest, ProcessesRacingCompareAndSwapNeverWinTheSameTransition) {
  constexpr int kProcesses = 4;
  constexpr int kAttempts = 3000;
  const std::vector<std::string> nodes = {"node-a", "node-b", "node-c", "node-d"};
  RunProcesses(kProcesses, [&](int index) {
    // Each process maps the file itself, as a daemon would.
    auto arbiter = SharedFileArbiter::Open(path_);
    if (!arbiter.ok()) return 2;
    std::ofstream wins(path_ + ".wins." + std::to_string(index));
    for (int i = 0; i < kAttempts; ++i) {
      auto current = (*arbiter)->Read(kNic);
      if (!current.ok()) return 3;
      auto desired = ActiveRecord(nodes[index], current->epoch() + 1);
      auto after = (*arbiter)->CompareAndSwap(kNic, *current, desired);
      if (!after.ok()) return 4;
      if (SameRecord(*after, desired)) wins << desired.epoch() << "\n";
    }
    return 0;
  });

  // Every epoch from 2 to the final one was won exactly once, by someone.
  std::multiset<uint64_t> won;
  for (int i = 0; i < kProcesses; ++i) {
    std::ifstream in(path_ + ".wins." + std::to_string(i));
    uint64_t epoch;
    while (in >> epoch) won.insert(epoch);
  }
  auto final_record = OpenArbiter()->Read(kNic);
  ASSERT_TRUE(final_record.ok());
  const uint64_t final_epoch = final_record->epoch();
  EXPECT_GT(final_epoch, static_cast<uint64_t>(kAttempts)) << "the processes did not interleave";
  EXPECT_EQ(won.size(), final_epoch - 1);
  for (uint64_t epoch = 2; epoch <= final_epoch; ++epoch) {
    EXPECT_EQ(won.count(epoch), 1u) << "epoch " << epoch;
  }
}

TEST_F(SharedFileArbiterTest, AReaderInAnotherProcessNeverSeesHalfAWrite) {
  constexpr uint32_t kWrites = 20000;
  constexpr size_t kQueues = 16;
  RunProcesses(2, [&](int index) {
    auto arbiter = SharedFileArbiter::Open(path_);
    if (!arbiter.ok()) return 2;
    if (index == 0) {
      for (uint32_t w = 1; w <= kWrites; ++w) {
        std::vector<v1::QueueRingState> rings(kQueues);
        for (size_t q = 0; q < kQueues; ++q) {
          rings[q].set_queue(static_cast<uint32_t>(q));
          rings[q].set_rx_next_to_clean(w);
          rings[q].set_rx_next_to_use(w);
          rings[q].set_tx_next_to_clean(w);
          rings[q].set_tx_next_to_use(w);
        }
        if (!(*arbiter)->WriteHandoffRings(kNic, Fence{5, 0}, rings).ok()) return 3;
      }
      return 0;
    }
    uint32_t last = 0;
    while (last < kWrites) {
      auto rings = (*arbiter)->ReadHandoffRings(kNic, 5);
      if (absl::IsNotFound(rings.status())) continue;  // not written yet
      if (!rings.ok() || rings->size() != kQueues) return 4;
      const uint32_t w = (*rings)[0].rx_next_to_clean();
      for (size_t q = 0; q < kQueues; ++q) {
        const auto& r = (*rings)[q];
        if (r.queue() != q || r.rx_next_to_clean() != w || r.rx_next_to_use() != w ||
            r.tx_next_to_clean() != w || r.tx_next_to_use() != w) {
          std::fprintf(stderr, "torn read: queue %zu of write %u\n", q, w);
          return 5;
        }
      }
      if (w < last) return 6;  // went back in time
      last = w;
    }
    return 0;
  });
}

}  // namespace
}  // namespace platform
}  // namespace nichandover
