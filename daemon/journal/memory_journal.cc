#include "daemon/journal/memory_journal.h"

#include <utility>

namespace nichandover {
namespace journal {
namespace {

uint64_t BytesOf(const std::vector<std::string>& records) {
  uint64_t bytes = 0;
  for (const std::string& record : records) bytes += 8 + record.size();
  return bytes;
}

}  // namespace

MemoryJournal::MemoryJournal(std::vector<std::string> durable) : durable_(std::move(durable)) {
  stats_.records = durable_.size();
  stats_.size_bytes = BytesOf(durable_);
}

absl::Status MemoryJournal::Append(const std::vector<std::string>& records) {
  if (!broken_.ok()) return broken_;
  if (!fail_append_.ok()) return std::exchange(fail_append_, absl::OkStatus());
  pending_.insert(pending_.end(), records.begin(), records.end());
  stats_.records += records.size();
  stats_.size_bytes += BytesOf(records);
  return absl::OkStatus();
}

absl::Status MemoryJournal::Sync() {
  if (!broken_.ok()) return broken_;
  if (!fail_sync_.ok()) {
    broken_ = std::exchange(fail_sync_, absl::OkStatus());
    return broken_;
  }
  if (pending_.empty()) return absl::OkStatus();
  durable_.insert(durable_.end(), pending_.begin(), pending_.end());
  pending_.clear();
  ++stats_.syncs;
  return absl::OkStatus();
}

absl::Status MemoryJournal::Compact(const std::vector<std::string>& live_records) {
  if (!broken_.ok()) return broken_;
  durable_ = live_records;
  pending_.clear();
  stats_.records = durable_.size();
  stats_.size_bytes = BytesOf(durable_);
  ++stats_.syncs;
  ++stats_.compactions;
  return absl::OkStatus();
}

JournalStats MemoryJournal::Stats() const { return stats_; }

std::vector<std::string> MemoryJournal::AllRecords() const {
  std::vector<std::string> all = durable_;
  all.insert(all.end(), pending_.begin(), pending_.end());
  return all;
}

}  // namespace journal
}  // namespace nichandover
