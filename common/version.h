#ifndef NICHANDOVER_COMMON_VERSION_H_
#define NICHANDOVER_COMMON_VERSION_H_

namespace nichandover {

// The release of nichandoverd and nicctl; also sent to peers in Hello.
inline constexpr char kVersion[] = "0.1.0";
// The API both speak.
inline constexpr char kApiVersion[] = "nichandover.v1";

}  // namespace nichandover

#endif  // NICHANDOVER_COMMON_VERSION_H_
