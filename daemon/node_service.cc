#include "daemon/node_service.h"

#include <deque>
#include <future>
#include <mutex>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "daemon/node_info.h"
#include "daemon/protocol/handover_machine.h"

namespace nichandover {
namespace daemon {
namespace {

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

// A google.protobuf.Duration from a request, as the protocol takes it:
// well-formed (seconds within ±10,000 years, nanos below one second, both of
// one sign), not negative, and at most `max` (an absurd deadline would
// overflow the engine's timers). Unset is zero: the daemon's default.
absl::StatusOr<absl::Duration> RequestDuration(const google::protobuf::Duration& d,
                                               absl::string_view field, absl::Duration max) {
  constexpr int64_t kMaxSeconds = 315576000000;
  if (d.seconds() > kMaxSeconds || d.seconds() < -kMaxSeconds || d.nanos() >= 1000000000 ||
      d.nanos() <= -1000000000 || (d.seconds() > 0 && d.nanos() < 0) ||
      (d.seconds() < 0 && d.nanos() > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": not a valid google.protobuf.Duration"));
  }
  if (d.seconds() < 0 || d.nanos() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not be negative"));
  }
  absl::Duration out = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  if (out > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be at most ", absl::FormatDuration(max)));
  }
  return out;
}

// A WatchHandover or WatchDrain stream holds a server thread while it waits:
// each counts for its whole life and gives its slot back however it ends.
class WatchSlot {
 public:
  explicit WatchSlot(std::atomic<int>& count)
      : count_(count), taken_(count.fetch_add(1) < NodeServiceImpl::kMaxWatchStreams) {}
  ~WatchSlot() { count_.fetch_sub(1); }
  bool taken() const { return taken_; }

 private:
  std::atomic<int>& count_;
  const bool taken_;
};

// `call` is refused ("WatchHandover"); `poll` is what to use instead.
grpc::Status TooManyWatchStreams(absl::string_view call, absl::string_view poll) {
  return grpc::Status(
      grpc::StatusCode::RESOURCE_EXHAUSTED,
      absl::StrCat("too many ", call, " streams on this daemon (at most ",
                   NodeServiceImpl::kMaxWatchStreams,
                   " WatchHandover and WatchDrain streams at once); close one or poll ", poll));
}

std::string HandoverId(const std::string& id_or_name) {
  absl::string_view id = id_or_name;
  absl::ConsumePrefix(&id, "handovers/");
  return std::string(id);
}

}  // namespace

NodeServiceImpl::NodeServiceImpl(const v1::DaemonConfig& config, PeerClient* peers,
                                 platform::Platform* platform, engine::NodeEngine* engine)
    : config_(config),
      peers_(peers),
      platform_(platform),
      engine_(engine),
      timeouts_(EffectiveTimeouts(config)) {
  DrainManager::Options drain_options;
  drain_options.config = &config_;
  drain_options.peers = peers_;
  drain_options.platform = platform_;
  drain_options.engine = engine_;
  drain_options.probe_timeout = std::min(timeouts_.peer_call, absl::Seconds(1));
  drain_options.create_wait = timeouts_.peer_call + absl::Seconds(5);
  drains_ = std::make_unique<DrainManager>(std::move(drain_options));
}

grpc::Status NodeServiceImpl::ListNodes(grpc::ServerContext* context,
                                        const v1::ListNodesRequest* request,
                                        v1::ListNodesResponse* response) {
  *response->add_nodes() = LocalNode(config_);
  // Probe all peers at once so one dead peer costs one timeout, not N.
  absl::Duration timeout = std::min(timeouts_.peer_call, absl::Seconds(1));
  std::vector<std::future<absl::StatusOr<v1::Node>>> probes;
  if (!request->skip_probe()) {
    for (const auto& peer : config_.peers()) {
      probes.push_back(std::async(std::launch::async, [this, id = peer.node_id(), timeout] {
        return peers_->Hello(id, timeout);
      }));
    }
  }
  for (int i = 0; i < config_.peers_size(); ++i) {
    const auto& peer = config_.peers(i);
    v1::Node* node = response->add_nodes();
    if (!request->skip_probe()) {
      absl::StatusOr<v1::Node> hello = probes[i].get();
      if (hello.ok()) {
        *node = *hello;
        if (node->node_id() != peer.node_id()) {
          node->set_state(v1::NODE_STATE_UNREACHABLE);
          node->set_state_detail(absl::StrCat("the daemon at ", peer.address(),
                                              " says it is node '", hello->node_id(), "'"));
        } else {
          node->set_state(v1::NODE_STATE_REACHABLE);
        }
      } else {
        node->set_state(v1::NODE_STATE_UNREACHABLE);
        node->set_state_detail(std::string(hello.status().message()));
      }
    }
    node->set_name(absl::StrCat("nodes/", peer.node_id()));
    node->set_node_id(peer.node_id());
    node->set_local(false);
    node->set_address(peer.address());
  }
  (void)context;
  return grpc::Status::OK;
}

absl::StatusOr<std::string> NodeServiceImpl::ResolveNic(const std::string& nic,
                                                        const std::string& field) {
  if (nic.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": is required"));
  auto bdf = protocol::NormalizeBdf(nic, field);
  if (bdf.ok()) {
    if (platform_->inventory->GetNic(*bdf).ok()) return *bdf;
    return absl::NotFoundError(
        absl::StrCat(field, ": no NIC ", *bdf, " on node ", config_.node_id()));
  }
  // Not a BDF: maybe a netdev name ("eth0"). Interface names never contain
  // ':' or '/', so anything with them was meant as a BDF and is malformed.
  if (nic.find(':') != std::string::npos || nic.find('/') != std::string::npos ||
      nic.size() > 15) {
    return bdf.status();
  }
  auto nics = platform_->inventory->ListNics();
  if (!nics.ok()) return nics.status();
  for (const auto& info : *nics) {
    if (info.netdev == nic) return info.bdf;
  }
  return absl::NotFoundError(absl::StrCat(field, ": '", nic,
                                          "' is neither a BDF nor a network interface on node ",
                                          config_.node_id()));
}

