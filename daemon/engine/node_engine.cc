#include "daemon/engine/node_engine.h"

#include <algorithm>
#include <queue>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/protocol/format.h"
#include "google/protobuf/util/time_util.h"

namespace nichandover {
namespace engine {

using protocol::Event;
using protocol::OpKind;
using protocol::OpResult;
using protocol::PeerRequestBody;
using protocol::PeerResponseBody;
using protocol::PlatformOp;
using protocol::Ready;

// Events for the protocol thread. Shared with worker threads, which may
// outlive the engine (a hung platform call): they post into a closed mailbox
// harmlessly.
struct Mailbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;
  bool closed = false;

  void Post(Event event) {
    std::lock_guard<std::mutex> lock(mu);
    if (closed) return;
    events.push_back(std::move(event));
    cv.notify_one();
  }
};

// What an RPC handler waits for: the machine's answer to its request.
struct PendingAnswer {
  bool done = false;
  absl::StatusOr<v1::Handover> handover = absl::UnknownError("no answer");
  absl::StatusOr<v1::RecoverNicResponse> recovered = absl::UnknownError("no answer");
  absl::StatusOr<v1::OwnershipRecord> maintained = absl::UnknownError("no answer");
  PeerResponseBody peer;
};

// Fires timer ids into the mailbox at their deadlines.
class TimerQueue {
 public:
  static constexpr absl::Duration kMaxSleep = absl::Minutes(1);

  explicit TimerQueue(std::shared_ptr<Mailbox> mailbox)
      : mailbox_(std::move(mailbox)), thread_([this] { Run(); }) {}
  ~TimerQueue() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      cv_.notify_all();
    }
    thread_.join();
  }
  void Arm(uint64_t id, absl::Duration after) {
    std::lock_guard<std::mutex> lock(mu_);
    deadlines_.emplace(absl::Now() + after, id);
    cv_.notify_all();
  }
  void Cancel(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = deadlines_.begin(); it != deadlines_.end(); ++it) {
      if (it->second == id) {
        deadlines_.erase(it);
        return;
      }
    }
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      if (deadlines_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto first = deadlines_.begin();
      absl::Time now = absl::Now();
      if (first->first <= now) {
        uint64_t id = first->second;
        deadlines_.erase(first);
        lock.unlock();
        mailbox_->Post(protocol::TimerFiredEvent{id});
        lock.lock();
        continue;
      }
      // Sleep in bounded slices: a far deadline (absl::InfiniteFuture from
      // an absurd duration) would overflow the condition variable's clock
      // arithmetic and turn this wait into a busy loop.
      cv_.wait_for(lock, absl::ToChronoNanoseconds(std::min(first->first - now, kMaxSleep)));
    }
  }

  std::shared_ptr<Mailbox> mailbox_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<absl::Time, uint64_t> deadlines_;
  bool stop_ = false;
  std::thread thread_;
};

namespace {

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(t);
  ts.set_seconds(nanos / 1000000000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return ts;
}

google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out.set_seconds(nanos / 1000000000);
  out.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return out;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// Runs one platform call; the machine's op kinds map 1:1 onto the interfaces.
// `fence` is what the calls that change a device carry.
OpResult CallPlatform(platform::Platform& p, const PlatformOp& op, const platform::Fence& fence) {
  OpResult r;
  switch (op.kind) {
    case OpKind::kReadRecord: {
      auto rec = p.arbiter->Read(op.bdf);
      r.status = rec.status();
      if (rec.ok()) r.record = *rec;
      break;
    }
    case OpKind::kCompareAndSwap: {
      auto rec = p.arbiter->CompareAndSwap(op.bdf, op.expected, op.desired);
      r.status = rec.status();
      if (rec.ok()) r.record = *rec;
      break;
    }
    case OpKind::kWriteHandoffRings:
      r.status = p.arbiter->WriteHandoffRings(op.bdf, fence, op.rings);
      break;
    case OpKind::kReadHandoffRings: {
      auto rings = p.arbiter->ReadHandoffRings(op.bdf, op.epoch);
      r.status = rings.status();
      if (rings.ok()) r.rings = *rings;
      break;
    }
    case OpKind::kQuiesce: {
      auto q = p.hook->Quiesce(op.bdf, fence, op.timeout);
      r.status = q.status();
      if (q.ok()) r.quiesce = *q;
      break;
    }
    case OpKind::kResume:
      r.status = p.hook->Resume(op.bdf, fence);
      break;
    case OpKind::kAttach:
      r.status = p.hook->Attach(op.bdf, fence, op.rings);
      break;
    case OpKind::kRelease:
      r.status = p.hook->Release(op.bdf, fence);
      break;
    case OpKind::kReadMessages: {
      auto m = p.router->ReadMessages(op.bdf);
      r.status = m.status();
      if (m.ok()) r.messages = *m;
      break;
    }
    case OpKind::kReroute: {
      auto m = p.router->Reroute(op.bdf, fence, op.messages);
      r.status = m.status();
      if (m.ok()) r.messages = *m;
      break;
    }
    case OpKind::kRestore:
      r.status = p.router->Restore(op.bdf, fence, op.messages);
      break;
    case OpKind::kReserveMessages: {
      auto m = p.router->ReserveTargetMessages(op.bdf, fence, op.count);
      r.status = m.status();
      if (m.ok()) r.messages = *m;
      break;
    }
    case OpKind::kReleaseReservation:
      r.status = p.router->ReleaseReservation(op.bdf, fence);
      break;
  }
  return r;
}

}  // namespace

