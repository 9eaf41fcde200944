#include "cli/command.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/exit_codes.h"
#include "common/version.h"

namespace nichandover {
namespace cli {
namespace {

const FlagSpec* FindFlag(const std::vector<FlagSpec>& flags, const std::string& name) {
  for (const auto& f : flags) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string CommandName(const CommandSpec& c) { return absl::StrJoin(c.words, " "); }

std::string FlagUsage(const FlagSpec& f) {
  return f.value_name.empty() ? absl::StrCat("--", f.name)
                              : absl::StrCat("--", f.name, " ", f.value_name);
}

void AppendFlagTable(const std::vector<FlagSpec>& flags, std::string* out) {
  size_t width = 0;
  for (const auto& f : flags) width = std::max(width, FlagUsage(f).size());
  for (const auto& f : flags) {
    std::string usage = FlagUsage(f);
    absl::StrAppend(out, "  ", usage, std::string(width - usage.size() + 2, ' '), f.help, "\n");
  }
}

}  // namespace

const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"server", "ADDR",
       "daemon to talk to: unix:/PATH or HOST:PORT (default: $NICCTL_SERVER, else "
       "unix:/run/nichandover/nichandoverd.sock)"},
      {"json", "", "print one JSON document instead of text"},
      {"rpc-timeout", "DURATION", "deadline for each call to the daemon (default 10s)"},
      {"help", "", "show help for the command"},
  };
  return *flags;
}

absl::StatusOr<ParsedCommandLine> ParseCommandLine(const std::vector<std::string>& argv) {
  ParsedCommandLine parsed;
  // Which flags take a value depends on the command, so find the command
  // first (the longest declared word sequence among the non-flag words), then
  // parse flags and positional arguments with its flag table.
  std::vector<std::string> positional;
  auto lookup = [&](const std::string& name, const CommandSpec* cmd) -> const FlagSpec* {
    if (const FlagSpec* f = FindFlag(GlobalFlags(), name)) return f;
    return cmd ? FindFlag(cmd->flags, name) : nullptr;
  };
  // Identify the command by the longest match of leading non-flag words.
  std::vector<std::string> leading;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--") break;
    if (absl::StartsWith(arg, "-") && arg.size() > 1) {
      // Skip a global value flag's value so "--server X nodes" works.
      std::string name = arg.substr(2);
      if (name.find('=') == std::string::npos) {
        const FlagSpec* f = FindFlag(GlobalFlags(), name);
        if (f && !f->value_name.empty()) ++i;
      }
      continue;
    }
    leading.push_back(arg);
  }
  const CommandSpec* best = nullptr;
  for (const auto& c : AllCommands()) {
    if (c.words.size() <= leading.size() &&
        std::equal(c.words.begin(), c.words.end(), leading.begin()) &&
        (best == nullptr || c.words.size() > best->words.size())) {
      best = &c;
    }
  }
  parsed.command = best;
  if (best == nullptr && !leading.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown command '", leading[0], "'; run 'nicctl --help' for the list"));
  }

  size_t command_words_left = best ? best->words.size() : 0;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--") {
      positional.insert(positional.end(), argv.begin() + i + 1, argv.end());
      break;
    }
    if (arg == "-h") {
      parsed.help = true;
      continue;
    }
    if (absl::StartsWith(arg, "-") && !absl::StartsWith(arg, "--") && arg.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown option '", arg, "' (options are spelled --name)"));
    }
    if (absl::StartsWith(arg, "--")) {
      std::string name = arg.substr(2), value;
      bool inline_value = false;
      if (size_t eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        inline_value = true;
      }
      const FlagSpec* spec = lookup(name, best);
      if (spec == nullptr) {
        return absl::InvalidArgumentError(
            best ? absl::StrCat("unknown option '--", name, "' for 'nicctl ", CommandName(*best),
                                "'; see 'nicctl ", CommandName(*best), " --help'")
                 : absl::StrCat("unknown option '--", name, "'; see 'nicctl --help'"));
      }
      if (spec->name == "help") {
        parsed.help = true;
        continue;
      }
      if (spec->value_name.empty()) {
        if (inline_value) {
          return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
        }
        parsed.flags[name] = "true";
      } else {
        if (!inline_value) {
          if (i + 1 >= argv.size()) {
            return absl::InvalidArgumentError(
                absl::StrCat("--", name, " needs a value (", spec->value_name, ")"));
          }
          value = argv[++i];
        }
        parsed.flags[name] = value;
      }
      continue;
    }
    if (command_words_left > 0) {
      --command_words_left;
      continue;
    }
    positional.push_back(arg);
  }
  parsed.args = std::move(positional);
  if (best && !parsed.help) {
    int n = static_cast<int>(parsed.args.size());
    if (n < best->min_args || (best->max_args >= 0 && n > best->max_args)) {
      return absl::InvalidArgumentError(absl::StrCat(
          n < best->min_args ? "missing arguments" : "too many arguments", " for 'nicctl ",
          CommandName(*best), "'; usage: nicctl ", CommandName(*best),
          best->args.empty() ? "" : " ", best->args));
    }
  }
  return parsed;
}

