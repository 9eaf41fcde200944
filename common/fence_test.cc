#include "common/fence.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kIncarnation2 = uint64_t{2} << 32;
constexpr uint64_t kIncarnation3 = uint64_t{3} << 32;

TEST(FenceTest, OrdersByEpochThenOperation) {
  EXPECT_LT((Fence{4, kIncarnation3 + 9}), (Fence{5, 0}));
  EXPECT_LT((Fence{5, kIncarnation2 + 9}), (Fence{5, kIncarnation3 + 1}));
  EXPECT_LT((Fence{5, kIncarnation3 + 1}), (Fence{5, kIncarnation3 + 2}));
  EXPECT_FALSE((Fence{5, 7}) < (Fence{5, 7}));
}

TEST(FenceTest, AdmitsEqualAndHigherFences) {
  const Fence highest{5, kIncarnation2 + 4};
  EXPECT_TRUE(CheckFence(highest, highest, "resume").ok());
  EXPECT_TRUE(CheckFence(highest, Fence{5, kIncarnation2 + 5}, "resume").ok());
  EXPECT_TRUE(CheckFence(highest, Fence{6, 0}, "resume").ok());
}

TEST(FenceTest, RefusesALateCallOfTheSameEpochNamingBothFences) {
  absl::Status status =
      CheckFence(Fence{5, kIncarnation3 + 1}, Fence{5, kIncarnation2 + 4}, "restore of 03:00.0");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("restore of 03:00.0 refused"));
  EXPECT_THAT(status.message(), HasSubstr("epoch 5 op 2.4"));
  EXPECT_THAT(status.message(), HasSubstr("epoch 5 op 3.1"));
  EXPECT_THAT(status.message(), HasSubstr("late call"));
}

TEST(FenceTest, RefusesAStaleEpoch) {
  absl::Status status = CheckFence(Fence{5, 0}, Fence{4, kIncarnation3}, "quiesce");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("stale epoch"));
}

}  // namespace
}  // namespace nichandover
