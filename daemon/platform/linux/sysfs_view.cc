#include "daemon/platform/linux/sysfs_view.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace nichandover {
namespace platform {
namespace linux_backend {
namespace {

namespace fs = std::filesystem;

// Entry names of `dir` in name order; empty when it does not exist.
absl::StatusOr<std::vector<std::string>> ListDir(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) {
      return names;
    }
    return absl::InternalError(absl::StrCat("listing ", dir.string(), ": ", ec.message()));
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return absl::InternalError(absl::StrCat("listing ", dir.string(), ": ", ec.message()));
    names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

absl::StatusOr<std::string> SysfsView::DriverName(const std::string& bdf) const {
  const fs::path link = fs::path(root_) / "bus/pci/devices" / bdf / "driver";
  std::error_code ec;
  fs::path target = fs::read_symlink(link, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return std::string();
    return absl::InternalError(
        absl::StrCat("reading the link ", link.string(), ": ", ec.message()));
  }
  return target.filename().string();
}

absl::StatusOr<std::string> SysfsView::NetdevName(const std::string& bdf) const {
  auto names = ListDir(fs::path(root_) / "bus/pci/devices" / bdf / "net");
  if (!names.ok()) return names.status();
  if (names->empty()) return std::string();
  return names->front();
}

absl::StatusOr<uint32_t> SysfsView::TxQueueCount(const std::string& ifname) const {
  auto names = ListDir(fs::path(root_) / "class/net" / ifname / "queues");
  if (!names.ok()) return names.status();
  uint32_t count =
      static_cast<uint32_t>(std::count_if(names->begin(), names->end(), [](const std::string& n) {
        return absl::StartsWith(n, "tx-");
      }));
  return std::max<uint32_t>(count, 1);
}

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
