// Early-return helpers for absl::Status / absl::StatusOr.
#ifndef NICHANDOVER_COMMON_STATUS_MACROS_H_
#define NICHANDOVER_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define NH_RETURN_IF_ERROR(expr)                       \
  do {                                                 \
    ::absl::Status nh_status_ = (expr);                \
    if (!nh_status_.ok()) return nh_status_;           \
  } while (0)

#define NH_STATUS_CONCAT_INNER_(a, b) a##b
#define NH_STATUS_CONCAT_(a, b) NH_STATUS_CONCAT_INNER_(a, b)

// NH_ASSIGN_OR_RETURN(auto x, MakeX()); NH_ASSIGN_OR_RETURN(x, MakeX());
#define NH_ASSIGN_OR_RETURN(lhs, expr) \
  NH_ASSIGN_OR_RETURN_IMPL_(NH_STATUS_CONCAT_(nh_statusor_, __LINE__), lhs, expr)
#define NH_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return statusor.status();        \
  lhs = std::move(statusor).value()

#endif  // NICHANDOVER_COMMON_STATUS_MACROS_H_