NodeEngine::NodeEngine(Options options)
    : options_(std::move(options)),
      mailbox_(std::make_shared<Mailbox>()),
      sequencer_(options_.incarnation) {}

absl::StatusOr<std::unique_ptr<NodeEngine>> NodeEngine::Start(
    Options options, const std::vector<std::string>& journal_records) {
  std::unique_ptr<NodeEngine> engine(new NodeEngine(std::move(options)));
  platform::Platform& p = *engine->options_.platform;

  // What the machine is made of, read before the machine sees anything: the
  // record decides, the kernel state is brought in line with it.
  auto nics = p.inventory->ListNics();
  if (!nics.ok()) {
    return absl::Status(nics.status().code(),
                        absl::StrCat("inventory: ", nics.status().message()));
  }
  protocol::RecoverEvent recover;
  for (const auto& nic : *nics) {
    auto record = p.arbiter->Read(nic.bdf);
    if (record.ok()) {
      recover.records[nic.bdf] = *record;
    } else if (record.status().code() != absl::StatusCode::kNotFound) {
      return absl::Status(record.status().code(),
                          absl::StrCat("arbiter: reading the record of ", nic.bdf, ": ",
                                       record.status().message()));
    }
    auto hook = p.hook->Status(nic.bdf);
    if (hook.ok()) {
      recover.hooks[nic.bdf] = *hook;
    } else {
      return absl::Status(hook.status().code(),
                          absl::StrCat("hook: status of ", nic.bdf, ": ", hook.status().message()));
    }
  }
  for (size_t i = 0; i < journal_records.size(); ++i) {
    protocol::JournalRecord record;
    if (!record.ParseFromString(journal_records[i])) {
      return absl::DataLossError(
          absl::StrCat("journal record ", i, " does not parse as a protocol record"));
    }
    recover.journal.push_back(std::move(record));
  }

  protocol::MachineConfig config;
  config.node_id = engine->options_.node_id;
  config.peers = engine->options_.peers;
  config.nics = *nics;
  config.timeouts = engine->options_.timeouts;
  engine->machine_ = std::make_unique<protocol::HandoverMachine>(std::move(config));
  NH_LOG(INFO) << "recovering: " << recover.journal.size() << " journal records, "
               << recover.records.size() << " ownership records, " << nics->size() << " NICs";
  engine->timers_ = std::make_unique<TimerQueue>(engine->mailbox_);
  engine->mailbox_->Post(std::move(recover));
  engine->loop_ = std::thread([e = engine.get()] { e->Loop(); });
  return engine;
}

NodeEngine::~NodeEngine() { Stop(); }

void NodeEngine::Stop() {
  {
    std::lock_guard<std::mutex> lock(mailbox_->mu);
    if (mailbox_->closed) return;
    mailbox_->closed = true;
    mailbox_->cv.notify_all();
  }
  if (loop_.joinable()) loop_.join();
  timers_.reset();
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = true;
  changed_.notify_all();
}

uint64_t NodeEngine::NextToken() {
  std::lock_guard<std::mutex> lock(mu_);
  return next_token_++;
}

void NodeEngine::Post(Event event) { mailbox_->Post(std::move(event)); }

