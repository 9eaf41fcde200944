// Randomized fault test of the handover protocol: thousands of handovers on
// three nodes and two NICs with random message loss, duplication and
// reordering, failing and hanging platform calls (released late), timers
// firing early, journals compacted, operators deciding (RecoverNic) at random
// moments, and daemons crashing and restarting from their journals. Each
// handover picks its commit path (auto, daemon or kernel; n1 and n2 have the
// kernel commit path, n3 has not), so both paths run, with doorbells
// delivered late or lost, KernelEvents lost, and HandOffs that stop part-way.
//
// After every step: never two nodes running a NIC, a running node has the
// NIC's interrupts, record epochs never go back, attach resumes from the
// rings where the source stopped, actions only after their records are
// durable (all checked by the world). After every round, once faults stop and
// messages flow: each NIC settled (record ACTIVE, its owner runs it, nobody
// else does, interrupts at the owner) and no handover left stuck.
//
// The seed is printed on failure; rerun one with NICHANDOVER_SEED=<seed>.
//
// With NICHANDOVER_TRACE_DIR set, each seed's run is also written to
// <dir>/seed-<seed>.trace for daemon/protocol/model/trace_check.py (format
// in docs/protocol.md, "Traces"); NICHANDOVER_SEEDS and NICHANDOVER_ROUNDS
// then choose how many seeds and rounds.
#include <cstdlib>
#include <deque>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/protocol/testing/world.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace protocol {
namespace testing {
namespace {

constexpr OpKind kFaultableOps[] = {
    OpKind::kReadRecord, OpKind::kCompareAndSwap, OpKind::kWriteHandoffRings,
    OpKind::kReadHandoffRings, OpKind::kQuiesce, OpKind::kResume, OpKind::kAttach,
    OpKind::kRelease, OpKind::kReadMessages, OpKind::kReroute, OpKind::kRestore,
    OpKind::kReserveMessages, OpKind::kReleaseReservation, OpKind::kArm, OpKind::kHandOff,
};

constexpr platform::HandOffStage kHandOffStages[] = {
    platform::HandOffStage::kNothing,      platform::HandOffStage::kQuiesced,
    platform::HandOffStage::kRerouted,     platform::HandOffStage::kRingsWritten,
    platform::HandOffStage::kHandedOff,
};

struct Outcome {
  int creates = 0;
  int committed = 0;
  int rolled_back = 0;
  int kernel_path = 0;     // committed handovers whose source handed off in one kernel call
  int kernel_commits = 0;  // commits made by a target's kernel alone
  std::vector<std::string> failures;
  std::deque<std::string> recent;  // the trace's tail, for the failure message
};

class RandomRun {
 public:
  // `trace_file`, when not empty, receives the run as a trace.
  RandomRun(uint64_t seed, const std::string& trace_file)
      : rng_(seed), world_([this](const std::string& line) { Trace(line); }) {
    if (!trace_file.empty()) {
      trace_.open(trace_file);
      trace_ << "# nichandover protocol trace v1 (docs/protocol.md, \"Traces\")\n";
      // apic = the node's index, as World::AddNode assigns it.
      trace_ << "node n1 apic=0\nnode n2 apic=1\nnode n3 apic=2\n";
      trace_ << "nic 0000:03:00.0 owner=n1 epoch=1\nnic 0000:04:00.0 owner=n2 epoch=1\n";
    }
    for (const char* id : {"n1", "n2", "n3"}) world_.AddNode(id, /*free_vectors=*/64);
    world_.SetKernelCommit("n1", true);
    world_.SetKernelCommit("n2", true);
    NicSpec a;
    a.bdf = "0000:03:00.0";
    a.owner = "n1";
    a.vectors = 2;
    world_.AddNic(a);
    NicSpec b;
    b.bdf = "0000:04:00.0";
    b.owner = "n2";
    b.vectors = 3;
    b.queues = 4;
    world_.AddNic(b);
    world_.StartAll();
  }

  Outcome Run(int rounds, int steps_per_round) {
    for (int round = 0; round < rounds && out_.failures.empty(); ++round) {
      world_.HoldResults(round % 2 == 1);
      StartHandovers(round);
      for (int step = 0; step < steps_per_round && out_.failures.empty(); ++step) {
        RandomStep();
        CheckViolations("after a step of round " + std::to_string(round));
      }
      Settle(round);
    }
    return std::move(out_);
  }

