// Datadriven scenario tests of the handover protocol, in the spirit of etcd
// raft's testdata/*.txt: each file under testdata/ is a script of commands,
// each followed by "----" and the output it must produce (the full trace).
//
//   # comment
//   create node=n1 id=h1 req=r1 nic=0000:03:00.0 to=n2
//   ----
//   n1: op 3 read-record 0000:03:00.0 => ok ACTIVE(n1,1)
//   ...
//
// Regenerate the expected output after an intended change (then read the
// diff!):
//   bazel run //daemon/protocol:scenario_test -- --rewrite
// (or NICHANDOVER_REWRITE=1 in the environment of `bazel run`). Commands are
// documented in testdata/README.md.
#include <dirent.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "daemon/protocol/format.h"
#include "daemon/protocol/testing/world.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace protocol {
namespace testing {
namespace {

bool g_rewrite = false;

struct Block {
  std::vector<std::string> comments;  // lines before the command
  std::string command;
  std::vector<std::string> expected;
};

struct Script {
  std::vector<Block> blocks;
  std::vector<std::string> trailer;  // comments after the last block
};

Script Parse(const std::string& text) {
  Script script;
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  std::vector<std::string> pending;
  size_t i = 0;
  while (i < lines.size()) {
    const std::string& line = lines[i];
    if (line.empty() || line[0] == '#') {
      pending.push_back(line);
      ++i;
      continue;
    }
    Block block;
    block.comments = std::move(pending);
    pending.clear();
    block.command = line;
    ++i;
    if (i < lines.size() && lines[i] == "----") {
      ++i;
      while (i < lines.size() && !lines[i].empty()) block.expected.push_back(lines[i++]);
    }
    script.blocks.push_back(std::move(block));
  }
  while (!pending.empty() && pending.back().empty()) pending.pop_back();
  script.trailer = pending;
  return script;
}

std::string Render(const Script& script, const std::vector<std::vector<std::string>>& outputs) {
  std::string out;
  for (size_t b = 0; b < script.blocks.size(); ++b) {
    const Block& block = script.blocks[b];
    for (const std::string& c : block.comments) out += c + "\n";
    out += block.command + "\n----\n";
    for (const std::string& line : outputs[b]) out += line + "\n";
  }
  for (const std::string& c : script.trailer) out += c + "\n";
  return out;
}

absl::StatusCode ParseCode(const std::string& name) {
  for (int c = 0; c <= 16; ++c) {
    auto code = static_cast<absl::StatusCode>(c);
    if (absl::StatusCodeToString(code) == name) return code;
  }
  return absl::StatusCode::kUnavailable;
}

class Interpreter {
 public:
  Interpreter() : world_([this](const std::string& line) { out_.push_back(line); }) {}

  std::vector<std::string> Run(const std::string& command) {
    out_.clear();
    std::vector<std::string> words = absl::StrSplit(command, ' ', absl::SkipEmpty());
    std::string verb = words[0];
    std::vector<std::string> positional;
    args_.clear();
    for (size_t i = 1; i < words.size(); ++i) {
      std::vector<std::string> kv = absl::StrSplit(words[i], absl::MaxSplits('=', 1));
      if (kv.size() == 2) {
        args_[kv[0]] = kv[1];
      } else {
        positional.push_back(words[i]);
      }
    }
    Execute(verb, positional);
    if (out_.empty()) out_.push_back("ok");
    return out_;
  }

 private:
  std::string Arg(const std::string& key, const std::string& fallback = "") {
    auto it = args_.find(key);
    return it == args_.end() ? fallback : it->second;
  }
  int IntArg(const std::string& key, int fallback) {
    int value = fallback;
    if (args_.count(key) && !absl::SimpleAtoi(args_[key], &value)) {
      out_.push_back("bad number for " + key);
    }
    return value;
  }
  MessageFilter Filter() {
    MessageFilter f;
    f.from = Arg("from");
    f.to = Arg("to");
    f.type = Arg("type");
    f.limit = IntArg("n", -1);
    return f;
  }
  bool OpArg(OpKind* kind) {
    std::string name = Arg("op");
    for (int k = 0; k <= static_cast<int>(OpKind::kHandOff); ++k) {
      if (name == OpKindName(static_cast<OpKind>(k))) {
        *kind = static_cast<OpKind>(k);
        return true;
      }
    }
    out_.push_back("unknown op \"" + name + "\"");
    return false;
  }

