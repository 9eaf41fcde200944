// nicctl: the operator's command-line tool for nichandover.
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/context.h"
#include "cli/exit_codes.h"

int main(int argc, char** argv) {
  using namespace nichandover::cli;
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = ParseCommandLine(args);
  if (!parsed.ok()) {
    std::cerr << "nicctl: " << parsed.status().message() << "\n";
    return kExitUsage;
  }
  if (parsed->command == nullptr) {
    if (parsed->help) {
      std::cout << TopLevelHelp();
      return kExitOk;
    }
    std::cerr << TopLevelHelp();
    return kExitUsage;
  }
  if (parsed->help) {
    std::cout << CommandHelp(*parsed->command);
    return kExitOk;
  }
  const CommandSpec* command = parsed->command;
  Context ctx(std::move(*parsed), std::cout, std::cerr, isatty(STDOUT_FILENO) == 1);
  int rc = command->run(ctx);
  std::cout.flush();
  return rc;
}