 private:
  void Trace(const std::string& line) {
    if (trace_.is_open()) trace_ << line << "\n";
    if (line.find(": answer OK ") != std::string::npos &&
        line.find(" OFFERING ") != std::string::npos) {
      ++out_.creates;
    }
    if (line.find(": persist FINISHED ") != std::string::npos) {
      // Count each handover once, on its source (the line names it first).
      std::string node = line.substr(0, line.find(':'));
      std::string rest = line.substr(line.find("FINISHED ") + 9);
      std::string route = rest.substr(rest.find(' ') + 1);
      if (route.rfind(node + "->", 0) == 0) {
        if (rest.find(" COMMITTED ") != std::string::npos) ++out_.committed;
        if (rest.find(" COMMITTED ") != std::string::npos &&
            rest.find(" path=KERNEL") != std::string::npos) {
          ++out_.kernel_path;
        }
        if (rest.find(" ROLLED_BACK ") != std::string::npos) ++out_.rolled_back;
      }
    }
    if (line.find(": kernel-commit ") != std::string::npos &&
        line.size() > 6 && line.compare(line.size() - 6, 6, " => ok") == 0) {
      ++out_.kernel_commits;
    }
    out_.recent.push_back(line);
    if (out_.recent.size() > 400) out_.recent.pop_front();
  }

