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
#include "daemon/config.h"
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

// A gRPC server for one service (with health and reflection) on every
// address of `listen`. Appends what it serves to `serving` ("unix:/path",
// "127.0.0.1:PORT" with a chosen port resolved) and its unix sockets to
// `unix_paths`, which it creates owner-only (mode 0600).
absl::StatusOr<std::unique_ptr<grpc::Server>> BuildServer(
    const google::protobuf::RepeatedPtrField<std::string>& listen, grpc::Service* service,
    const std::string& service_name, std::vector<std::string>* serving,
    std::vector<std::string>* unix_paths) {
  grpc::ServerBuilder builder;
  // Bounded by design (docs/configuration.md, "Limits"): unary calls run on
  // at most kMaxServerThreads threads, beyond which gRPC answers
  // RESOURCE_EXHAUSTED; WatchHandover streams hold no thread (callback API)
  // and are capped by NodeServiceImpl::kMaxWatchStreams; each connection
  // carries at most kMaxStreamsPerConnection calls at once; a connection
  // idle for kMaxConnectionIdle is closed, so abandoned clients do not pile up.
  grpc::ResourceQuota quota(absl::StrCat("nichandoverd ", service_name));
  quota.SetMaxThreads(Daemon::kMaxServerThreads);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, Daemon::kMaxStreamsPerConnection);
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONNECTION_IDLE_MS,
      static_cast<int>(absl::ToInt64Milliseconds(Daemon::kMaxConnectionIdle)));
  std::vector<std::unique_ptr<int>> ports;
  std::vector<Address> addrs;
  for (const std::string& address : listen) {
    NH_ASSIGN_OR_RETURN(Address addr, ParseAddress(address));
    if (addr.kind == Address::Kind::kUnix) {
      NH_RETURN_IF_ERROR(PrepareUnixSocket(addr.path));
    }
    ports.push_back(std::make_unique<int>(0));
    builder.AddListeningPort(addr.GrpcUri(), grpc::InsecureServerCredentials(),
                             ports.back().get());
    addrs.push_back(addr);
  }
  builder.RegisterService(service);
  // gRPC binds its unix sockets with the process umask: born owner-only
  // (0600), no moment where others can connect; GrantOperatorAccess widens
  // the operator's afterwards. The umask is the process's, but only for the
  // bind: another thread's file created meanwhile is merely stricter.
  const mode_t umask_before = ::umask(0177);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ::umask(umask_before);
  if (server == nullptr) {
    return absl::UnavailableError("gRPC server failed to start (see the log above)");
  }
  for (size_t i = 0; i < addrs.size(); ++i) {
    if (*ports[i] == 0) {
      // gRPC reports 0 for every address it could not bind.
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", addrs[i].ToString(), " (address in use?)"));
    }
    if (addrs[i].kind == Address::Kind::kUnix) {
      unix_paths->push_back(addrs[i].path);
    } else {
      addrs[i].port = *ports[i];  // the real port for TCP port 0
    }
    serving->push_back(addrs[i].ToString());
  }
  server->GetHealthCheckService()->SetServingStatus(service_name, true);
  return server;
}

// Gives the operator's unix sockets to the operator group (mode 0660), or
// leaves them owner-only when there is none (docs/configuration.md).
absl::Status GrantOperatorAccess(const v1::DaemonConfig& config,
                                 const std::vector<std::string>& unix_paths) {
  const bool explicit_group = !config.operator_group().empty();
  const std::string name = explicit_group ? config.operator_group() : kDefaultOperatorGroup;
  absl::StatusOr<gid_t> gid = LookUpGroup(name);
  if (!gid.ok()) {
    if (explicit_group) return gid.status();
    NH_LOG(INFO) << "no group '" << name
                 << "': the operator socket is for the daemon's user (and root) only";
    return absl::OkStatus();
  }
  for (const std::string& path : unix_paths) {
    if (::chown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
      const int err = errno;
      if (!explicit_group && err == EPERM) {
        NH_LOG(WARNING) << "cannot give " << path << " to group '" << name << "' (the daemon is "
                        << "neither root nor a member); it stays owner-only";
        return absl::OkStatus();
      }
      return absl::PermissionDeniedError(
          absl::StrCat("cannot give the operator socket ", path, " to group '", name,
                       "': ", std::strerror(err),
                       " (the daemon must run as root or as a member of the group)"));
    }
    if (::chmod(path.c_str(), 0660) != 0) {
      return absl::InternalError(
          absl::StrCat("chmod 0660 ", path, ": ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
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
  options.history_per_nic = d->config_.history_per_nic();
  options.kernel_commit = d->config_.kernel_commit();
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
  // Operators and peers on separate listeners: a client of the operator's
  // socket cannot call PeerService at all (UNIMPLEMENTED), and PeerService
  // is reached only where every call must carry the cluster secret. Peers
  // first: once the operator's socket answers, the whole daemon does.
  if (!d->config_.peer_listen().empty()) {
    NH_ASSIGN_OR_RETURN(d->peer_server_,
                        BuildServer(d->config_.peer_listen(), d->peer_service_.get(),
                                    "nichandover.v1.PeerService", &d->peer_serving_,
                                    &d->unix_paths_));
  }
  std::vector<std::string> operator_unix_paths;
  NH_ASSIGN_OR_RETURN(d->server_, BuildServer(d->config_.listen(), d->node_service_.get(),
                                              "nichandover.v1.NodeService", &d->serving_,
                                              &operator_unix_paths));
  d->unix_paths_.insert(d->unix_paths_.end(), operator_unix_paths.begin(),
                        operator_unix_paths.end());
  NH_RETURN_IF_ERROR(GrantOperatorAccess(d->config_, operator_unix_paths));
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
  if (shut_down_ || engine_ == nullptr) return;  // never started, or stopped
  shut_down_ = true;
  metrics_server_.reset();
  const auto deadline = absl::ToChronoTime(absl::Now() + grace);
  for (grpc::Server* server : {server_.get(), peer_server_.get()}) {
    if (server == nullptr) continue;
    if (auto* health = server->GetHealthCheckService()) health->Shutdown();
    server->Shutdown(deadline);
  }
  for (grpc::Server* server : {server_.get(), peer_server_.get()}) {
    if (server != nullptr) server->Wait();
  }
  // After the servers: no RPC handler waits on the engine any more.
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