std::string TopLevelHelp() {
  std::string out =
      "Usage: nicctl [--server ADDR] [--json] COMMAND [ARGS...]\n"
      "\n"
      "Operator's tool for nichandover: hands a running PCI NIC over from one OS node\n"
      "to another through the nodes' nichandoverd daemons.\n"
      "\n"
      "Commands:\n";
  size_t width = 0;
  for (const auto& c : AllCommands()) width = std::max(width, CommandName(c).size());
  for (const auto& c : AllCommands()) {
    std::string name = CommandName(c);
    absl::StrAppend(&out, "  ", name, std::string(width - name.size() + 2, ' '), c.summary,
                    "\n");
  }
  absl::StrAppend(&out, "\nGlobal options:\n");
  AppendFlagTable(GlobalFlags(), &out);
  absl::StrAppend(&out, "\nExit status:\n", ExitCodeTable(),
                  "\nRun 'nicctl COMMAND --help' for a command's details.\n");
  return out;
}

std::string CommandHelp(const CommandSpec& c) {
  std::string out = absl::StrCat("Usage: nicctl ", CommandName(c), c.args.empty() ? "" : " ",
                                 c.args, "\n\n", c.summary, "\n");
  if (!c.help.empty()) absl::StrAppend(&out, "\n", c.help, "\n");
  if (!c.flags.empty()) {
    absl::StrAppend(&out, "\nOptions:\n");
    AppendFlagTable(c.flags, &out);
  }
  absl::StrAppend(&out, "\nGlobal options:\n");
  AppendFlagTable(GlobalFlags(), &out);
  absl::StrAppend(&out, "\nExit status:\n", ExitCodeTable());
  return out;
}

std::string BashCompletion() {
  // Completes command words, then the flags of the chosen command.
  std::string cases;
  std::vector<std::string> first_words;
  std::map<std::string, std::vector<std::string>> sub_words;
  for (const auto& c : AllCommands()) {
    if (std::find(first_words.begin(), first_words.end(), c.words[0]) == first_words.end()) {
      first_words.push_back(c.words[0]);
    }
    if (c.words.size() > 1) sub_words[c.words[0]].push_back(c.words[1]);
  }
  std::string global;
  for (const auto& f : GlobalFlags()) absl::StrAppend(&global, " --", f.name);
  // Flags that take a value: their value is not a command word.
  std::vector<std::string> value_flags;
  auto note_value_flag = [&](const FlagSpec& f) {
    std::string flag = absl::StrCat("--", f.name);
    if (!f.value_name.empty() &&
        std::find(value_flags.begin(), value_flags.end(), flag) == value_flags.end()) {
      value_flags.push_back(flag);
    }
  };
  for (const auto& f : GlobalFlags()) note_value_flag(f);
  for (const auto& c : AllCommands()) {
    for (const auto& f : c.flags) note_value_flag(f);
  }
  for (const auto& c : AllCommands()) {
    std::string flags = global;
    for (const auto& f : c.flags) absl::StrAppend(&flags, " --", f.name);
    absl::StrAppend(&cases, "    \"", CommandName(c), "\") opts=\"", flags, "\" ;;\n");
  }
  std::string subs;
  for (const auto& [word, subs_of] : sub_words) {
    absl::StrAppend(&subs, "    ", word, ") subs=\"", absl::StrJoin(subs_of, " "), "\" ;;\n");
  }
  return absl::StrCat(
      "# bash completion for nicctl (generated by 'nicctl completion bash')\n"
      "_nicctl() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" words=() w i\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    w=\"${COMP_WORDS[i]}\"\n"
      "    case \"$w\" in ",
      absl::StrJoin(value_flags, "|"),
      ") ((i++)); continue ;; -*) continue ;; esac\n"
      "    words+=(\"$w\")\n"
      "  done\n"
      "  if [[ ${#words[@]} -eq 0 ]]; then\n"
      "    COMPREPLY=($(compgen -W \"",
      absl::StrJoin(first_words, " "), global,
      "\" -- \"$cur\")); return\n"
      "  fi\n"
      "  local subs=\"\"\n"
      "  case \"${words[0]}\" in\n",
      subs,
      "  esac\n"
      "  if [[ ${#words[@]} -eq 1 && -n \"$subs\" && \"$cur\" != -* ]]; then\n"
      "    COMPREPLY=($(compgen -W \"$subs\" -- \"$cur\")); return\n"
      "  fi\n"
      "  local opts=\"\" cmd=\"${words[0]}\"\n"
      "  [[ ${#words[@]} -gt 1 && \" $subs \" == *\" ${words[1]} \"* ]] && cmd=\"${words[0]} "
      "${words[1]}\"\n"
      "  case \"$cmd\" in\n",
      cases,
      "  esac\n"
      "  COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
      "}\n"
      "complete -F _nicctl nicctl\n");
}