  int Uniform(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool Chance(int percent) { return Uniform(100) < percent; }
  const std::string& AnyNode() { return nodes_[Uniform(static_cast<int>(nodes_.size()))]; }

  void StartHandovers(int round) {
    for (const std::string& bdf : world_.nics()) {
      if (!Chance(90) || !world_.NicIdle(bdf)) continue;
      std::string owner = world_.RecordOwner(bdf);
      std::string target = owner;
      while (target == owner) target = AnyNode();
      std::string id = absl::StrCat("h", ++handovers_);
      int dice = Uniform(10);
      v1::CommitPath path = dice < 6   ? v1::COMMIT_PATH_UNSPECIFIED
                            : dice < 8 ? v1::COMMIT_PATH_DAEMON
                                       : v1::COMMIT_PATH_KERNEL;
      world_.Create(owner, id, absl::StrCat("r", round, "-", bdf), bdf, target, path);
    }
  }

  void RandomStep() {
    if (Chance(35)) return world_.CompleteAt(static_cast<size_t>(Uniform(1000)));
    if (world_.PendingDoorbells() > 0 && Chance(20)) {
      // A doorbell reaches its kernel at a random moment, or never.
      if (Chance(75)) return world_.DeliverDoorbellAt(static_cast<size_t>(Uniform(1000)));
      return world_.LoseDoorbellAt(static_cast<size_t>(Uniform(1000)));
    }
    int dice = Uniform(100);
    if (dice < 55) {
      world_.DeliverAt(static_cast<size_t>(Uniform(1000)));
    } else if (dice < 62) {
      world_.DropAt(static_cast<size_t>(Uniform(1000)));
    } else if (dice < 66) {
      world_.DuplicateAt(static_cast<size_t>(Uniform(1000)));
    } else if (dice < 78) {
      const std::string& node = AnyNode();
      if (world_.IsUp(node)) world_.FireTimers(node, absl::ZeroDuration());
    } else if (dice < 84) {
      const std::string& node = AnyNode();
      OpKind kind = kFaultableOps[Uniform(sizeof(kFaultableOps) / sizeof(kFaultableOps[0]))];
      FaultAction action = Chance(60) ? FaultAction::kFail
                           : Chance(50) ? FaultAction::kHang
                           : Chance(30) ? FaultAction::kLoseAnswer
                           : Chance(50) ? FaultAction::kCrashBefore
                                        : FaultAction::kCrashAfter;
      if (kind == OpKind::kHandOff && Chance(50)) {
        // Part-way: what the kernel did so far stays done.
        world_.StopHandOffAfter(
            node, kHandOffStages[Uniform(sizeof(kHandOffStages) / sizeof(kHandOffStages[0]))],
            Chance(50) ? absl::StatusCode::kDeadlineExceeded : absl::StatusCode::kUnavailable);
      } else if (Chance(10)) {
        world_.LoseKernelEvents(node, 1);
      } else {
        world_.SetFault(node, kind, action);
      }
    } else if (dice < 88) {
      world_.ReleaseHung(AnyNode());
    } else if (dice < 90) {
      const std::string& node = AnyNode();
      if (world_.IsUp(node)) world_.CompactJournal(node);
    } else if (dice < 92) {
      // An operator deciding at a random moment, on a random node.
      std::vector<std::string> nics = world_.nics();
      world_.RecoverNic(AnyNode(), absl::StrCat("op", ++recoveries_),
                        nics[Uniform(static_cast<int>(nics.size()))],
                        Chance(50) ? v1::RECOVERY_DECISION_COMMIT : v1::RECOVERY_DECISION_ABORT);
    } else if (dice < 95) {
      world_.Crash(AnyNode());
    } else {
      world_.Restart(AnyNode());
    }
  }

  // Faults stop, crashed daemons come back, messages flow, timers fire: every
  // handover must finish and the NICs settle.
  void Settle(int round) {
    world_.ClearFaults();
    world_.HoldResults(false);
    for (const std::string& node : nodes_) world_.Restart(node);
    while (world_.PendingDoorbells() > 0) {
      if (Chance(80)) {
        world_.DeliverDoorbellAt(0);
      } else {
        world_.LoseDoorbellAt(0);
      }
    }
    for (int i = 0; i < 60; ++i) {
      world_.Stabilize();
      if (!world_.HasLiveHandovers()) break;
      for (const std::string& node : nodes_) world_.FireTimers(node, absl::ZeroDuration());
    }
    world_.Stabilize();
    CheckViolations("while settling round " + std::to_string(round));
    for (const std::string& problem : world_.CheckSettled()) {
      out_.failures.push_back(absl::StrCat("round ", round, ": ", problem));
    }
  }

  void CheckViolations(const std::string& when) {
    for (const std::string& v : world_.violations()) out_.failures.push_back(when + ": " + v);
  }

  std::mt19937_64 rng_;
  std::ofstream trace_;
  World world_;
  Outcome out_;
  std::vector<std::string> nodes_ = {"n1", "n2", "n3"};
  int handovers_ = 0;
  int recoveries_ = 0;
};

TEST(RandomFaultTest, InvariantsHoldUnderRandomFaults) {
  uint64_t first_seed = 1;
  int seeds = 12;
  int rounds = 60;
  if (const char* env = std::getenv("NICHANDOVER_SEED")) {
    first_seed = std::strtoull(env, nullptr, 10);
    seeds = 1;
  }
  std::string trace_dir;
  if (const char* env = std::getenv("NICHANDOVER_TRACE_DIR")) trace_dir = env;
  if (const char* env = std::getenv("NICHANDOVER_SEEDS")) seeds = std::atoi(env);
  if (const char* env = std::getenv("NICHANDOVER_ROUNDS")) rounds = std::atoi(env);
  const bool default_run = seeds == 12 && rounds == 60;
  int creates = 0, committed = 0, rolled_back = 0, kernel_path = 0, kernel_commits = 0;
  for (uint64_t seed = first_seed; seed < first_seed + seeds; ++seed) {
    std::string trace_file =
        trace_dir.empty() ? "" : absl::StrCat(trace_dir, "/seed-", seed, ".trace");
    Outcome outcome = RandomRun(seed, trace_file).Run(rounds, /*steps_per_round=*/40);
    creates += outcome.creates;
    committed += outcome.committed;
    rolled_back += outcome.rolled_back;
    kernel_path += outcome.kernel_path;
    kernel_commits += outcome.kernel_commits;
    ASSERT_TRUE(outcome.failures.empty())
        << "seed " << seed << " (rerun with NICHANDOVER_SEED=" << seed << "):\n  "
        << absl::StrJoin(outcome.failures, "\n  ") << "\nlast trace lines:\n"
        << absl::StrJoin(outcome.recent, "\n");
  }
  std::cout << creates << " handovers started, " << committed << " committed (" << kernel_path
            << " on the kernel path, " << kernel_commits << " commits by a target's kernel), "
            << rolled_back << " rolled back\n";
  // A rerun of one seed, or a trace run, checks only the invariants.
  if (!default_run) return;
  EXPECT_GE(creates, 1000);
  // Faults must not turn every handover into a rollback, nor none.
  EXPECT_GE(committed, creates / 5);
  EXPECT_GE(rolled_back, creates / 20);
  // Both commit paths run, and armed kernels commit alone.
  EXPECT_GE(kernel_path, committed / 10);
  EXPECT_GE(committed - kernel_path, committed / 10);
  EXPECT_GE(kernel_commits, kernel_path / 10);
}

}  // namespace
}  // namespace testing
}  // namespace protocol
}  // namespace nichandover
