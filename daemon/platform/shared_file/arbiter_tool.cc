// nh-arbiter: creates and shows SharedFileArbiter files.
//
//   nh-arbiter create PATH NODE[,NODE...] BDF=OWNER[@EPOCH]...
//   nh-arbiter show PATH
//
// `create` writes a new file (replacing any) in which each listed NIC is
// ACTIVE on OWNER at EPOCH (default 1). `show` prints one line per record:
// "BDF STATE owner=... target=... epoch=N".
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "daemon/platform/shared_file/shared_file_arbiter.h"

namespace {

using nichandover::platform::SharedFileArbiter;
namespace v1 = nichandover::v1;

int Usage() {
  std::fprintf(stderr,
               "usage: nh-arbiter create PATH NODE[,NODE...] BDF=OWNER[@EPOCH]...\n"
               "       nh-arbiter show PATH\n");
  return 2;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "nh-arbiter: %s\n", status.ToString().c_str());
  return 1;
}

int Create(const std::string& path, const std::string& node_list,
           const std::vector<std::string>& nic_args) {
  std::vector<std::string> nodes = absl::StrSplit(node_list, ',', absl::SkipEmpty());
  std::vector<SharedFileArbiter::InitialRecord> records;
  for (const std::string& arg : nic_args) {
    std::pair<std::string, std::string> bdf_owner = absl::StrSplit(arg, absl::MaxSplits('=', 1));
    std::pair<std::string, std::string> owner_epoch =
        absl::StrSplit(bdf_owner.second, absl::MaxSplits('@', 1));
    uint64_t epoch = 1;
    if (bdf_owner.second.empty() ||
        (!owner_epoch.second.empty() && !absl::SimpleAtoi(owner_epoch.second, &epoch))) {
      std::fprintf(stderr, "nh-arbiter: \"%s\" is not BDF=OWNER[@EPOCH]\n", arg.c_str());
      return 2;
    }
    SharedFileArbiter::InitialRecord record;
    record.bdf = bdf_owner.first;
    record.record.set_state(v1::OWNERSHIP_STATE_ACTIVE);
    record.record.set_owner_node(owner_epoch.first);
    record.record.set_epoch(epoch);
    records.push_back(record);
  }
  absl::Status created = SharedFileArbiter::Create(path, nodes, records);
  return created.ok() ? 0 : Fail(created);
}

int Show(const std::string& path) {
  auto arbiter = SharedFileArbiter::Open(path);
  if (!arbiter.ok()) return Fail(arbiter.status());
  auto records = (*arbiter)->ReadAll();
  if (!records.ok()) return Fail(records.status());
  for (const auto& [bdf, record] : *records) {
    std::printf("%s %s owner=%s target=%s epoch=%llu\n", bdf.c_str(),
                v1::OwnershipState_Name(record.state()).c_str(), record.owner_node().c_str(),
                record.target_node().c_str(), static_cast<unsigned long long>(record.epoch()));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() >= 3 && args[0] == "create") {
    return Create(args[1], args[2], {args.begin() + 3, args.end()});
  }
  if (args.size() == 2 && args[0] == "show") return Show(args[1]);
  return Usage();
}
