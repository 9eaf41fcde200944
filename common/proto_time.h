// absl time values as the API's google.protobuf.Timestamp / Duration and back.
#ifndef NICHANDOVER_COMMON_PROTO_TIME_H_
#define NICHANDOVER_COMMON_PROTO_TIME_H_

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace nichandover {

google::protobuf::Timestamp ToProto(absl::Time t);
google::protobuf::Duration ToProto(absl::Duration d);
absl::Duration FromProto(const google::protobuf::Duration& d);

}  // namespace nichandover

#endif  // NICHANDOVER_COMMON_PROTO_TIME_H_
