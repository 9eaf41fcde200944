#include "cli/command.h"

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace cli {
namespace {

absl::StatusOr<ParsedCommandLine> Parse(std::vector<std::string> argv) {
  return ParseCommandLine(argv);
}

TEST(CommandLineTest, FindsCommandWithGlobalFlagsAnywhere) {
  auto p = Parse({"--server", "unix:/x.sock", "nodes", "--json"});
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_NE(p->command, nullptr);
  EXPECT_EQ(absl::StrJoin(p->command->words, " "), "nodes");
  EXPECT_EQ(p->flags.at("server"), "unix:/x.sock");
  EXPECT_EQ(p->flags.at("json"), "true");
  EXPECT_TRUE(p->args.empty());
}

TEST(CommandLineTest, InlineFlagValues) {
  auto p = Parse({"nodes", "--server=127.0.0.1:1"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->flags.at("server"), "127.0.0.1:1");
}

TEST(CommandLineTest, PositionalArguments) {
  auto p = Parse({"help", "nodes"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->args, std::vector<std::string>{"nodes"});
}

TEST(CommandLineTest, HelpFlag) {
  for (auto argv : std::vector<std::vector<std::string>>{{"nodes", "--help"}, {"-h", "nodes"}}) {
    auto p = Parse(argv);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(p->help);
    ASSERT_NE(p->command, nullptr);
  }
}

TEST(CommandLineTest, ErrorsSayWhatIsWrong) {
  struct Case {
    std::vector<std::string> argv;
    const char* fragment;
  } cases[] = {
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"nodes", "--bogus"}, "unknown option '--bogus' for 'nicctl nodes'"},
      {{"nodes", "-x"}, "options are spelled --name"},
      {{"nodes", "--server"}, "--server needs a value"},
      {{"nodes", "--json=yes"}, "--json takes no value"},
      {{"nodes", "extra"}, "too many arguments for 'nicctl nodes'"},
      {{"completion"}, "missing arguments for 'nicctl completion'; usage: nicctl completion bash"},
  };
  for (const auto& c : cases) {
    auto p = Parse(c.argv);
    ASSERT_FALSE(p.ok()) << absl::StrJoin(c.argv, " ");
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find(c.fragment), std::string::npos) << p.status();
  }
}

TEST(CommandLineTest, HelpListsEveryCommandAndExitCodes) {
  std::string help = TopLevelHelp();
  for (const auto& c : AllCommands()) {
    EXPECT_NE(help.find(absl::StrJoin(c.words, " ")), std::string::npos);
  }
  EXPECT_NE(help.find("7  daemon unreachable"), std::string::npos);
  std::string md = MarkdownReference();
  EXPECT_NE(md.find("## nicctl nodes"), std::string::npos);
}

TEST(CommandLineTest, CompletionCoversCommandsAndFlags) {
  std::string script = BashCompletion();
  EXPECT_NE(script.find("complete -F _nicctl nicctl"), std::string::npos);
  EXPECT_NE(script.find("\"version\") opts=\""), std::string::npos);
  EXPECT_NE(script.find("--client"), std::string::npos);
}

TEST(CommandLineTest, ManPageHasEveryCommandInRoff) {
  std::string man = ManPage();
  EXPECT_EQ(man.rfind(".\\\" Generated", 0), 0u) << man.substr(0, 80);
  EXPECT_NE(man.find(".TH NICCTL 1"), std::string::npos);
  for (const auto& c : AllCommands()) {
    // Dashes are escaped in roff; command words have none.
    EXPECT_NE(man.find(".SS nicctl " + absl::StrJoin(c.words, " ")), std::string::npos)
        << absl::StrJoin(c.words, " ");
  }
  EXPECT_NE(man.find("\\fB\\-\\-server\\fR"), std::string::npos);
  // No line may start a roff request by accident: every line of text that
  // starts with '.' is one of ours.
  for (absl::string_view line : absl::StrSplit(man, '\n')) {
    if (line.empty() || line[0] != '.') continue;
    EXPECT_TRUE(absl::StartsWith(line, ".\\\"") || absl::StartsWith(line, ".TH") ||
                absl::StartsWith(line, ".SH") || absl::StartsWith(line, ".SS") ||
                absl::StartsWith(line, ".TP") || absl::StartsWith(line, ".PP") ||
                absl::StartsWith(line, ".B ") || absl::StartsWith(line, ".nf") ||
                absl::StartsWith(line, ".fi"))
        << line;
  }
}

}  // namespace
}  // namespace cli
}  // namespace nichandover
