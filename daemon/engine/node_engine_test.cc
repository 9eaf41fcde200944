// The engine on a FakeClock: two engines over one fake machine, connected
// in-process. Time moves only when the test advances it, and only when both
// engines are idle (nothing queued, no call running but the ones a test hangs
// on purpose), so phase timeouts, retries and deadlines happen at exact fake
// times however loaded the machine is.
#include "daemon/engine/node_engine.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <deque>
#include <future>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "daemon/engine/executor.h"
#include "daemon/engine/fake_clock.h"
#include "daemon/journal/memory_journal.h"
#include "daemon/platform/fake/fake_machine.h"
#include "daemon/platform/fake/fake_platform.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace engine {
namespace {

using platform::fake::FakeFault;
using platform::fake::FakeMachine;
using platform::fake::FakeOperation;
using google::protobuf::util::TimeUtil;

constexpr char kNic[] = "0000:03:00.0";
// Real time a test waits for the engines' threads before it calls the
// engines stuck; generous for a loaded 2-core machine.
constexpr absl::Duration kRealPatience = absl::Seconds(60);

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(t));
}

// Hands a message to the other engine on a thread of its own (the engine's
// HandlePeerRequest waits for the machine) and counts calls in flight.
class InProcessTransport : public PeerTransport {
 public:
  explicit InProcessTransport(std::string self) : self_(std::move(self)) {}
  ~InProcessTransport() override { Join(); }

  void Connect(const std::string& node, NodeEngine* engine) {
    std::lock_guard<std::mutex> lock(mu_);
    engines_[node] = engine;
  }
  void Send(const std::string& to_node, const protocol::PeerRequestBody& body,
            absl::Duration deadline, Callback done) override {
    std::lock_guard<std::mutex> lock(mu_);
    NodeEngine* to = engines_.count(to_node) ? engines_[to_node] : nullptr;
    ++in_flight_;
    threads_.emplace_back([this, to, body, deadline, done = std::move(done)] {
      if (to == nullptr) {
        done(absl::UnavailableError("peer down"));
      } else {
        done(to->HandlePeerRequest(self_, body, deadline));
      }
      --in_flight_;
    });
  }
  int in_flight() const { return in_flight_.load(); }
  void Join() {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

 private:
  const std::string self_;
  std::mutex mu_;
  std::map<std::string, NodeEngine*> engines_;
  std::vector<std::thread> threads_;
  std::atomic<int> in_flight_{0};
};

// Keeps every event a watch delivers.
class RecordingWatcher : public HandoverWatcher {
 public:
  void OnEvent(const v1::HandoverEvent& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(event);
  }
  void OnEngineStopped() override {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
  }
  std::vector<v1::HandoverPhase> Phases() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<v1::HandoverPhase> phases;
    for (const auto& e : events_) phases.push_back(e.phase());
    return phases;
  }
  std::vector<v1::HandoverEvent> Events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopped_;
  }

 private:
  std::mutex mu_;
  std::vector<v1::HandoverEvent> events_;
  bool stopped_ = false;
};


// A node's kernel on the kernel commit path, scripted by the test: each
// WaitEvents call takes the next reply the test queued, or waits for one
// (in real time, up to the call's timeout, as a kernel would) and returns
// no events. Arm and HandOff are not used by these tests.
class ScriptedKernel : public platform::FastPath {
 public:
  explicit ScriptedKernel(std::shared_ptr<Clock> clock) : clock_(std::move(clock)) {}

  absl::Status Arm(const std::string&, const platform::Fence&,
                   const v1::OwnershipRecord&) override {
    return absl::UnimplementedError("scripted kernel");
  }
  absl::StatusOr<platform::HandOffResult> HandOff(const platform::HandOffRequest&) override {
    return absl::UnimplementedError("scripted kernel");
  }
  absl::StatusOr<platform::KernelEvents> WaitEvents(uint64_t after_seq,
                                                    absl::Duration timeout) override {
    std::unique_lock<std::mutex> lock(mu_);
    calls_.push_back({after_seq, clock_->Now()});
    ++waiting_;
    changed_.notify_all();
    changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return !replies_.empty(); });
    --waiting_;
    changed_.notify_all();
    if (replies_.empty()) return platform::KernelEvents{};
    absl::StatusOr<platform::KernelEvents> reply = std::move(replies_.front());
    replies_.pop_front();
    return reply;
  }

  void Reply(absl::StatusOr<platform::KernelEvents> reply) {
    std::lock_guard<std::mutex> lock(mu_);
    replies_.push_back(std::move(reply));
    changed_.notify_all();
  }
  // Waits (real time) until WaitEvents was called `n` times.
  bool AwaitCalls(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, absl::ToChronoNanoseconds(kRealPatience),
                             [&] { return calls_.size() >= n; });
  }
  struct Call {
    uint64_t after_seq;
    absl::Time time;  // on the engine's clock
  };
  std::vector<Call> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  int waiting() {
    std::lock_guard<std::mutex> lock(mu_);
    return waiting_;
  }

 private:
  std::shared_ptr<Clock> clock_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<absl::StatusOr<platform::KernelEvents>> replies_;
  std::vector<Call> calls_;
  int waiting_ = 0;
};

