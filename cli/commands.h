// The groups of nicctl commands; AllCommands() (command.cc) lists them in order.
#ifndef NICHANDOVER_CLI_COMMANDS_H_
#define NICHANDOVER_CLI_COMMANDS_H_

#include <vector>

#include "cli/command.h"

namespace nichandover {
namespace cli {

// nodes, version, help, completion.
std::vector<CommandSpec> BasicCommands();

}  // namespace cli
}  // namespace nichandover

#endif  // NICHANDOVER_CLI_COMMANDS_H_