void NodeEngine::Loop() {
  while (true) {
    Event event;
    {
      std::unique_lock<std::mutex> lock(mailbox_->mu);
      mailbox_->cv.wait(lock, [&] { return mailbox_->closed || !mailbox_->events.empty(); });
      if (mailbox_->closed) return;
      event = std::move(mailbox_->events.front());
      mailbox_->events.pop_front();
    }
    Ready ready;
    {
      std::lock_guard<std::mutex> lock(machine_mu_);
      machine_->Step(std::move(event));
      ready = machine_->TakeReady();
    }
    if (!ready.empty()) Execute(std::move(ready));
  }
}

void NodeEngine::Execute(Ready ready) {
  // The persistence rule: the intent is durable before anything it announces.
  if (!ready.records.empty()) {
    std::vector<std::string> bytes;
    bytes.reserve(ready.records.size());
    {
      // The machine has no clock: the journal keeps the engine's phase times,
      // so the history read back after a restart still has them.
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& r : ready.records) {
        if (r.has_handover()) *r.mutable_handover() = Stamp(r.handover());
        bytes.push_back(r.SerializeAsString());
      }
    }
    std::lock_guard<std::mutex> journal_lock(journal_mu_);
    const absl::Time sync_start = absl::Now();
    absl::Status s = options_.journal->Append(bytes);
    if (s.ok()) s = options_.journal->Sync();
    if (options_.observer) options_.observer->JournalSynced(absl::Now() - sync_start, s);
    // Acting on an intent that is not durable could let a restart forget a
    // CAS it made; stopping is the only safe answer (the record and the
    // kernel state survive, and recovery resumes from them).
    NH_CHECK(s.ok()) << "journal write failed, cannot act safely: " << s.message();
  }
  for (uint64_t id : ready.cancel_timers) timers_->Cancel(id);
  for (const auto& t : ready.timers) timers_->Arm(t.timer_id, t.after);
  for (const auto& op : ready.ops) RunOp(op);
  for (const auto& send : ready.sends) {
    std::shared_ptr<Mailbox> mailbox = mailbox_;
    uint64_t call_id = send.call_id;
    std::shared_ptr<EngineObserver> observer = options_.observer;
    const std::string peer = send.to_node;
    const absl::Time sent = absl::Now();
    options_.transport->Send(send.to_node, send.body, send.deadline,
                             [mailbox, call_id, observer, peer,
                              sent](absl::StatusOr<PeerResponseBody> answer) {
                               if (observer) {
                                 observer->PeerCallDone(peer, absl::Now() - sent, answer.status());
                               }
                               protocol::PeerResponseEvent event;
                               event.call_id = call_id;
                               event.status = answer.status();
                               if (answer.ok()) event.body = std::move(*answer);
                               mailbox->Post(std::move(event));
                             });
  }
  Publish(ready.updates);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& a : ready.answers) {
      auto it = pending_.find(a.request_token);
      if (it == pending_.end()) continue;  // the caller gave up waiting
      it->second->handover = a.handover.ok() ? absl::StatusOr<v1::Handover>(Stamp(*a.handover))
                                             : a.handover;
      it->second->done = true;
    }
    for (auto& a : ready.recover_answers) {
      auto it = pending_.find(a.request_token);
      if (it == pending_.end()) continue;
      if (a.response.ok() && a.response->has_handover()) {
        *a.response->mutable_handover() = Stamp(a.response->handover());
      }
      it->second->recovered = std::move(a.response);
      it->second->done = true;
    }
    for (auto& a : ready.maintenance_answers) {
      auto it = pending_.find(a.request_token);
      if (it == pending_.end()) continue;
      it->second->maintained = std::move(a.record);
      it->second->done = true;
    }
    for (auto& a : ready.peer_answers) {
      auto it = pending_.find(a.call_token);
      if (it == pending_.end()) continue;
      it->second->peer = std::move(a.body);
      it->second->done = true;
    }
    changed_.notify_all();
  }
  // Keep the journal bounded: the machine can always describe its state in
  // one record per known handover.
  if (options_.journal->Stats().records > options_.compact_after_records) {
    std::vector<std::string> live;
    {
      std::lock_guard<std::mutex> lock(machine_mu_);
      std::lock_guard<std::mutex> stamp_lock(mu_);
      for (auto r : machine_->CompactedJournal()) {
        if (r.has_handover()) *r.mutable_handover() = Stamp(r.handover());
        live.push_back(r.SerializeAsString());
      }
    }
    std::lock_guard<std::mutex> journal_lock(journal_mu_);
    absl::Status s = options_.journal->Compact(live);
    // A failed compaction (a full disk) leaves the old journal in use; the
    // next append tells whether it still works.
    if (s.ok()) {
      NH_LOG(INFO) << "journal compacted to " << live.size() << " records";
    } else {
      NH_LOG(ERROR) << "journal compaction failed, the journal keeps growing: " << s.message();
    }
  }
}

