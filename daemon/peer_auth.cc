#include "daemon/peer_auth.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "daemon/config.h"

namespace nichandover {
namespace daemon {
namespace {

bool ConstantTimeEquals(const std::string& a, const grpc::string_ref& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b.data()[i]);
  return diff == 0;
}

std::string MetadataValue(const grpc::ServerContext& context, const char* key,
                          bool* present) {
  const auto& md = context.client_metadata();
  auto it = md.find(key);
  *present = it != md.end();
  return *present ? std::string(it->second.data(), it->second.size()) : std::string();
}

}  // namespace

absl::StatusOr<PeerAuth> PeerAuth::FromConfig(const v1::DaemonConfig& config) {
  PeerAuth auth;
  auth.self_ = config.node_id();
  for (const auto& peer : config.peers()) auth.peers_.insert(peer.node_id());
  const std::string& file = config.peer_auth().secret_file();
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) {
      return absl::NotFoundError(
          absl::StrCat(file, ": cannot read the peer secret: ", std::strerror(errno)));
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    auth.secret_ = PeerSecretFromFileContent(buffer.str());
    // Never fall back to "no secret" because the file held none.
    if (auth.secret_.size() < kMinPeerSecretBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": the peer secret needs at least ", kMinPeerSecretBytes,
          " bytes besides whitespace"));
    }
  }
  return auth;
}

void PeerAuth::Decorate(grpc::ClientContext* context) const {
  context->AddMetadata(kNodeIdMetadata, self_);
  if (!secret_.empty()) context->AddMetadata(kSecretMetadata, secret_);
}

grpc::Status PeerAuth::Verify(const grpc::ServerContext& context, std::string* caller) const {
  bool has_node = false;
  std::string node = MetadataValue(context, kNodeIdMetadata, &has_node);
  if (!has_node || node.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat("PeerService call without the ", kNodeIdMetadata,
                                     " header: only nichandoverd peers may call it"));
  }
  if (!peers_.contains(node)) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("node '", node, "' is not a peer of node '", self_,
                                     "' (not in its config)"));
  }
  if (!secret_.empty()) {
    const auto& md = context.client_metadata();
    auto it = md.find(kSecretMetadata);
    if (it == md.end() || !ConstantTimeEquals(secret_, it->second)) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          absl::StrCat("node '", node, "' sent a wrong or no cluster secret"));
    }
  }
  *caller = node;
  return grpc::Status::OK;
}

}  // namespace daemon
}  // namespace nichandover
