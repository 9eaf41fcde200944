#include "sim/flags.h"

#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/match.h"

namespace nichandover {
namespace sim {

absl::StatusOr<Flags> Flags::Parse(int argc, char** argv, const std::vector<std::string>& known,
                                   const std::vector<std::string>& booleans) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!absl::StartsWith(arg, "--")) {
      flags.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (std::find(booleans.begin(), booleans.end(), name) != booleans.end()) {
      value = "true";
    } else {
      if (i + 1 >= argc) return absl::InvalidArgumentError("--" + name + " needs a value");
      value = argv[++i];
    }
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return absl::InvalidArgumentError("unknown flag --" + name);
    }
    flags.values_[name].push_back(value);
  }
  return flags;
}

std::string Flags::Get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> Flags::GetAll(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

absl::StatusOr<double> Flags::GetNumber(const std::string& name, double fallback) const {
  if (!Has(name)) return fallback;
  double value;
  std::string text = Get(name);
  if (absl::StartsWith(text, "0x")) {
    uint32_t hex;
    if (!absl::SimpleHexAtoi(text, &hex)) {
      return absl::InvalidArgumentError(absl::StrFormat("--%s: '%s' is not a number", name, text));
    }
    return hex;
  }
  if (!absl::SimpleAtod(text, &value) || !std::isfinite(value)) {
    return absl::InvalidArgumentError(absl::StrFormat("--%s: '%s' is not a number", name, text));
  }
  return value;
}

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

bool WaitForTerminationSignal(double timeout_s) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (timeout_s < 0) {
    int sig;
    sigwait(&set, &sig);
    return true;
  }
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(timeout_s);
  ts.tv_nsec = static_cast<long>((timeout_s - ts.tv_sec) * 1e9);
  return sigtimedwait(&set, nullptr, &ts) > 0;
}

}  // namespace sim
}  // namespace nichandover