// Keeps the kernel events the machine stepped.
class KernelEventRecorder : public EngineObserver {
 public:
  void HandoverFinished(const v1::Handover&, bool) override {}
  void JournalSynced(absl::Duration, const absl::Status&) override {}
  void PlatformCallDone(protocol::OpKind, absl::Duration, const absl::Status&) override {}
  void PeerCallDone(const std::string&, absl::Duration, const absl::Status&) override {}
  void KernelEventStepped(const platform::KernelEvent& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    stepped_.push_back(event);
    changed_.notify_all();
  }
  bool AwaitStepped(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, absl::ToChronoNanoseconds(kRealPatience),
                             [&] { return stepped_.size() >= n; });
  }
  std::vector<platform::KernelEvent> stepped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stepped_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<platform::KernelEvent> stepped_;
};

class NodeEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("TEST_TMPDIR");
    path_ = absl::StrCat(dir != nullptr ? dir : "/tmp", "/",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                         ".fake-machine");
    machine_ = std::make_unique<FakeMachine>(path_);
    ASSERT_TRUE(machine_->Create(platform::fake::SimpleMachineSpec(2, 2, {kNic}, 4)).ok());
    for (int i = 0; i < 2; ++i) {
      nodes_[i].id = absl::StrCat("node", i);
      auto p = platform::fake::MakeFakePlatform(path_, nodes_[i].id);
      ASSERT_TRUE(p.ok()) << p.status();
      nodes_[i].platform = std::make_unique<platform::Platform>(std::move(*p));
      nodes_[i].journal = std::make_unique<journal::MemoryJournal>();
      nodes_[i].transport = std::make_unique<InProcessTransport>(nodes_[i].id);
    }
    for (int i = 0; i < 2; ++i) ASSERT_TRUE(StartNode(i).ok());
  }

  void TearDown() override {
    // A hung fake call returns once its knob is gone; wait for it, or it
    // would return into a platform this fixture has destroyed.
    machine_->ClearFaults("", platform::fake::FAKE_OP_UNSPECIFIED).IgnoreError();
    hang_knobs_.clear();
    EXPECT_TRUE(AwaitIdle());
    for (auto& n : nodes_) {
      if (n.engine) n.engine->Stop();
    }
    for (auto& n : nodes_) n.transport->Join();
    for (auto& n : nodes_) n.engine.reset();
  }

  absl::Status StartNode(int i, std::vector<std::string> journal = {}) {
    Node& n = nodes_[i];
    NodeEngine::Options options;
    options.node_id = n.id;
    options.peers = {nodes_[1 - i].id};
    options.platform = n.platform.get();
    options.journal = n.journal.get();
    options.transport = n.transport.get();
    options.clock = clock_;
    options.platform_call_deadline = kCallDeadline;
    options.observer = n.observer;
    // The fake machine has a kernel commit path; these tests hold the daemon
    // path's steps (a hung reroute, REROUTING), so the machine keeps to it.
    // The kernel-events reader runs all the same.
    options.kernel_commit = false;
    // How long one wait for kernel events lasts (real time): Stop waits for
    // the one running, so short keeps the restarts quick.
    options.kernel_event_wait = absl::Milliseconds(100);
    auto engine = NodeEngine::Start(options, journal);
    if (!engine.ok()) return engine.status();
    n.engine = std::move(*engine);
    nodes_[1 - i].transport->Connect(n.id, n.engine.get());
    return absl::OkStatus();
  }

  // Restarts node `i` from what its journal synced.
  absl::Status RestartNode(int i) {
    nodes_[i].engine->Stop();
    // Calls of the old engine still running finish before it goes (the
    // platform is shared with the new one; the test's TearDown frees it).
    const absl::Time give_up = absl::Now() + kRealPatience;
    while (nodes_[i].engine->PlatformPoolStats().running > 0 && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    nodes_[1 - i].transport->Connect(nodes_[i].id, nullptr);
    nodes_[i].transport->Join();
    nodes_[1 - i].transport->Join();
    std::vector<std::string> durable = nodes_[i].journal->DurableRecords();
    nodes_[i].engine.reset();
    nodes_[i].journal = std::make_unique<journal::MemoryJournal>(durable);
    return StartNode(i, durable);
  }

  NodeEngine& engine(int i) { return *nodes_[i].engine; }

  // Platform calls hanging on a knob now (each holds a pool thread).
  size_t HungCalls() {
    size_t hung = 0;
    for (const auto& [node, op] : hang_knobs_) {
      auto hits = machine_->FaultHits(node, op);
      if (hits.ok()) hung += *hits;
    }
    return hung;
  }

  // Waits (real time) until both engines have nothing to do but the calls
  // that hang on the test's knobs.
  bool AwaitIdle() {
    const absl::Time give_up = absl::Now() + kRealPatience;
    while (absl::Now() < give_up) {
      const size_t hung = HungCalls();
      bool idle = true;
      size_t running = 0;
      for (auto& n : nodes_) {
        if (!n.engine) continue;
        idle = idle && n.transport->in_flight() == 0 && n.engine->Idle(hung);
        running += n.engine->PlatformPoolStats().running;
      }
      if (idle && running <= hung) return true;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return false;
  }

  // Runs the engines, advancing fake time from one timer to the next while
  // they are idle, until `done` holds or fake time passes `limit`.
  bool RunUntil(const std::function<bool()>& done, absl::Duration limit) {
    const absl::Time stop = clock_->Now() + limit;
    const absl::Time give_up = absl::Now() + kRealPatience;
    while (true) {
      if (!AwaitIdle()) {
        ADD_FAILURE() << "the engines did not settle in real time";
        return false;
      }
      if (done()) return true;
      const absl::Time next = clock_->NextDeadline();
      if (next > stop) {
        // Nothing due in time: a request the test started on another
        // thread may not have reached the engine yet.
        if (absl::Now() > give_up) return false;
        absl::SleepFor(absl::Milliseconds(1));
        continue;
      }
      clock_->Advance(std::max(next - clock_->Now(), absl::ZeroDuration()));
    }
  }

  v1::Handover Get(int i, const std::string& id) {
    auto h = engine(i).GetHandover(id);
    EXPECT_TRUE(h.ok()) << h.status();
    return h.ok() ? *h : v1::Handover();
  }
  bool Done(int i, const std::string& id) { return Get(i, id).done(); }

  absl::StatusOr<v1::Handover> Create(const std::string& request_id) {
    v1::CreateHandoverRequest request;
    request.set_request_id(request_id);
    request.set_nic(kNic);
    request.set_target_node("node1");
    // The call waits for the machine's answer on the fake clock, which only
    // the test moves: give it a wait no test reaches.
    return engine(0).CreateHandover(request, absl::Hours(1));
  }

  void SetFault(const std::string& node, FakeOperation op, bool hang, int fail_times) {
    FakeFault fault;
    fault.set_node_id(node);
    fault.set_operation(op);
    fault.set_hang(hang);
    if (hang) hang_knobs_.push_back({node, op});
    if (fail_times > 0) {
      fault.set_fail_code(static_cast<int>(absl::StatusCode::kUnavailable));
      fault.set_fail_times(fail_times);
    }
    ASSERT_TRUE(machine_->SetFault(fault).ok());
  }

  // Clears a hang knob: the calls hanging on it return.
  void Release(const std::string& node, FakeOperation op) {
    ASSERT_TRUE(machine_->ClearFaults(node, op).ok());
    hang_knobs_.erase(std::remove(hang_knobs_.begin(), hang_knobs_.end(), std::make_pair(node, op)),
                      hang_knobs_.end());
  }

  std::string Owner() {
    auto view = machine_->Inspect(kNic);
    EXPECT_TRUE(view.ok()) << view.status();
    return view.ok() ? view->ownership.owner_node() : "";
  }

  static constexpr absl::Duration kCallDeadline = absl::Seconds(20);

  // Restarts node 0 on a platform whose kernel commit path answers the
  // `replies` first, with an observer that records the kernel events its
  // machine steps.
  ScriptedKernel* RestartNode0WithScriptedKernel(
      std::shared_ptr<KernelEventRecorder> recorder,
      std::vector<absl::StatusOr<platform::KernelEvents>> replies = {}) {
    // The old engine's reader uses the old fast path until it stops.
    nodes_[0].engine->Stop();
    auto kernel = std::make_unique<ScriptedKernel>(clock_);
    ScriptedKernel* raw = kernel.get();
    for (auto& reply : replies) raw->Reply(std::move(reply));
    nodes_[0].platform->fast_path = std::move(kernel);
    nodes_[0].observer = std::move(recorder);
    absl::Status restarted = RestartNode(0);
    EXPECT_TRUE(restarted.ok()) << restarted;
    return raw;
  }

  struct Node {
    std::string id;
    std::unique_ptr<platform::Platform> platform;
    std::unique_ptr<journal::MemoryJournal> journal;
    std::unique_ptr<InProcessTransport> transport;
    std::shared_ptr<EngineObserver> observer;  // optional
    std::unique_ptr<NodeEngine> engine;
  };
  std::string path_;
  std::unique_ptr<FakeMachine> machine_;
  std::shared_ptr<FakeClock> clock_ = std::make_shared<FakeClock>();
  std::vector<std::pair<std::string, FakeOperation>> hang_knobs_;
  Node nodes_[2];
};

TEST_F(NodeEngineTest, HandoverCommitsAndEveryWatcherSeesEachPhaseOnce) {
  const absl::Time start = clock_->Now();
  auto h = Create("commit");
  ASSERT_TRUE(h.ok()) << h.status();
  // Three watchers on the source, one on the target, each told at once of
  // the state when it began.
  std::vector<std::shared_ptr<RecordingWatcher>> watchers;
  for (int i = 0; i < 4; ++i) {
    watchers.push_back(std::make_shared<RecordingWatcher>());
    auto id = engine(i < 3 ? 0 : 1).Watch(h->handover_id(), watchers.back());
    if (i < 3) {
      ASSERT_TRUE(id.ok()) << id.status();
      EXPECT_NE(*id, 0u);
      ASSERT_EQ(watchers.back()->Events().size(), 1u);
    }
  }
  ASSERT_TRUE(RunUntil([&] { return Done(0, h->handover_id()) && Done(1, h->handover_id()); },
                       absl::Minutes(1)));
  EXPECT_EQ(Get(0, h->handover_id()).phase(), v1::HANDOVER_PHASE_COMMITTED);
  EXPECT_EQ(Owner(), "node1");
  const auto phases = watchers[0]->Phases();
  ASSERT_GE(phases.size(), 3u);
  EXPECT_EQ(phases.back(), v1::HANDOVER_PHASE_COMMITTED);
  for (size_t i = 1; i < phases.size(); ++i) {
    EXPECT_NE(phases[i], phases[i - 1]) << "a phase delivered twice at index " << i;
  }
  EXPECT_EQ(watchers[0]->Events().front().message(), "current state");
  // The engine runs while the watchers join: each later one sees the same
  // phases from the one it joined in (a suffix of the first one's).
  for (int i = 1; i < 3; ++i) {
    const auto later = watchers[i]->Phases();
    ASSERT_LE(later.size(), phases.size()) << "watcher " << i;
    EXPECT_EQ(later, std::vector<v1::HandoverPhase>(phases.end() - later.size(), phases.end()))
        << "watcher " << i;
  }
  // The watches ended with the handover.
  EXPECT_EQ(engine(0).WatcherCount(), 0u);
  // Stamped with the engine's clock, not the system's.
  const v1::Handover done = Get(0, h->handover_id());
  EXPECT_GE(ToTime(done.create_time()), start);
  EXPECT_LE(ToTime(done.end_time()), clock_->Now());
  // A watch of a finished handover gets its end and is over.
  auto late = std::make_shared<RecordingWatcher>();
  auto late_id = engine(0).Watch(h->handover_id(), late);
  ASSERT_TRUE(late_id.ok());
  EXPECT_EQ(*late_id, 0u);
  EXPECT_EQ(late->Phases(), std::vector<v1::HandoverPhase>{v1::HANDOVER_PHASE_COMMITTED});
  EXPECT_EQ(engine(0).Watch("no-such-handover", late).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(NodeEngineTest, AHungRerouteEndsAtTheStepTimeoutOnTheFakeClock) {
  SetFault("node0", platform::fake::FAKE_OP_REROUTE, /*hang=*/true, 0);
  const absl::Time start = clock_->Now();
  auto h = Create("hung-reroute");
  ASSERT_TRUE(h.ok()) << h.status();
  // Fake time moves only while the reroute hangs (it holds a pool thread).
  ASSERT_TRUE(RunUntil(
      [&] { return Get(0, h->handover_id()).phase() == v1::HANDOVER_PHASE_REROUTING; },
      absl::Minutes(1)));
  const absl::Time rerouting = clock_->Now();
  ASSERT_TRUE(RunUntil([&] { return Done(0, h->handover_id()) && Done(1, h->handover_id()); },
                       absl::Minutes(5)));
  const v1::Handover done = Get(0, h->handover_id());
  EXPECT_NE(done.phase(), v1::HANDOVER_PHASE_COMMITTED) << done.DebugString();
  EXPECT_EQ(Owner(), "node0");
  // Not before the machine's reroute timeout had passed on the fake clock.
  EXPECT_GE(clock_->Now() - rerouting, protocol::Timeouts().reroute);
  EXPECT_GE(ToTime(done.end_time()) - start, protocol::Timeouts().reroute);
  // Each hung call holds one thread, no more.
  EXPECT_GE(HungCalls(), 1u);
  EXPECT_EQ(engine(0).PlatformPoolStats().running, HungCalls());
  Release("node0", platform::fake::FAKE_OP_REROUTE);
  EXPECT_TRUE(AwaitIdle());
  EXPECT_EQ(engine(0).PlatformPoolStats().running, 0u);
}

TEST_F(NodeEngineTest, AFailingAttachIsRetriedUntilItWorks) {
  SetFault("node1", platform::fake::FAKE_OP_ATTACH, /*hang=*/false, /*fail_times=*/2);
  auto h = Create("retried");
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(RunUntil([&] { return Done(0, h->handover_id()) && Done(1, h->handover_id()); },
                       absl::Minutes(5)));
  EXPECT_EQ(Get(1, h->handover_id()).phase(), v1::HANDOVER_PHASE_COMMITTED);
  EXPECT_EQ(Owner(), "node1");
  auto hits = machine_->FaultHits("node1", platform::fake::FAKE_OP_ATTACH);
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(*hits, 2u);
}

TEST_F(NodeEngineTest, AHungCallWithoutAStepTimerIsAnsweredAtItsDeadline) {
  // Maintenance: quiesce, then a resume that hangs. The machine sets no
  // timer of its own for it; the engine's call deadline answers.
  v1::QuiesceNicRequest quiesce;
  quiesce.set_nic(kNic);
  auto quiesced = std::async(std::launch::async,
                             [&] { return engine(0).QuiesceNic(quiesce, absl::Hours(1)); });
  ASSERT_TRUE(RunUntil([&] {
    return quiesced.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }, absl::Minutes(1)));
  ASSERT_TRUE(quiesced.get().ok());
  SetFault("node0", platform::fake::FAKE_OP_RESUME, /*hang=*/true, 0);
  v1::ResumeNicRequest resume;
  resume.set_nic(kNic);
  const absl::Time asked = clock_->Now();
  auto resumed =
      std::async(std::launch::async, [&] { return engine(0).ResumeNic(resume, absl::Hours(1)); });
  ASSERT_TRUE(RunUntil([&] {
    return resumed.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }, absl::Minutes(5)));
  absl::StatusOr<v1::OwnershipRecord> answer = resumed.get();
  EXPECT_FALSE(answer.ok());
  EXPECT_TRUE(absl::StrContains(answer.status().message(), "did not return within"))
      << answer.status();
  EXPECT_GE(clock_->Now() - asked, kCallDeadline);
  EXPECT_EQ(HungCalls(), 1u);
  EXPECT_EQ(engine(0).PlatformPoolStats().running, 1u);
  // The late result is dropped; the engine keeps serving.
  Release("node0", platform::fake::FAKE_OP_RESUME);
  EXPECT_TRUE(AwaitIdle());
  auto again =
      std::async(std::launch::async, [&] { return engine(0).ResumeNic(resume, absl::Hours(1)); });
  ASSERT_TRUE(RunUntil([&] {
    return again.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }, absl::Minutes(1)));
  EXPECT_TRUE(again.get().ok());
}

TEST_F(NodeEngineTest, ARestartedEngineKeepsTheHistoryWithItsTimes) {
  auto h = Create("before-restart");
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(RunUntil([&] { return Done(0, h->handover_id()) && Done(1, h->handover_id()); },
                       absl::Minutes(1)));
  const v1::Handover before = Get(0, h->handover_id());
  clock_->Advance(absl::Hours(1));
  ASSERT_TRUE(RestartNode(0).ok());
  ASSERT_TRUE(AwaitIdle());
  const v1::Handover after = Get(0, h->handover_id());
  EXPECT_EQ(after.phase(), v1::HANDOVER_PHASE_COMMITTED);
  EXPECT_EQ(after.create_time().seconds(), before.create_time().seconds());
  ASSERT_EQ(after.phases_size(), before.phases_size());
  for (int i = 0; i < after.phases_size(); ++i) {
    EXPECT_EQ(TimeUtil::TimestampToNanoseconds(after.phases(i).start_time()),
              TimeUtil::TimestampToNanoseconds(before.phases(i).start_time()))
        << "phase " << i;
  }
  // And hands the NIC back from its new life.
  v1::CreateHandoverRequest back;
  back.set_request_id("back");
  back.set_nic(kNic);
  back.set_target_node("node0");
  auto returned = engine(1).CreateHandover(back, absl::Hours(1));
  ASSERT_TRUE(returned.ok()) << returned.status();
  ASSERT_TRUE(RunUntil([&] { return Done(1, returned->handover_id()); }, absl::Minutes(1)));
  EXPECT_EQ(Owner(), "node0");
}

TEST_F(NodeEngineTest, ARestartMidHandoverEndsWithOneOwner) {
  SetFault("node0", platform::fake::FAKE_OP_REROUTE, /*hang=*/true, 0);
  auto h = Create("interrupted");
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(RunUntil(
      [&] { return Get(0, h->handover_id()).phase() == v1::HANDOVER_PHASE_REROUTING; },
      absl::Minutes(1)));
  // The source dies while its reroute hangs; the call returns later.
  Release("node0", platform::fake::FAKE_OP_REROUTE);
  ASSERT_TRUE(RestartNode(0).ok());
  ASSERT_TRUE(RunUntil(
      [&] {
        auto s = engine(0).GetHandover(h->handover_id());
        return s.ok() && s->done() && Done(1, h->handover_id());
      },
      absl::Minutes(5)));
  const std::string owner = Owner();
  EXPECT_TRUE(owner == "node0" || owner == "node1") << owner;
  EXPECT_TRUE(machine_->CheckSettled(kNic).ok()) << machine_->CheckSettled(kNic);
}

TEST_F(NodeEngineTest, WatchersStopWithTheEngineAndUnwatchEndsDelivery) {
  SetFault("node0", platform::fake::FAKE_OP_REROUTE, /*hang=*/true, 0);
  auto h = Create("watched");
  ASSERT_TRUE(h.ok()) << h.status();
  auto kept = std::make_shared<RecordingWatcher>();
  auto dropped = std::make_shared<RecordingWatcher>();
  auto kept_id = engine(0).Watch(h->handover_id(), kept);
  auto dropped_id = engine(0).Watch(h->handover_id(), dropped);
  ASSERT_TRUE(kept_id.ok() && dropped_id.ok());
  EXPECT_EQ(engine(0).WatcherCount(), 2u);
  engine(0).Unwatch(*dropped_id);
  EXPECT_EQ(engine(0).WatcherCount(), 1u);
  ASSERT_TRUE(RunUntil(
      [&] { return Get(0, h->handover_id()).phase() == v1::HANDOVER_PHASE_REROUTING; },
      absl::Minutes(1)));
  EXPECT_EQ(dropped->Events().size(), 1u) << "only the first event before Unwatch";
  EXPECT_GT(kept->Events().size(), 1u);
  EXPECT_EQ(kept->Phases().back(), v1::HANDOVER_PHASE_REROUTING);
  engine(0).Stop();
  EXPECT_TRUE(kept->stopped());
  EXPECT_FALSE(dropped->stopped());
  EXPECT_EQ(engine(0).Watch(h->handover_id(), dropped).status().code(),
            absl::StatusCode::kUnavailable);
}

// ---------------------------------------------------------------- pool

TEST(BoundedExecutorTest, HungCallsHoldOneThreadEachAndAFullQueueRefusesClearly) {
  BoundedExecutor pool({"platform", /*threads=*/2, /*max_queued=*/1});
  absl::Notification release;
  std::atomic<int> ran{0};
  auto hang = [&] {
    release.WaitForNotification();
    ++ran;
  };
  ASSERT_TRUE(pool.Submit(hang).ok());
  ASSERT_TRUE(pool.Submit(hang).ok());
  // Both threads busy: the next waits, the one after is refused.
  ASSERT_TRUE(pool.Submit([&] { ++ran; }).ok());
  const absl::Time give_up = absl::Now() + kRealPatience;
  while (pool.GetStats().running < 2 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(pool.GetStats().threads, 2u);
  EXPECT_EQ(pool.GetStats().running, 2u);
  EXPECT_EQ(pool.GetStats().queued, 1u);
  absl::Status refused = pool.Submit([&] { ++ran; });
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(refused.message(), "platform pool is full")) << refused;
  release.Notify();
  while (ran.load() < 3 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(ran.load(), 3);
  EXPECT_EQ(pool.GetStats().threads, 2u) << "threads are reused, not added per call";
}

TEST(BoundedExecutorTest, DestroyingThePoolDoesNotWaitForAHungCall) {
  auto release = std::make_shared<absl::Notification>();
  {
    BoundedExecutor pool({"platform", 2, 8});
    ASSERT_TRUE(pool.Submit([release] { release->WaitForNotification(); }).ok());
    const absl::Time give_up = absl::Now() + kRealPatience;
    while (pool.GetStats().running < 1 && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }  // returns although the call still hangs
  release->Notify();
}

// ---------------------------------------------------------------- kernel events

platform::KernelEvent CommittedEvent(uint64_t seq, uint64_t epoch) {
  platform::KernelEvent event;
  event.seq = seq;
  event.kind = platform::KernelEvent::Kind::kCommitted;
  event.bdf = kNic;
  event.epoch = epoch;
  event.record.set_state(v1::OWNERSHIP_STATE_ACTIVE);
  event.record.set_owner_node("node0");
  event.record.set_epoch(epoch);
  return event;
}

TEST_F(NodeEngineTest, KernelEventsReachTheMachineInOrderAndTheReaderMovesOn) {
  platform::KernelEvents batch;
  batch.events = {CommittedEvent(1, 2), CommittedEvent(2, 3)};
  batch.events[1].kind = platform::KernelEvent::Kind::kNotCommitted;
  batch.events[1].message = "stale doorbell";
  batch.last_seq = 2;
  auto recorder = std::make_shared<KernelEventRecorder>();
  ScriptedKernel* kernel = RestartNode0WithScriptedKernel(recorder, {batch});
  ASSERT_TRUE(kernel->AwaitCalls(1));
  EXPECT_EQ(kernel->calls()[0].after_seq, 0u);

  ASSERT_TRUE(recorder->AwaitStepped(2));
  const auto stepped = recorder->stepped();
  ASSERT_EQ(stepped.size(), 2u);
  EXPECT_EQ(stepped[0].seq, 1u);
  EXPECT_EQ(stepped[0].epoch, 2u);
  EXPECT_EQ(stepped[0].kind, platform::KernelEvent::Kind::kCommitted);
  EXPECT_EQ(stepped[1].seq, 2u);
  EXPECT_EQ(stepped[1].kind, platform::KernelEvent::Kind::kNotCommitted);
  EXPECT_EQ(stepped[1].message, "stale doorbell");
  // The next wait asks only for what came after.
  ASSERT_TRUE(kernel->AwaitCalls(2));
  EXPECT_EQ(kernel->calls()[1].after_seq, 2u);
  // A wait that times out with no events keeps the place.
  ASSERT_TRUE(kernel->AwaitCalls(3));
  EXPECT_EQ(kernel->calls()[2].after_seq, 2u);
}

TEST_F(NodeEngineTest, TheKernelEventReaderStopsWithTheEngine) {
  ScriptedKernel* kernel = RestartNode0WithScriptedKernel(nullptr);
  ASSERT_TRUE(kernel->AwaitCalls(1));
  const absl::Time asked = absl::Now();
  engine(0).Stop();
  // Stop waited for the one call in the kernel (bounded by the engine's
  // kernel_event_wait) and no other comes.
  EXPECT_EQ(kernel->waiting(), 0);
  EXPECT_LT(absl::Now() - asked, kRealPatience);
  const size_t calls = kernel->calls().size();
  kernel->Reply(platform::KernelEvents{});
  absl::SleepFor(absl::Milliseconds(50));  // a reader still running would call again
  EXPECT_EQ(kernel->calls().size(), calls);
}

TEST_F(NodeEngineTest, AFailingKernelEventReaderBacksOffOnTheClockThenRecovers) {
  auto recorder = std::make_shared<KernelEventRecorder>();
  const absl::Status gone = absl::UnavailableError("kernel socket gone");
  ScriptedKernel* kernel = RestartNode0WithScriptedKernel(recorder, {gone, gone, gone, gone});
  ASSERT_TRUE(kernel->AwaitCalls(1));
  // The waits between attempts double from 100 ms, on the engine's clock:
  // each attempt comes only when the test moves time to its back-off's end.
  const absl::Duration expected[] = {absl::Milliseconds(100), absl::Milliseconds(200),
                                     absl::Milliseconds(400), absl::Milliseconds(800)};
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(clock_->AwaitTimerDueBy(clock_->Now() + absl::Seconds(5), kRealPatience));
    ASSERT_TRUE(AwaitIdle());
    EXPECT_EQ(kernel->calls().size(), i + 1) << "attempt " << i;
    EXPECT_EQ(clock_->NextDeadline() - clock_->Now(), expected[i]) << "attempt " << i;
    clock_->Advance(clock_->NextDeadline() - clock_->Now());
    ASSERT_TRUE(kernel->AwaitCalls(i + 2));
  }
  const auto calls = kernel->calls();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(calls[i + 1].time - calls[i].time, expected[i]) << "attempt " << i;
  }
  // Working again: events flow.
  platform::KernelEvents batch;
  batch.events = {CommittedEvent(1, 2)};
  batch.last_seq = 1;
  kernel->Reply(batch);
  ASSERT_TRUE(recorder->AwaitStepped(1));
  EXPECT_EQ(recorder->stepped()[0].epoch, 2u);
}

// ---------------------------------------------------------------- clocks

TEST(FakeClockTest, FiresDueCallbacksInDeadlineOrderAtTheirTimes) {
  FakeClock clock;
  const absl::Time t0 = clock.Now();
  std::vector<std::pair<int, absl::Time>> fired;
  clock.Schedule(t0 + absl::Seconds(2), [&] { fired.push_back({2, clock.Now()}); });
  clock.Schedule(t0 + absl::Seconds(1), [&] { fired.push_back({1, clock.Now()}); });
  auto cancelled = clock.Schedule(t0 + absl::Seconds(1), [&] { fired.push_back({0, t0}); });
  clock.Schedule(absl::InfiniteFuture(), [&] { fired.push_back({-1, t0}); });
  clock.Cancel(cancelled);
  clock.Advance(absl::Milliseconds(999));
  EXPECT_TRUE(fired.empty());
  clock.Advance(absl::Seconds(5));
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0], std::make_pair(1, t0 + absl::Seconds(1)));
  EXPECT_EQ(fired[1], std::make_pair(2, t0 + absl::Seconds(2)));
  EXPECT_EQ(clock.Now(), t0 + absl::Milliseconds(5999));
  EXPECT_EQ(clock.PendingTimers(), 0u);
}

TEST(RealClockTest, FiresAndIgnoresAFarDeadline) {
  RealClock clock;
  absl::Notification fired;
  clock.Schedule(clock.Now() + absl::Milliseconds(1), [&] { fired.Notify(); });
  // A deadline far beyond what a condition variable can wait for must not
  // make the timer thread spin or fire early.
  clock.Schedule(clock.Now() + absl::Hours(24 * 365 * 1000), [] { ADD_FAILURE(); });
  EXPECT_TRUE(fired.WaitForNotificationWithTimeout(kRealPatience));
}

}  // namespace
}  // namespace engine
}  // namespace nichandover
