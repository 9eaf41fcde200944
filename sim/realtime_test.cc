#include "sim/realtime.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"

namespace nichandover {
namespace sim {
namespace {

TEST(RealtimePriorityTest, ParseAcceptsOffAndFifoRange) {
  EXPECT_EQ(*ParseRealtimePriority("0"), 0);
  // RT throttling may be off on a developer's machine: only the range is
  // this test's business, so accept the refusal for that reason.
  absl::StatusOr<int> ten = ParseRealtimePriority("10");
  if (ten.ok()) {
    EXPECT_EQ(*ten, 10);
  } else {
    EXPECT_EQ(ten.status().code(), absl::StatusCode::kFailedPrecondition) << ten.status();
  }
}

TEST(RealtimePriorityTest, ParseRefusesWhatIsNotAFifoPriority) {
  for (const char* bad : {"-1", "100", "ten", "", "5.5"}) {
    absl::StatusOr<int> parsed = ParseRealtimePriority(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

// A thread that blocks until told: safe under SCHED_FIFO.
class BlockedThread {
 public:
  BlockedThread() : thread_([this] {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }) {}
  ~BlockedThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  pthread_t handle() { return thread_.native_handle(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

TEST(RealtimePriorityTest, PutsTheThreadUnderFifoOrSaysWhyNot) {
  BlockedThread blocked;
  absl::Status set = SetRealtimePriority(blocked.handle(), 3, "the test thread");
  int policy = -1;
  sched_param param{};
  ASSERT_EQ(pthread_getschedparam(blocked.handle(), &policy, &param), 0);
  if (set.ok()) {
    EXPECT_EQ(policy, SCHED_FIFO);
    EXPECT_EQ(param.sched_priority, 3);
  } else {
    // Not root (or a container without CAP_SYS_NICE): a clear refusal, and
    // the thread left as it was.
    EXPECT_EQ(set.code(), absl::StatusCode::kPermissionDenied) << set;
    EXPECT_NE(set.message().find("the test thread"), absl::string_view::npos) << set;
    EXPECT_EQ(policy, SCHED_OTHER);
  }
}

TEST(RealtimePriorityTest, ZeroLeavesTheThreadAlone) {
  BlockedThread blocked;
  EXPECT_TRUE(SetRealtimePriority(blocked.handle(), 0, "the test thread").ok());
  int policy = -1;
  sched_param param{};
  ASSERT_EQ(pthread_getschedparam(blocked.handle(), &policy, &param), 0);
  EXPECT_EQ(policy, SCHED_OTHER);
}

TEST(RealtimePriorityTest, ScopedBoostLastsForTheScopeAndPutsBackThePolicy) {
  // On a thread of its own: the test runner's thread keeps its policy
  // whatever happens here.
  std::thread([] {
    int policy = -1;
    sched_param param{};
    {
      ScopedRealtimePriority boost(4, "the boosted thread");
      ASSERT_EQ(pthread_getschedparam(pthread_self(), &policy, &param), 0);
      if (boost.status().ok()) {
        EXPECT_EQ(policy, SCHED_FIFO);
        EXPECT_EQ(param.sched_priority, 4);
      } else {
        EXPECT_EQ(boost.status().code(), absl::StatusCode::kPermissionDenied) << boost.status();
        EXPECT_EQ(policy, SCHED_OTHER);
      }
    }
    ASSERT_EQ(pthread_getschedparam(pthread_self(), &policy, &param), 0);
    EXPECT_EQ(policy, SCHED_OTHER);
    EXPECT_EQ(param.sched_priority, 0);
    {
      ScopedRealtimePriority off(0, "the boosted thread");
      EXPECT_TRUE(off.status().ok());
      ASSERT_EQ(pthread_getschedparam(pthread_self(), &policy, &param), 0);
      EXPECT_EQ(policy, SCHED_OTHER);
    }
  }).join();
}

}  // namespace
}  // namespace sim
}  // namespace nichandover