void NodeEngine::RunOp(const PlatformOp& op) {
  // Each call on its own thread: a call may block (a quiesce waits for the
  // driver) or hang (a broken kernel); the machine bounds it with a timer,
  // and a late result is dropped by the machine as stale.
  std::shared_ptr<Mailbox> mailbox = mailbox_;
  platform::Platform* p = options_.platform;
  std::shared_ptr<EngineObserver> observer = options_.observer;
  const platform::Fence fence{op.epoch, sequencer_.Next()};
  std::thread([mailbox, p, observer, op, fence] {
    const absl::Time start = absl::Now();
    OpResult result = CallPlatform(*p, op, fence);
    if (observer) observer->PlatformCallDone(op.kind, absl::Now() - start, result.status);
    if (!result.status.ok()) {
      NH_LOG(DEBUG) << protocol::OpKindName(op.kind) << " " << op.bdf << " failed: "
                    << result.status;
    }
    mailbox->Post(protocol::OpDoneEvent{op.op_id, std::move(result)});
  }).detach();
}

v1::Handover NodeEngine::Stamp(v1::Handover h) {
  // Called with mu_ held.
  const absl::Time now = absl::Now();
  const std::string& id = h.handover_id();
  auto created = created_.emplace(id, now).first->second;
  if (!h.has_create_time()) *h.mutable_create_time() = ToProto(created);
  auto& starts = phase_starts_[id];
  while (starts.size() < static_cast<size_t>(h.phases_size())) starts.push_back(now);
  for (int i = 0; i < h.phases_size(); ++i) {
    auto* phase = h.mutable_phases(i);
    if (!phase->has_start_time()) *phase->mutable_start_time() = ToProto(starts[i]);
    bool last = i + 1 == h.phases_size();
    if (!last || h.done()) {
      absl::Time end = last ? now : starts[i + 1];
      if (!phase->has_end_time()) *phase->mutable_end_time() = ToProto(end);
      if (!phase->has_duration()) *phase->mutable_duration() = ToProto(end - starts[i]);
    }
  }
  *h.mutable_update_time() = ToProto(now);
  if (h.done() && !h.has_end_time()) *h.mutable_end_time() = ToProto(now);
  // The blackout as the source sees it: from its gates closing (QUIESCING)
  // until it learns the target runs the NIC (ATTACHING). An upper bound of
  // the data path's pause; the simulated machine's traffic sink measures the
  // pause itself.
  if (h.source_node() == options_.node_id && !h.stats().has_blackout()) {
    int quiesce = -1, attach = -1;
    for (int i = 0; i < h.phases_size(); ++i) {
      if (h.phases(i).phase() == v1::HANDOVER_PHASE_QUIESCING && quiesce < 0) quiesce = i;
      if (h.phases(i).phase() == v1::HANDOVER_PHASE_ATTACHING && attach < 0) attach = i;
    }
    if (quiesce >= 0 && attach > quiesce) {
      *h.mutable_stats()->mutable_blackout() = ToProto(starts[attach] - starts[quiesce]);
    }
  }
  return h;
}

void NodeEngine::Publish(const std::vector<v1::Handover>& updates) {
  if (updates.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& update : updates) {
    const std::string& id = update.handover_id();
    // A finished handover keeps its stamped times (an operator's recovery
    // may reopen a FAILED one: then it changes again).
    auto prev = latest_.find(id);
    if (prev != latest_.end() && prev->second.done() && update.done()) continue;
    v1::Handover stamped = Stamp(update);
    if (stamped.done() && options_.observer) {
      options_.observer->HandoverFinished(stamped, stamped.source_node() == options_.node_id);
    }
    v1::HandoverEvent event;
    *event.mutable_handover() = stamped;
    event.set_phase(stamped.phase());
    *event.mutable_time() = stamped.update_time();
    if (stamped.phases_size() > 0) {
      event.set_message(stamped.phases(stamped.phases_size() - 1).detail());
    }
    if (stamped.done() && stamped.has_error() && !stamped.error().message().empty()) {
      event.set_message(stamped.error().message());
    }
    auto& log = events_[id];
    // A watcher only needs phase changes and the end, not every snapshot.
    if (log.empty() || log.back().phase() != event.phase() || stamped.done()) {
      log.push_back(event);
    } else {
      log.back() = event;
    }
    latest_[id] = std::move(stamped);
  }
  changed_.notify_all();
}