  void Execute(const std::string& verb, const std::vector<std::string>& positional) {
    if (verb == "nodes") {
      for (const std::string& id : positional) world_.AddNode(id, IntArg("vectors-" + id, 32));
      for (absl::string_view id : absl::StrSplit(Arg("kernel-commit"), ',', absl::SkipEmpty())) {
        world_.SetKernelCommit(std::string(id), true);
      }
    } else if (verb == "nic") {
      NicSpec spec;
      spec.bdf = Arg("bdf", spec.bdf);
      spec.owner = Arg("owner");
      spec.vectors = IntArg("vectors", 2);
      spec.queues = IntArg("queues", 2);
      for (absl::string_view node : absl::StrSplit(Arg("no-driver"), ',', absl::SkipEmpty())) {
        spec.no_driver.insert(std::string(node));
      }
      world_.AddNic(spec);
    } else if (verb == "inventory") {
      world_.ChangeInventory(Arg("node"), Arg("bdf"), IntArg("vectors", 2), IntArg("add", 0));
    } else if (verb == "start") {
      world_.StartAll();
    } else if (verb == "create") {
      const std::string path = Arg("path", "auto");
      v1::CommitPath commit_path = path == "kernel"   ? v1::COMMIT_PATH_KERNEL
                                   : path == "daemon" ? v1::COMMIT_PATH_DAEMON
                                                      : v1::COMMIT_PATH_UNSPECIFIED;
      if (path != "auto" && path != "kernel" && path != "daemon") {
        out_.push_back("bad path \"" + path + "\" (auto, kernel or daemon)");
      }
      world_.Create(Arg("node"), Arg("id"), Arg("req"), Arg("nic", "0000:03:00.0"), Arg("to"),
                    commit_path);
    } else if (verb == "cancel") {
      world_.Cancel(Arg("node"), Arg("id"));
    } else if (verb == "recover") {
      std::string decision = Arg("decision");
      world_.RecoverNic(Arg("node"), Arg("req"), Arg("nic", "0000:03:00.0"),
                        decision == "commit"  ? v1::RECOVERY_DECISION_COMMIT
                        : decision == "abort" ? v1::RECOVERY_DECISION_ABORT
                                              : v1::RECOVERY_DECISION_UNSPECIFIED);
    } else if (verb == "quiesce") {
      absl::Duration timeout = absl::ZeroDuration();
      if (args_.count("timeout") && !absl::ParseDuration(Arg("timeout"), &timeout)) {
        out_.push_back("bad duration");
      }
      world_.QuiesceNic(Arg("node"), Arg("nic", "0000:03:00.0"), timeout);
    } else if (verb == "resume") {
      world_.ResumeNic(Arg("node"), Arg("nic", "0000:03:00.0"));
    } else if (verb == "deliver") {
      if (world_.Deliver(Filter()) == 0) out_.push_back("no such message");
    } else if (verb == "drop") {
      if (world_.Drop(Filter()) == 0) out_.push_back("no such message");
    } else if (verb == "dup") {
      if (world_.Duplicate(Filter()) == 0) out_.push_back("no such message");
    } else if (verb == "expire") {
      if (world_.Expire(Filter()) == 0) out_.push_back("no such message");
    } else if (verb == "stabilize") {
      world_.Stabilize();
    } else if (verb == "fire") {
      absl::Duration after = absl::ZeroDuration();
      if (args_.count("after") && !absl::ParseDuration(Arg("after"), &after)) {
        out_.push_back("bad duration");
      }
      if (world_.FireTimers(Arg("node"), after) == 0) out_.push_back("no timer");
    } else if (verb == "fail" || verb == "hang" || verb == "crash-before" ||
               verb == "crash-after" || verb == "lose-answer") {
      OpKind kind;
      if (!OpArg(&kind)) return;
      FaultAction action = verb == "fail"           ? FaultAction::kFail
                           : verb == "hang"         ? FaultAction::kHang
                           : verb == "crash-before" ? FaultAction::kCrashBefore
                           : verb == "crash-after"  ? FaultAction::kCrashAfter
                                                    : FaultAction::kLoseAnswer;
      world_.SetFault(Arg("node"), kind, action, IntArg("n", 1),
                      ParseCode(Arg("code", "UNAVAILABLE")), IntArg("skip", 0));
    } else if (verb == "stop-handoff") {
      const std::string after = Arg("after", "nothing");
      int stage = 0;
      while (stage <= static_cast<int>(platform::HandOffStage::kDoorbellRung) &&
             after != platform::HandOffStageName(static_cast<platform::HandOffStage>(stage))) {
        ++stage;
      }
      if (stage > static_cast<int>(platform::HandOffStage::kDoorbellRung)) {
        out_.push_back("unknown stage \"" + after + "\"");
        return;
      }
      world_.StopHandOffAfter(Arg("node"), static_cast<platform::HandOffStage>(stage),
                              ParseCode(Arg("code", "DEADLINE_EXCEEDED")));
    } else if (verb == "kernel-commit") {
      const bool on = positional.size() == 1 && positional[0] == "on";
      if (positional.size() != 1 || (!on && positional[0] != "off")) {
        out_.push_back("kernel-commit node=N on|off");
        return;
      }
      world_.SetKernelCommit(Arg("node"), on);
    } else if (verb == "doorbell") {
      if (world_.DeliverDoorbells(Arg("to"), IntArg("n", -1)) == 0) out_.push_back("no doorbell");
    } else if (verb == "lose-doorbell") {
      if (world_.LoseDoorbells(Arg("to"), IntArg("n", -1)) == 0) out_.push_back("no doorbell");
    } else if (verb == "ring") {
      world_.RingDoorbell(Arg("from"), Arg("to"), Arg("nic", "0000:03:00.0"),
                          static_cast<uint64_t>(IntArg("epoch", 0)));
    } else if (verb == "lose-kernel-events") {
      world_.LoseKernelEvents(Arg("node"), IntArg("n", 1));
    } else if (verb == "crash-on-receive") {
      world_.CrashOnReceive(Arg("node"), Arg("type"));
    } else if (verb == "release-hung") {
      if (world_.ReleaseHung(Arg("node")) == 0) out_.push_back("nothing hung");
    } else if (verb == "compact") {
      world_.CompactJournal(Arg("node"));
    } else if (verb == "lose-journal") {
      world_.LoseJournal(Arg("node"));
    } else if (verb == "crash") {
      world_.Crash(Arg("node"));
    } else if (verb == "restart") {
      world_.Restart(Arg("node"));
    } else if (verb == "owners") {
      world_.PrintOwners();
    } else if (verb == "handovers") {
      world_.PrintHandovers(Arg("node"));
    } else if (verb == "journal") {
      world_.PrintJournal(Arg("node"));
    } else if (verb == "check") {
      std::vector<std::string> problems = world_.CheckSettled();
      for (const std::string& p : problems) out_.push_back("NOT SETTLED: " + p);
      if (problems.empty()) out_.push_back("settled");
    } else {
      out_.push_back("unknown command \"" + verb + "\"");
    }
  }

