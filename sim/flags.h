// The sim tools' tiny command-line parser: "--name value" and "--name=value"
// pairs, repeatable, plus positional words. (The build has no absl flags.)
#ifndef NICHANDOVER_SIM_FLAGS_H_
#define NICHANDOVER_SIM_FLAGS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace nichandover {
namespace sim {

class Flags {
 public:
  // INVALID_ARGUMENT for a flag without a value or one not in `known`.
  // Flags in `booleans` take no value ("--echo"; "--echo=false" is false).
  static absl::StatusOr<Flags> Parse(int argc, char** argv, const std::vector<std::string>& known,
                                     const std::vector<std::string>& booleans = {});

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> GetAll(const std::string& name) const;
  // INVALID_ARGUMENT when present but not a number.
  absl::StatusOr<double> GetNumber(const std::string& name, double fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

// Blocks SIGINT and SIGTERM in this thread and every thread started after,
// so WaitForTerminationSignal can take them synchronously.
void BlockTerminationSignals();
// Waits up to `timeout_s` seconds (forever if < 0) for SIGINT/SIGTERM; true if one came.
bool WaitForTerminationSignal(double timeout_s);

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_FLAGS_H_
