// The groups of nicctl commands; AllCommands() (command.cc) lists them in order.
#ifndef NICHANDOVER_CLI_COMMANDS_H_
#define NICHANDOVER_CLI_COMMANDS_H_

#include <vector>

#include "cli/command.h"

namespace nichandover {
namespace cli {

// nodes.
std::vector<CommandSpec> NodeCommands();
// nics, nic show, msi show (commands_nic.cc).
std::vector<CommandSpec> NicCommands();
// handover, handover list|show|watch|cancel, recover (commands_handover.cc).
std::vector<CommandSpec> HandoverCommands();
// drain (commands_drain.cc).
std::vector<CommandSpec> DrainCommands();
// version, help, completion.
std::vector<CommandSpec> BasicCommands();

}  // namespace cli
}  // namespace nichandover

#endif  // NICHANDOVER_CLI_COMMANDS_H_
