// nicctl's command definitions. Each command is declared once, as data; the
// parser, `--help`, the bash completion and docs/nicctl.md are all generated
// from these declarations, so they cannot drift apart.
#ifndef NICHANDOVER_CLI_COMMAND_H_
#define NICHANDOVER_CLI_COMMAND_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace nichandover {
namespace cli {

class Context;

struct FlagSpec {
  std::string name;        // without dashes: "to"
  std::string value_name;  // "NODE"; empty for a boolean flag
  std::string help;
};

struct CommandSpec {
  std::vector<std::string> words;  // {"handover", "list"}
  std::string args;                // synopsis of positional args: "NIC --to NODE"
  std::string summary;             // one line
  std::string help;                // paragraphs, shown by `nicctl CMD --help`
  std::vector<FlagSpec> flags;     // command-specific flags
  int min_args = 0;
  int max_args = 0;  // -1: unbounded
  std::function<int(Context&)> run;
};

// Flags every command takes.
const std::vector<FlagSpec>& GlobalFlags();

// All commands, in the order help lists them.
const std::vector<CommandSpec>& AllCommands();

// A parsed command line.
struct ParsedCommandLine {
  const CommandSpec* command = nullptr;  // nullptr: no command given
  std::vector<std::string> args;
  std::map<std::string, std::string> flags;  // boolean flags map to "true"
  bool help = false;
};

// INVALID_ARGUMENT with a message fit for the user on a bad command line.
absl::StatusOr<ParsedCommandLine> ParseCommandLine(const std::vector<std::string>& argv);

std::string TopLevelHelp();
std::string CommandHelp(const CommandSpec& command);
std::string BashCompletion();
std::string MarkdownReference();
// The nicctl(1) manual page in roff, from the same table.
std::string ManPage();

}  // namespace cli
}  // namespace nichandover

#endif  // NICHANDOVER_CLI_COMMAND_H_