  std::vector<std::string> out_;
  std::map<std::string, std::string> args_;
  World world_;
};

std::string TestdataDir() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  if (srcdir != nullptr) return std::string(srcdir) + "/nichandover/daemon/protocol/testdata";
  return "daemon/protocol/testdata";
}

std::vector<std::string> ScriptNames() {
  std::vector<std::string> names;
  DIR* dir = opendir(TestdataDir().c_str());
  if (dir == nullptr) return names;
  while (dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (name.size() > 4 && name.substr(name.size() - 4) == ".txt") names.push_back(name);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

class ScenarioTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScenarioTest, MatchesExpectedTrace) {
  std::string path = TestdataDir() + "/" + GetParam();
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  Script script = Parse(text.str());
  ASSERT_FALSE(script.blocks.empty()) << path << " has no commands";

  Interpreter interpreter;
  std::vector<std::vector<std::string>> outputs;
  for (const Block& block : script.blocks) {
    outputs.push_back(interpreter.Run(block.command));
    if (!g_rewrite) {
      EXPECT_EQ(absl::StrJoin(block.expected, "\n"), absl::StrJoin(outputs.back(), "\n"))
          << GetParam() << ": output of `" << block.command << "` differs";
    }
    for (const std::string& line : outputs.back()) {
      EXPECT_EQ(line.rfind("VIOLATION", 0), std::string::npos)
          << GetParam() << ": `" << block.command << "`: " << line;
    }
  }
  if (g_rewrite) {
    const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
    std::string target = workspace != nullptr
                             ? std::string(workspace) + "/daemon/protocol/testdata/" + GetParam()
                             : path;
    std::ofstream out(target);
    out << Render(script, outputs);
    ASSERT_TRUE(out.good()) << "cannot write " << target;
  }
}

INSTANTIATE_TEST_SUITE_P(Scripts, ScenarioTest, ::testing::ValuesIn(ScriptNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param.substr(0, info.param.size() - 4);
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(ScenarioFiles, Exist) { EXPECT_GE(ScriptNames().size(), 1u) << TestdataDir(); }

}  // namespace
}  // namespace testing
}  // namespace protocol
}  // namespace nichandover

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const char* env = std::getenv("NICHANDOVER_REWRITE");
  nichandover::protocol::testing::g_rewrite = env != nullptr && std::strcmp(env, "1") == 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--rewrite") == 0) nichandover::protocol::testing::g_rewrite = true;
  }
  return RUN_ALL_TESTS();
}