std::string MarkdownReference() {
  std::string out =
      "# nicctl reference\n\n"
      "<!-- Generated by `nicctl help --markdown` from the command definitions in "
      "cli/; do not edit by hand. -->\n\n"
      "```\nnicctl [--server ADDR] [--json] COMMAND [ARGS...]\n```\n\n"
      "## Global options\n\n";
  for (const auto& f : GlobalFlags()) {
    absl::StrAppend(&out, "- `", FlagUsage(f), "`: ", f.help, "\n");
  }
  absl::StrAppend(&out, "\n## Exit status\n\n```\n", ExitCodeTable(), "```\n");
  for (const auto& c : AllCommands()) {
    absl::StrAppend(&out, "\n## nicctl ", CommandName(c), "\n\n```\nnicctl ", CommandName(c),
                    c.args.empty() ? "" : " ", c.args, "\n```\n\n", c.summary, "\n");
    if (!c.help.empty()) absl::StrAppend(&out, "\n", c.help, "\n");
    if (!c.flags.empty()) {
      absl::StrAppend(&out, "\nOptions:\n\n");
      for (const auto& f : c.flags) {
        absl::StrAppend(&out, "- `", FlagUsage(f), "`: ", f.help, "\n");
      }
    }
  }
  return out;
}

namespace {

// Text as roff shows it literally: backslashes escaped, a leading control
// character defused, dashes kept as ASCII hyphen-minus.
std::string Roff(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out = "\\&" + out;
  return out;
}

// Preformatted lines, as the help text is laid out for a terminal.
std::string RoffLines(const std::string& text) {
  std::string out = ".nf\n";
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::StrAppend(&out, Roff(std::string(line)), "\n");
  }
  return out + ".fi\n";
}

void RoffFlags(const std::vector<FlagSpec>& flags, std::string* out) {
  for (const auto& f : flags) {
    absl::StrAppend(out, ".TP\n\\fB\\-\\-", Roff(f.name), "\\fR");
    if (!f.value_name.empty()) absl::StrAppend(out, " \\fI", Roff(f.value_name), "\\fR");
    absl::StrAppend(out, "\n", Roff(f.help), "\n");
  }
}

}  // namespace

std::string ManPage() {
  std::string out = absl::StrCat(
      ".\\\" Generated by 'nicctl help --man' from the command definitions in cli/.\n"
      ".TH NICCTL 1 \"\" \"nichandover ", kVersion, "\" \"nichandover\"\n"
      ".SH NAME\n"
      "nicctl \\- hand PCI NICs over between the OS nodes of one machine\n"
      ".SH SYNOPSIS\n"
      ".B nicctl\n"
      "[\\fB\\-\\-server\\fR \\fIADDR\\fR] [\\fB\\-\\-json\\fR] \\fICOMMAND\\fR "
      "[\\fIARGS\\fR...]\n"
      ".SH DESCRIPTION\n"
      "nicctl talks to the local nichandoverd(8) over its socket: it lists nodes and NICs, "
      "starts, watches and cancels handovers, and decides the recovery of a handover the "
      "daemons could not finish alone.\n"
      "Members of the \\fBnichandover\\fR group may use it without root.\n"
      ".SH OPTIONS\n");
  RoffFlags(GlobalFlags(), &out);
  absl::StrAppend(&out, ".SH COMMANDS\n");
  for (const auto& c : AllCommands()) {
    absl::StrAppend(&out, ".SS nicctl ", Roff(CommandName(c)),
                    c.args.empty() ? "" : " ", Roff(c.args), "\n", Roff(c.summary), ".\n");
    if (!c.help.empty()) absl::StrAppend(&out, ".PP\n", RoffLines(c.help));
    if (!c.flags.empty()) {
      absl::StrAppend(&out, ".PP\nOptions:\n");
      RoffFlags(c.flags, &out);
    }
  }
  absl::StrAppend(&out, ".SH EXIT STATUS\n", RoffLines(ExitCodeTable()),
                  ".SH ENVIRONMENT\n.TP\n.B NICCTL_SERVER\nThe daemon's address when "
                  "\\fB\\-\\-server\\fR is not given.\n"
                  ".SH SEE ALSO\nnichandoverd(8)\n");
  return out;
}

}  // namespace cli
}  // namespace nichandover
