#include "common/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>

namespace nichandover {
namespace {

LogSeverity SeverityFromEnv() {
  const char* env = std::getenv("NICHANDOVER_LOG_LEVEL");
  if (env == nullptr) return LogSeverity::kInfo;
  if (std::strcmp(env, "debug") == 0) return LogSeverity::kDebug;
  if (std::strcmp(env, "warning") == 0) return LogSeverity::kWarning;
  if (std::strcmp(env, "error") == 0) return LogSeverity::kError;
  return LogSeverity::kInfo;
}

std::atomic<int>& MinSeverity() {
  static std::atomic<int> min{static_cast<int>(SeverityFromEnv())};
  return min;
}

std::mutex& TagMutex() {
  static std::mutex mu;
  return mu;
}

std::string& Tag() {
  static std::string* tag = new std::string();
  return *tag;
}

char SeverityLetter(LogSeverity s) {
  switch (s) {
    case LogSeverity::kDebug:
      return 'D';
    case LogSeverity::kInfo:
      return 'I';
    case LogSeverity::kWarning:
      return 'W';
    case LogSeverity::kError:
      return 'E';
    case LogSeverity::kFatal:
      return 'F';
  }
  return '?';
}

}  // namespace

void SetMinLogSeverity(LogSeverity severity) {
  MinSeverity().store(static_cast<int>(severity));
}

LogSeverity MinLogSeverity() { return static_cast<LogSeverity>(MinSeverity().load()); }

void SetLogTag(const std::string& tag) {
  std::lock_guard<std::mutex> lock(TagMutex());
  Tag() = tag;
}

namespace log_internal {

LogMessage::LogMessage(LogSeverity severity, const char* file, int line)
    : severity_(severity) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  localtime_r(&tv.tv_sec, &tm);
  const char* base = std::strrchr(file, '/');
  base = base ? base + 1 : file;
  char prefix[96];
  std::snprintf(prefix, sizeof(prefix), "%c%02d%02d %02d:%02d:%02d.%06ld %d %s:%d] ",
                SeverityLetter(severity), tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                tm.tm_sec, static_cast<long>(tv.tv_usec), static_cast<int>(getpid()), base, line);
  stream_ << prefix;
  std::lock_guard<std::mutex> lock(TagMutex());
  if (!Tag().empty()) stream_ << "[" << Tag() << "] ";
}

LogMessage::~LogMessage() {
  stream_ << '\n';
  const std::string line = stream_.str();
  // One write keeps lines of concurrent threads and processes unbroken.
  ssize_t unused = ::write(STDERR_FILENO, line.data(), line.size());
  (void)unused;
  if (severity_ == LogSeverity::kFatal) std::abort();
}

}  // namespace log_internal
}  // namespace nichandover