v1::Nic NodeServiceImpl::DescribeNic(const platform::NicInfo& info) {
  v1::Nic nic;
  nic.set_name(absl::StrCat("nics/", info.bdf));
  nic.set_bdf(info.bdf);
  nic.set_vendor_id(info.vendor_id);
  nic.set_device_id(info.device_id);
  nic.set_class_code(info.class_code);
  nic.set_driver(info.driver);
  nic.set_netdev(info.netdev);
  *nic.mutable_interrupts() = info.interrupts;
  // Name the node behind each destination APIC ID that this node knows.
  std::map<uint32_t, std::string> apic_owner;
  for (const auto& cpu : config_.cpus()) apic_owner[cpu.apic_id()] = config_.node_id();
  for (const auto& [node, cpus] : peers_->KnownCpus()) {
    for (uint32_t apic : cpus) apic_owner.emplace(apic, node);
  }
  for (auto& v : *nic.mutable_interrupts()->mutable_vectors()) {
    if (v.route().remappable()) continue;
    auto it = apic_owner.find(v.route().destination_apic_id());
    if (it != apic_owner.end()) v.mutable_route()->set_destination_node(it->second);
  }
  if (auto record = platform_->arbiter->Read(info.bdf); record.ok()) {
    *nic.mutable_ownership() = *record;
  }
  for (auto& id : engine_->RecentHandoverIds(info.bdf, 5)) nic.add_recent_handovers(id);
  nic.set_held_for_maintenance(engine_->HeldForMaintenance(info.bdf));
  return nic;
}

grpc::Status NodeServiceImpl::ListNics(grpc::ServerContext*, const v1::ListNicsRequest*,
                                       v1::ListNicsResponse* response) {
  auto nics = platform_->inventory->ListNics();
  if (!nics.ok()) return ToGrpcStatus(nics.status());
  for (const auto& info : *nics) *response->add_nics() = DescribeNic(info);
  return grpc::Status::OK;
}

grpc::Status NodeServiceImpl::GetNic(grpc::ServerContext*, const v1::GetNicRequest* request,
                                     v1::Nic* response) {
  if (absl::Status s = protocol::CheckFieldLengths({{"nic", request->nic(), protocol::kMaxNicBytes}}); !s.ok()) {
    return ToGrpcStatus(s);
  }
  auto bdf = ResolveNic(request->nic(), "nic");
  if (!bdf.ok()) return ToGrpcStatus(bdf.status());
  auto info = platform_->inventory->GetNic(*bdf);
  if (!info.ok()) return ToGrpcStatus(info.status());
  *response = DescribeNic(*info);
  return grpc::Status::OK;
}

