#include "daemon/server.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/address.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "daemon/handover_log.h"
#include "daemon/platform/factory.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace nichandover {
namespace daemon {
namespace {

absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return absl::OkStatus();
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(dir, " exists and is not a directory"));
  }
  size_t slash = dir.rfind('/');
  if (slash != std::string::npos && slash > 0) NH_RETURN_IF_ERROR(MakeDirs(dir.substr(0, slash)));
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", dir, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// A unix socket file outlives a crashed daemon; gRPC's bind then fails with a
// confusing error. Remove it only if nobody answers on it.
absl::Status PrepareUnixSocket(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash != std::string::npos) NH_RETURN_IF_ERROR(MakeDirs(path.substr(0, slash)));
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return absl::OkStatus();
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " exists and is not a socket; refusing to replace it"));
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  int err = errno;
  ::close(fd);
  if (rc == 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("another process is serving on ", path, " (is a daemon already running?)"));
  }
  if (err == ECONNREFUSED) {
    NH_LOG(INFO) << "removing stale socket " << path;
    ::unlink(path.c_str());
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("cannot check existing socket ", path, ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(v1::DaemonConfig config) {
  NH_ASSIGN_OR_RETURN(platform::Platform platform, platform::MakePlatform(config));
  return StartWithPlatform(std::move(config), std::move(platform));
}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::StartWithPlatform(v1::DaemonConfig config,
                                                                  platform::Platform platform) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->config_ = std::move(config);
  NH_ASSIGN_OR_RETURN(PeerAuth auth, PeerAuth::FromConfig(d->config_));
  d->auth_ = std::make_unique<PeerAuth>(std::move(auth));
  d->peers_ = std::make_unique<PeerClient>(d->config_, *d->auth_);
  d->platform_ = std::make_unique<platform::Platform>(std::move(platform));
  NH_RETURN_IF_ERROR(MakeDirs(d->config_.state_dir()));
  const std::string journal_path = d->config_.state_dir() + "/journal";
  journal::RecoveredJournal recovered;
  NH_ASSIGN_OR_RETURN(d->journal_, journal::FileJournal::Open(journal_path, &recovered));
  if (recovered.created) {
    // Normal on a first start; otherwise the journal was lost and only the
    // ownership records tell what this node was doing: recovery goes by them.
    NH_LOG(WARNING) << journal_path
                    << ": no journal (first start, or the journal was deleted or emptied); "
                       "starting without handover history, the ownership records decide";
  }
  if (recovered.truncated_bytes > 0) {
    NH_LOG(WARNING) << journal_path << ": dropped a torn last record (" << recovered.truncated_bytes
                    << " bytes at offset " << recovered.truncated_at << ")";
  }
  d->transport_ = std::make_unique<GrpcPeerTransport>(d->peers_.get());
  engine::NodeEngine::Options options;
  options.node_id = d->config_.node_id();
  for (const auto& peer : d->config_.peers()) options.peers.push_back(peer.node_id());
  const Timeouts t = EffectiveTimeouts(d->config_);
  options.timeouts.peer_call = t.peer_call;
  options.timeouts.quiesce = t.quiesce;
  options.timeouts.reroute = t.reroute;
  options.timeouts.attach = t.attach;
  options.timeouts.handover = t.handover;
  // Raised and synced before the engine makes its first platform call: the
  // operation ids of this start fence every call of the ones before.
  NH_ASSIGN_OR_RETURN(options.incarnation, engine::OperationSequencer::NextIncarnation(
                                               d->config_.state_dir() + "/incarnation"));
  options.platform = d->platform_.get();
  options.journal = d->journal_.get();
  options.transport = d->transport_.get();
  d->metrics_ = std::make_shared<Metrics>(d->config_.node_id(), options.peers,
                                          [d = d.get()](std::vector<NicMetricState>* out) {
                                            return d->ReadNicStates(out);
                                          });
  options.observer = std::make_shared<engine::ObserverFanout>(
      std::vector<std::shared_ptr<engine::EngineObserver>>{d->metrics_,
                                                           std::make_shared<HandoverLog>()});
  NH_ASSIGN_OR_RETURN(d->engine_, engine::NodeEngine::Start(options, recovered.records));

  d->node_service_ = std::make_unique<NodeServiceImpl>(d->config_, d->peers_.get(),
                                                       d->platform_.get(), d->engine_.get());
  d->peer_service_ =
      std::make_unique<PeerServiceImpl>(d->config_, d->auth_.get(), d->engine_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::vector<std::unique_ptr<int>> ports;
  std::vector<Address> addrs;
  for (const std::string& listen : d->config_.listen()) {
    NH_ASSIGN_OR_RETURN(Address addr, ParseAddress(listen));
    if (addr.kind == Address::Kind::kUnix) {
      NH_RETURN_IF_ERROR(PrepareUnixSocket(addr.path));
    }
    ports.push_back(std::make_unique<int>(0));
    builder.AddListeningPort(addr.GrpcUri(), grpc::InsecureServerCredentials(),
                             ports.back().get());
    addrs.push_back(addr);
  }
  builder.RegisterService(d->node_service_.get());
  builder.RegisterService(d->peer_service_.get());
  d->server_ = builder.BuildAndStart();
  if (d->server_ == nullptr) {
    return absl::UnavailableError("gRPC server failed to start (see the log above)");
  }
  for (size_t i = 0; i < addrs.size(); ++i) {
    if (*ports[i] == 0) {
      // gRPC reports 0 for every address it could not bind.
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", addrs[i].ToString(), " (address in use?)"));
    }
    if (addrs[i].kind == Address::Kind::kUnix) {
      d->unix_paths_.push_back(addrs[i].path);
      d->serving_.push_back(addrs[i].ToString());
    } else {
      addrs[i].port = *ports[i];  // 1 for unix sockets; the real port for TCP
      d->serving_.push_back(addrs[i].ToString());
    }
  }
  auto* health = d->server_->GetHealthCheckService();
  health->SetServingStatus("nichandover.v1.NodeService", true);
  health->SetServingStatus("nichandover.v1.PeerService", true);
  if (!d->config_.metrics_listen().empty()) {
    MetricsServer::Options metrics;
    metrics.listen = d->config_.metrics_listen();
    metrics.metrics = d->metrics_.get();
    metrics.peers = d->peers_.get();
    metrics.peer_ids = options.peers;
    NH_ASSIGN_OR_RETURN(d->metrics_server_, MetricsServer::Start(std::move(metrics)));
  }
  return d;
}

void Daemon::Shutdown(absl::Duration grace) {
  if (shut_down_ || server_ == nullptr) return;  // never started, or stopped
  shut_down_ = true;
  metrics_server_.reset();
  if (auto* health = server_->GetHealthCheckService()) health->Shutdown();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
  // After the server: no RPC handler waits on the engine any more.
  engine_->Stop();
  for (const auto& path : unix_paths_) ::unlink(path.c_str());
}

absl::Status Daemon::ReadNicStates(std::vector<NicMetricState>* out) {
  auto nics = platform_->inventory->ListNics();
  if (!nics.ok()) return nics.status();
  for (const auto& nic : *nics) {
    auto record = platform_->arbiter->Read(nic.bdf);
    if (!record.ok()) {
      if (record.status().code() != absl::StatusCode::kNotFound) return record.status();
      out->push_back(NicMetricState::kNoRecord);
    } else if (record->state() != v1::OWNERSHIP_STATE_ACTIVE) {
      out->push_back(NicMetricState::kInHandover);
    } else if (record->owner_node() != config_.node_id()) {
      out->push_back(NicMetricState::kRunningElsewhere);
    } else if (engine_->HeldForMaintenance(nic.bdf)) {
      out->push_back(NicMetricState::kHeldForMaintenance);
    } else {
      out->push_back(NicMetricState::kRunningHere);
    }
  }
  return absl::OkStatus();
}

Daemon::~Daemon() { Shutdown(absl::ZeroDuration()); }

}  // namespace daemon
}  // namespace nichandover
