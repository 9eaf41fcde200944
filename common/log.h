// A thin logger to stderr (absl 20220623 has no absl/log).
//
//   NH_LOG(INFO) << "listening on " << address;
//
// Lines look like "I1121 23:59:01.123456 1234 server.cc:42] listening on ...",
// the glog layout operators already grep for.
#ifndef NICHANDOVER_COMMON_LOG_H_
#define NICHANDOVER_COMMON_LOG_H_

#include <sstream>

namespace nichandover {

enum class LogSeverity { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };

// Messages below this severity are dropped. Default kInfo; NICHANDOVER_LOG_LEVEL
// (debug|info|warning|error) in the environment overrides it at start-up.
void SetMinLogSeverity(LogSeverity severity);
LogSeverity MinLogSeverity();

// Prefixes each line with a tag (e.g. the node id), so interleaved logs of
// several daemons stay readable.
void SetLogTag(const std::string& tag);

namespace log_internal {

class LogMessage {
 public:
  LogMessage(LogSeverity severity, const char* file, int line);
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  // Writes the line in one write(2) call; aborts for kFatal.
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  std::ostringstream stream_;
};

// Swallows a stream expression when the severity is disabled.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace log_internal
}  // namespace nichandover

#define NH_LOG_SEVERITY_DEBUG ::nichandover::LogSeverity::kDebug
#define NH_LOG_SEVERITY_INFO ::nichandover::LogSeverity::kInfo
#define NH_LOG_SEVERITY_WARNING ::nichandover::LogSeverity::kWarning
#define NH_LOG_SEVERITY_ERROR ::nichandover::LogSeverity::kError
#define NH_LOG_SEVERITY_FATAL ::nichandover::LogSeverity::kFatal

#define NH_LOG(severity)                                                  \
  (NH_LOG_SEVERITY_##severity < ::nichandover::MinLogSeverity())         \
      ? (void)0                                                           \
      : ::nichandover::log_internal::Voidify() &                          \
            ::nichandover::log_internal::LogMessage(                      \
                NH_LOG_SEVERITY_##severity, __FILE__, __LINE__)           \
                .stream()

// Invariant checks that must hold in production too: a broken one means the
// state is not what the code assumes, and going on could give a NIC two owners.
#define NH_CHECK(cond)                                                    \
  (cond) ? (void)0                                                        \
         : ::nichandover::log_internal::Voidify() &                       \
               ::nichandover::log_internal::LogMessage(                   \
                   ::nichandover::LogSeverity::kFatal, __FILE__, __LINE__) \
                       .stream()                                          \
                   << "Check failed: " #cond " "

#endif  // NICHANDOVER_COMMON_LOG_H_