grpc::Status NodeServiceImpl::CreateHandover(grpc::ServerContext*,
                                             const v1::CreateHandoverRequest* request,
                                             v1::Handover* response) {
  if (absl::Status s = protocol::CheckFieldLengths({{"request_id", request->request_id(), protocol::kMaxRequestIdBytes}, {"nic", request->nic(), protocol::kMaxNicBytes}, {"target_node", request->target_node(), protocol::kMaxNodeIdBytes}}); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (absl::Status s = protocol::CheckRequestId(request->request_id()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (request->target_node().empty()) return Invalid("target_node: is required");
  if (!v1::CommitPath_IsValid(request->commit_path())) {
    // An enum value this daemon does not know (a newer client): refusing is
    // safer than guessing which path it meant.
    return Invalid(absl::StrCat("commit_path: ", request->commit_path(),
                                " is not a CommitPath (UNSPECIFIED, DAEMON or KERNEL)"));
  }
  if (auto timeout = RequestDuration(request->timeout(), "timeout",
                                     protocol::kMaxHandoverTimeout);
      !timeout.ok()) {
    return ToGrpcStatus(timeout.status());
  }
  v1::CreateHandoverRequest resolved = *request;
  if (!request->nic().empty() && !protocol::NormalizeBdf(request->nic(), "nic").ok()) {
    // A netdev name: the machine speaks BDFs.
    auto bdf = ResolveNic(request->nic(), "nic");
    if (!bdf.ok()) return ToGrpcStatus(bdf.status());
    resolved.set_nic(*bdf);
  }
  auto handover = engine_->CreateHandover(resolved, timeouts_.peer_call + absl::Seconds(5));
  if (!handover.ok()) return ToGrpcStatus(handover.status());
  *response = *handover;
  return grpc::Status::OK;
}

grpc::Status NodeServiceImpl::GetHandover(grpc::ServerContext*,
                                          const v1::GetHandoverRequest* request,
                                          v1::Handover* response) {
  if (absl::Status s = protocol::CheckFieldLengths({{"handover_id", request->handover_id(), protocol::kMaxHandoverIdBytes}}); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (request->handover_id().empty()) return Invalid("handover_id: is required");
  auto handover = engine_->GetHandover(HandoverId(request->handover_id()));
  if (!handover.ok()) return ToGrpcStatus(handover.status());
  *response = *handover;
  return grpc::Status::OK;
}

grpc::Status NodeServiceImpl::ListHandovers(grpc::ServerContext*,
                                            const v1::ListHandoversRequest* request,
                                            v1::ListHandoversResponse* response) {
  if (absl::Status s = protocol::CheckFieldLengths({{"nic", request->nic(), protocol::kMaxNicBytes}, {"page_token", request->page_token(), protocol::kMaxTextBytes}}); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (request->page_size() < 0) return Invalid("page_size: must not be negative");
  size_t page_size = request->page_size() == 0 ? 50 : std::min(request->page_size(), 1000);
  size_t offset = 0;
  if (!request->page_token().empty() && !absl::SimpleAtoi(request->page_token(), &offset)) {
    return Invalid("page_token: not a token from a previous ListHandovers response");
  }
  std::string bdf;
  if (!request->nic().empty()) {
    auto resolved = ResolveNic(request->nic(), "nic");
    if (!resolved.ok()) {
      // History may name a NIC this node no longer sees: accept a plain BDF.
      auto plain = protocol::NormalizeBdf(request->nic(), "nic");
      if (!plain.ok()) return ToGrpcStatus(resolved.status());
      resolved = *plain;
    }
    bdf = *resolved;
  }
  std::vector<v1::Handover> all = engine_->ListHandovers(bdf);
  for (size_t i = offset; i < all.size() && i < offset + page_size; ++i) {
    *response->add_handovers() = all[i];
  }
  if (offset + page_size < all.size()) {
    response->set_next_page_token(std::to_string(offset + page_size));
  }
  return grpc::Status::OK;
}

namespace {

// One WatchHandover stream on the callback API: no thread waits for the
// handover. The engine pushes events into the queue (WatchSink); the reactor
// writes them one at a time and ends the stream after the last.
class WatchReactor final : public grpc::ServerWriteReactor<v1::HandoverEvent> {
 public:
  WatchReactor(engine::NodeEngine* engine, std::atomic<int>* streams)
      : engine_(engine), streams_(streams), sink_(std::make_shared<Sink>(this)) {}

  // Refused before the engine hears of it (no slot, bad request).
  void Refuse(const grpc::Status& status) { sink_->Finish(status); }

  void Start(const std::string& handover_id) {
    absl::StatusOr<uint64_t> watch = engine_->Watch(handover_id, sink_);
    if (!watch.ok()) {
      sink_->Finish(ToGrpcStatus(watch.status()));
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    watch_id_ = *watch;
    registered_ = true;
  }

  void OnWriteDone(bool ok) override { sink_->WriteDone(ok); }

  void OnCancel() override {
    // The client went away (or the server shuts down): stop the engine's
    // pushes first, then end the stream.
    Unwatch();
    sink_->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
  }

  void OnDone() override {
    Unwatch();
    sink_->Detach();
    ReleaseSlot();
    delete this;
  }

  // The stream's slot under kMaxWatchStreams is free once its end is sent: a
  // client that saw the end of one stream may open the next at once.
  void ReleaseSlot() {
    if (!slot_released_.exchange(true)) streams_->fetch_sub(1);
  }

 private:
  // What the engine holds: it may outlive the reactor by a moment (an event
  // pushed while the stream ends), so it checks that the reactor is there.
  class Sink final : public engine::HandoverWatcher {
   public:
    explicit Sink(WatchReactor* reactor) : reactor_(reactor) {}

    void OnEvent(const v1::HandoverEvent& event) override {
      std::lock_guard<std::mutex> lock(mu_);
      if (reactor_ == nullptr || finishing_) return;
      queue_.push_back(event);
      if (!writing_) WriteFront();
    }
    void OnEngineStopped() override {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the daemon is shutting down"));
    }
    void WriteDone(bool ok) {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (reactor_ == nullptr) return;
      if (!ok) {  // the stream is broken; OnCancel or OnDone follows
        queue_.clear();
        FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke"));
        return;
      }
      const bool last = queue_.front().handover().done();
      queue_.pop_front();
      if (last) {
        queue_.clear();
        FinishLocked(grpc::Status::OK);
      } else if (!queue_.empty()) {
        WriteFront();
      } else if (finishing_) {
        FinishLocked(pending_finish_);
      }
    }
    // Ends the stream once the writes under way are done.
    void Finish(const grpc::Status& status) {
      std::lock_guard<std::mutex> lock(mu_);
      FinishLocked(status);
    }
    void Detach() {
      std::lock_guard<std::mutex> lock(mu_);
      reactor_ = nullptr;
    }

   private:
    void WriteFront() {
      writing_ = true;
      // A deque keeps its elements where they are as it grows at the back.
      reactor_->StartWrite(&queue_.front());
    }
    void FinishLocked(const grpc::Status& status) {
      if (reactor_ == nullptr || finished_) return;
      if (writing_) {  // finished after the write under way
        if (!finishing_) pending_finish_ = status;
        finishing_ = true;
        return;
      }
      finishing_ = true;
      finished_ = true;
      reactor_->ReleaseSlot();
      reactor_->Finish(status);
    }

    std::mutex mu_;
    WatchReactor* reactor_;  // null once the stream is done
    std::deque<v1::HandoverEvent> queue_;
    bool writing_ = false;
    bool finishing_ = false;
    bool finished_ = false;
    grpc::Status pending_finish_;
  };

  void Unwatch() {
    uint64_t watch_id = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!registered_) return;
      registered_ = false;
      watch_id = watch_id_;
    }
    if (watch_id != 0) engine_->Unwatch(watch_id);
  }

  engine::NodeEngine* engine_;
  std::atomic<int>* streams_;
  std::atomic<bool> slot_released_{false};
  std::shared_ptr<Sink> sink_;
  std::mutex mu_;
  bool registered_ = false;
  uint64_t watch_id_ = 0;
};

}  // namespace

grpc::ServerWriteReactor<v1::HandoverEvent>* NodeServiceImpl::WatchHandover(
    grpc::CallbackServerContext*, const v1::WatchHandoverRequest* request) {
  // Counted for the stream's whole life; OnDone gives the slot back.
  const int streams = watch_streams_.fetch_add(1);
  auto* reactor = new WatchReactor(engine_, &watch_streams_);
  if (streams >= kMaxWatchStreams) {
    reactor->Refuse(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("too many WatchHandover streams on this daemon (at most ", kMaxWatchStreams,
                     "); close one or poll GetHandover")));
    return reactor;
  }
  if (absl::Status s = protocol::CheckFieldLengths(
          {{"handover_id", request->handover_id(), protocol::kMaxHandoverIdBytes}});
      !s.ok()) {
    reactor->Refuse(ToGrpcStatus(s));
    return reactor;
  }
  if (request->handover_id().empty()) {
    reactor->Refuse(Invalid("handover_id: is required"));
    return reactor;
  }
  reactor->Start(HandoverId(request->handover_id()));
  return reactor;
}

grpc::Status NodeServiceImpl::CancelHandover(grpc::ServerContext*,
                                             const v1::CancelHandoverRequest* request,
                                             v1::Handover* response) {
  if (absl::Status s = protocol::CheckFieldLengths({{"handover_id", request->handover_id(), protocol::kMaxHandoverIdBytes}, {"reason", request->reason(), protocol::kMaxTextBytes}}); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (request->handover_id().empty()) return Invalid("handover_id: is required");
  auto handover = engine_->CancelHandover(HandoverId(request->handover_id()), request->reason(),
                                          absl::Seconds(5));
  if (!handover.ok()) return ToGrpcStatus(handover.status());
  *response = *handover;
  return grpc::Status::OK;
}

grpc::Status NodeServiceImpl::RecoverNic(grpc::ServerContext*,
                                         const v1::RecoverNicRequest* request,
                                         v1::RecoverNicResponse* response) {
  if (absl::Status s = protocol::CheckFieldLengths({{"nic", request->nic(), protocol::kMaxNicBytes}, {"request_id", request->request_id(), protocol::kMaxRequestIdBytes}}); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (request->decision() == v1::RECOVERY_DECISION_UNSPECIFIED) {
    return Invalid("decision: is required (COMMIT or ABORT)");
  }
  if (absl::Status s = protocol::CheckRequestId(request->request_id()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  v1::RecoverNicRequest resolved = *request;
  auto bdf = protocol::NormalizeBdf(request->nic(), "nic");
  if (!bdf.ok()) {
    auto by_name = ResolveNic(request->nic(), "nic");
    if (!by_name.ok()) return ToGrpcStatus(by_name.status());
    bdf = *by_name;
  }
  resolved.set_nic(*bdf);
  auto recovered = engine_->RecoverNic(resolved, timeouts_.attach + timeouts_.reroute +
                                                     absl::Seconds(5));
  if (!recovered.ok()) return ToGrpcStatus(recovered.status());
  *response = *recovered;
  return grpc::Status::OK;
}

grpc::Status NodeServiceImpl::DescribeAfter(const std::string& bdf,
                                            const absl::StatusOr<v1::OwnershipRecord>& outcome,
                                            v1::Nic* response) {
  if (!outcome.ok()) return ToGrpcStatus(outcome.status());
  auto info = platform_->inventory->GetNic(bdf);
  if (!info.ok()) return ToGrpcStatus(info.status());
  *response = DescribeNic(*info);
  return grpc::Status::OK;
}

grpc::Status NodeServiceImpl::QuiesceNic(grpc::ServerContext*,
                                         const v1::QuiesceNicRequest* request,
                                         v1::Nic* response) {
  if (absl::Status s = protocol::CheckFieldLengths({{"nic", request->nic(), protocol::kMaxNicBytes}}); !s.ok()) {
    return ToGrpcStatus(s);
  }
  auto requested = RequestDuration(request->timeout(), "timeout", protocol::kMaxQuiesceTimeout);
  if (!requested.ok()) return ToGrpcStatus(requested.status());
  auto bdf = ResolveNic(request->nic(), "nic");
  if (!bdf.ok()) return ToGrpcStatus(bdf.status());
  v1::QuiesceNicRequest resolved = *request;
  resolved.set_nic(*bdf);
  absl::Duration drain = timeouts_.quiesce;
  if (*requested > absl::ZeroDuration()) drain = *requested;
  // The hook answers within the drain bound; an arbiter read comes first.
  auto outcome = engine_->QuiesceNic(resolved, drain + timeouts_.peer_call + absl::Seconds(5));
  return DescribeAfter(*bdf, outcome, response);
}

grpc::Status NodeServiceImpl::ResumeNic(grpc::ServerContext*, const v1::ResumeNicRequest* request,
                                        v1::Nic* response) {
  if (absl::Status s = protocol::CheckFieldLengths({{"nic", request->nic(), protocol::kMaxNicBytes}}); !s.ok()) {
    return ToGrpcStatus(s);
  }
  auto bdf = ResolveNic(request->nic(), "nic");
  if (!bdf.ok()) return ToGrpcStatus(bdf.status());
  v1::ResumeNicRequest resolved = *request;
  resolved.set_nic(*bdf);
  auto outcome = engine_->ResumeNic(resolved, timeouts_.attach + absl::Seconds(5));
  return DescribeAfter(*bdf, outcome, response);
}

grpc::Status NodeServiceImpl::DrainNode(grpc::ServerContext*,
                                        const v1::DrainNodeRequest* request,
                                        v1::Drain* response) {
  if (absl::Status s = protocol::CheckFieldLengths(
          {{"request_id", request->request_id(), protocol::kMaxRequestIdBytes},
           {"node", request->node(), protocol::kMaxNodeIdBytes},
           {"to_node", request->to_node(), protocol::kMaxNodeIdBytes}});
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (absl::Status s = protocol::CheckRequestId(request->request_id()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (request->node().empty()) return Invalid("node: is required (the node to drain)");
  if (auto timeout = RequestDuration(request->timeout(), "timeout",
                                     protocol::kMaxHandoverTimeout);
      !timeout.ok()) {
    return ToGrpcStatus(timeout.status());
  }
  if (request->max_concurrent() < 0 ||
      request->max_concurrent() > DrainManager::kMaxConcurrent) {
    return Invalid(absl::StrCat("max_concurrent: must be 1-", DrainManager::kMaxConcurrent,
                                " (0: the default, ", DrainManager::kDefaultMaxConcurrent, ")"));
  }
  auto drain = drains_->Start(*request);
  if (!drain.ok()) return ToGrpcStatus(drain.status());
  *response = *drain;
  return grpc::Status::OK;
}

grpc::Status NodeServiceImpl::GetDrain(grpc::ServerContext*, const v1::GetDrainRequest* request,
                                       v1::Drain* response) {
  if (absl::Status s = protocol::CheckFieldLengths(
          {{"drain_id", request->drain_id(), protocol::kMaxHandoverIdBytes}});
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (request->drain_id().empty()) return Invalid("drain_id: is required");
  auto drain = drains_->Get(request->drain_id());
  if (!drain.ok()) return ToGrpcStatus(drain.status());
  *response = *drain;
  return grpc::Status::OK;
}

grpc::Status NodeServiceImpl::WatchDrain(grpc::ServerContext* context,
                                         const v1::WatchDrainRequest* request,
                                         grpc::ServerWriter<v1::Drain>* writer) {
  if (absl::Status s = protocol::CheckFieldLengths(
          {{"drain_id", request->drain_id(), protocol::kMaxHandoverIdBytes}});
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (request->drain_id().empty()) return Invalid("drain_id: is required");
  WatchSlot slot(watch_streams_);
  if (!slot.taken()) return TooManyWatchStreams("WatchDrain", "GetDrain");
  absl::Status s = drains_->Watch(
      request->drain_id(), [writer](const v1::Drain& drain) { return writer->Write(drain); },
      [context] { return context->IsCancelled(); });
  return ToGrpcStatus(s);
}

grpc::Status NodeServiceImpl::CancelDrain(grpc::ServerContext*,
                                          const v1::CancelDrainRequest* request,
                                          v1::Drain* response) {
  if (absl::Status s = protocol::CheckFieldLengths(
          {{"drain_id", request->drain_id(), protocol::kMaxHandoverIdBytes},
           {"reason", request->reason(), protocol::kMaxTextBytes}});
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (request->drain_id().empty()) return Invalid("drain_id: is required");
  auto drain = drains_->Cancel(request->drain_id(), request->reason());
  if (!drain.ok()) return ToGrpcStatus(drain.status());
  *response = *drain;
  return grpc::Status::OK;
}

}  // namespace daemon
}  // namespace nichandover