absl::Status NodeEngine::ReserveJournalSpace() {
  std::lock_guard<std::mutex> lock(journal_mu_);
  return options_.journal->Reserve(kJournalHeadroomBytes);
}

absl::StatusOr<v1::Handover> NodeEngine::ExistingHandoverOf(const std::string& request_id) {
  std::lock_guard<std::mutex> lock(machine_mu_);
  return machine_->GetHandoverByRequestId(request_id);
}

absl::StatusOr<v1::Handover> NodeEngine::CreateHandover(const v1::CreateHandoverRequest& request,
                                                        absl::Duration wait) {
  // A retry of a running handover needs no new space; a new one does, and
  // is refused here while nothing has moved yet.
  if (absl::Status space = ReserveJournalSpace(); !space.ok()) {
    absl::StatusOr<v1::Handover> existing = ExistingHandoverOf(request.request_id());
    if (!existing.ok()) return space;
  }
  protocol::CreateHandoverEvent event;
  event.request_token = NextToken();
  // Unique across restarts and nodes: node, wall-clock time, token.
  event.handover_id = absl::StrCat(options_.node_id, "-", absl::ToUnixMicros(absl::Now()), "-",
                                   event.request_token);
  event.request_id = request.request_id();
  event.nic = request.nic();
  event.target_node = request.target_node();
  if (request.has_timeout()) event.timeout = FromProto(request.timeout());
  RefreshNic(event.nic);
  uint64_t token = event.request_token;
  auto answer = Ask(token, std::move(event), wait);
  if (answer == nullptr) {
    return absl::UnavailableError("the daemon did not take the request in time; retry with "
                                  "the same request_id");
  }
  return answer->handover;
}

absl::StatusOr<v1::Handover> NodeEngine::CancelHandover(const std::string& handover_id,
                                                        const std::string& reason,
                                                        absl::Duration wait) {
  protocol::CancelHandoverEvent event;
  event.request_token = NextToken();
  event.handover_id = handover_id;
  event.reason = reason;
  uint64_t token = event.request_token;
  auto answer = Ask(token, std::move(event), wait);
  if (answer == nullptr) {
    return absl::UnavailableError("the daemon did not take the cancel in time; retry");
  }
  return answer->handover;
}

absl::StatusOr<v1::RecoverNicResponse> NodeEngine::RecoverNic(
    const v1::RecoverNicRequest& request, absl::Duration wait) {
  protocol::RecoverNicEvent event;
  event.request_token = NextToken();
  event.request_id = request.request_id();
  event.nic = request.nic();
  event.decision = request.decision();
  uint64_t token = event.request_token;
  auto answer = Ask(token, std::move(event), wait);
  if (answer == nullptr) {
    return absl::DeadlineExceededError(
        "the recovery did not finish in time (a platform call may hang); check the NIC with "
        "'nicctl nic show' and retry with the same request_id");
  }
  return answer->recovered;
}

absl::StatusOr<v1::OwnershipRecord> NodeEngine::QuiesceNic(const v1::QuiesceNicRequest& request,
                                                           absl::Duration wait) {
  protocol::QuiesceNicEvent event;
  event.request_token = NextToken();
  event.nic = request.nic();
  if (request.has_timeout()) event.timeout = FromProto(request.timeout());
  uint64_t token = event.request_token;
  auto answer = Ask(token, std::move(event), wait);
  if (answer == nullptr) {
    return absl::DeadlineExceededError(
        "the quiesce did not answer in time (the hook may hang); check the NIC with "
        "'nicctl nic show' and retry");
  }
  return answer->maintained;
}

absl::StatusOr<v1::OwnershipRecord> NodeEngine::ResumeNic(const v1::ResumeNicRequest& request,
                                                          absl::Duration wait) {
  protocol::ResumeNicEvent event;
  event.request_token = NextToken();
  event.nic = request.nic();
  uint64_t token = event.request_token;
  auto answer = Ask(token, std::move(event), wait);
  if (answer == nullptr) {
    return absl::DeadlineExceededError(
        "the resume did not answer in time (the hook may hang); retry");
  }
  return answer->maintained;
}

absl::StatusOr<v1::Handover> NodeEngine::GetHandover(const std::string& handover_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = latest_.find(handover_id);
    if (it != latest_.end()) return it->second;
  }
  std::lock_guard<std::mutex> lock(machine_mu_);
  return machine_->GetHandover(handover_id);
}

