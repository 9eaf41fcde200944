#include "daemon/platform/vm/guest_view.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"

namespace nichandover {
namespace platform {
namespace vm {
namespace {

// lstat: the driver link is enough, wherever it points.
bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

}  // namespace

bool GuestView::Present(const std::string& bdf) const {
  return Exists(absl::StrCat(root_, "/bus/pci/devices/", bdf));
}

bool GuestView::Probed(const std::string& bdf) const {
  std::string dir = absl::StrCat(root_, "/bus/pci/devices/", bdf);
  if (!Exists(dir + "/driver")) return false;
  std::error_code ec;
  std::filesystem::directory_iterator net(dir + "/net", ec);
  return !ec && net != std::filesystem::directory_iterator();
}

bool GuestView::DriverLoaded(const std::string& driver) const {
  return !driver.empty() && Exists(absl::StrCat(root_, "/bus/pci/drivers/", driver));
}

absl::Status GuestView::WaitProbed(const std::string& bdf, absl::Duration wait) const {
  absl::Time deadline = absl::Now() + wait;
  while (!Probed(bdf)) {
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(absl::StrCat(
          bdf, Present(bdf) ? " is plugged into this VM but no driver has probed it (yet)"
                            : " is not plugged into this VM",
          " after ", absl::FormatDuration(wait)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::OkStatus();
}

}  // namespace vm
}  // namespace platform
}  // namespace nichandover
