#include "daemon/platform/linux/module_connection.h"

#include <algorithm>

#include "pci/bdf.h"

namespace nichandover {
namespace platform {
namespace linux_backend {

absl::StatusOr<hook::HookClient> ModuleConnection::Connect() const {
  auto transport = open_();
  if (!transport.ok()) return transport.status();
  return hook::HookClient(*std::move(transport));
}

absl::StatusOr<std::string> CanonicalBdf(const std::string& bdf) {
  auto parsed = pci::ParseBdf(bdf);
  if (!parsed.ok()) return parsed.status();
  return parsed->ToString();
}

absl::StatusOr<std::vector<hook::MsiVector>> ReadVectorsInOrder(hook::HookClient& client,
                                                                const std::string& bdf) {
  auto vectors = client.ReadMsi(bdf);
  if (!vectors.ok()) return vectors.status();
  std::sort(vectors->begin(), vectors->end(),
            [](const hook::MsiVector& a, const hook::MsiVector& b) { return a.index < b.index; });
  return vectors;
}

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