std::vector<v1::Handover> NodeEngine::ListHandovers(const std::string& bdf) {
  std::vector<v1::Handover> list;
  {
    std::lock_guard<std::mutex> lock(machine_mu_);
    list = machine_->ListHandovers(bdf);
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& h : list) {
    auto it = latest_.find(h.handover_id());
    if (it != latest_.end()) h = it->second;
  }
  return list;
}

bool NodeEngine::HeldForMaintenance(const std::string& bdf) {
  std::lock_guard<std::mutex> lock(machine_mu_);
  return machine_->HeldForMaintenance(bdf);
}

std::vector<std::string> NodeEngine::RecentHandoverIds(const std::string& bdf, size_t limit) {
  std::vector<std::string> ids;
  std::lock_guard<std::mutex> lock(machine_mu_);
  for (const auto& h : machine_->ListHandovers(bdf)) {
    if (ids.size() >= limit) break;
    ids.push_back(h.handover_id());
  }
  return ids;
}

absl::Status NodeEngine::Watch(const std::string& handover_id,
                               const std::function<bool(const v1::HandoverEvent&)>& emit,
                               const std::function<bool()>& cancelled) {
  absl::StatusOr<v1::Handover> current = GetHandover(handover_id);
  if (!current.ok()) return current.status();
  v1::HandoverEvent first;
  *first.mutable_handover() = *current;
  first.set_phase(current->phase());
  *first.mutable_time() = current->update_time();
  first.set_message("current state");
  if (!emit(first) || current->done()) return absl::OkStatus();
  size_t next = 0;
  {
    // Skip events already reflected in the first one.
    std::lock_guard<std::mutex> lock(mu_);
    next = events_[handover_id].size();
  }
  while (true) {
    std::vector<v1::HandoverEvent> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait_for(lock, std::chrono::milliseconds(200), [&] {
        return stopped_ || events_[handover_id].size() > next;
      });
      if (stopped_) return absl::UnavailableError("the daemon is shutting down");
      const auto& log = events_[handover_id];
      for (; next < log.size(); ++next) batch.push_back(log[next]);
    }
    for (const auto& e : batch) {
      if (!emit(e)) return absl::OkStatus();
      if (e.handover().done()) return absl::OkStatus();
    }
    if (cancelled()) return absl::CancelledError("the client went away");
  }
}

absl::StatusOr<PeerResponseBody> NodeEngine::HandlePeerRequest(const std::string& from_node,
                                                               PeerRequestBody body,
                                                               absl::Duration wait) {
  // An offer is judged on what this node has now (a driver loaded since
  // start, a NIC hot-plugged into this VM), not on the start-up inventory.
  if (const auto* offer = std::get_if<v1::OfferRequest>(&body)) {
    if (absl::Status space = ReserveJournalSpace(); !space.ok()) {
      NH_LOG(WARNING) << "refusing offer " << offer->handover_id() << ": " << space.message();
      v1::OfferResponse refusal;
      refusal.set_accepted(false);
      refusal.set_refusal_reason(v1::REFUSAL_REASON_NOT_ACCEPTING);
      refusal.set_refusal_message(std::string(space.message()));
      return PeerResponseBody(refusal);
    }
    RefreshNic(offer->bdf());
  }
  protocol::PeerRequestEvent event;
  event.call_token = NextToken();
  event.from_node = from_node;
  event.body = std::move(body);
  uint64_t token = event.call_token;
  auto answer = Ask(token, std::move(event), wait);
  if (answer == nullptr) return absl::UnavailableError("the node did not answer in time");
  return answer->peer;
}

void NodeEngine::RefreshNic(const std::string& nic) {
  auto bdf = protocol::NormalizeBdf(nic, "nic");
  if (!bdf.ok()) return;  // the machine answers the malformed name itself
  auto info = options_.platform->inventory->GetNic(*bdf);
  if (!info.ok()) return;  // unknown here: the machine refuses with NOT_FOUND
  // Queued ahead of the request it serves, so the machine sees it first.
  Post(protocol::InventoryEvent{{*info}});
}

std::shared_ptr<PendingAnswer> NodeEngine::Ask(uint64_t token, Event event, absl::Duration wait) {
  auto pending = std::make_shared<PendingAnswer>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_[token] = pending;
  }
  Post(std::move(event));
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_for(lock, absl::ToChronoNanoseconds(wait),
                    [&] { return pending->done || stopped_; });
  pending_.erase(token);
  return pending->done ? pending : nullptr;
}

}  // namespace engine
}  // namespace nichandover
