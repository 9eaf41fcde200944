#include "daemon/engine/node_engine.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/proto_time.h"
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
  bool stepping = false;  // the protocol thread works on an event
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
  bool expired = false;  // the caller's wait passed (on the engine's clock)
  absl::StatusOr<v1::Handover> handover = absl::UnknownError("no answer");
  absl::StatusOr<v1::RecoverNicResponse> recovered = absl::UnknownError("no answer");
  absl::StatusOr<v1::OwnershipRecord> maintained = absl::UnknownError("no answer");
  PeerResponseBody peer;
};

namespace {

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
    case OpKind::kArm:
      r.status = p.fast_path ? p.fast_path->Arm(op.bdf, fence, op.desired)
                             : absl::UnimplementedError("no kernel commit path on this platform");
      break;
    case OpKind::kHandOff: {
      if (!p.fast_path) {
        r.status = absl::UnimplementedError("no kernel commit path on this platform");
        break;
      }
      auto h = p.fast_path->HandOff(protocol::HandOffRequestOf(op, fence));
      r.status = h.status();
      if (h.ok()) r.handoff = *h;
      break;
    }
  }
  return r;
}

}  // namespace

NodeEngine::NodeEngine(Options options)
    : options_(std::move(options)),
      mailbox_(std::make_shared<Mailbox>()),
      clock_(options_.clock ? options_.clock : std::make_shared<RealClock>()),
      platform_pool_(std::make_unique<BoundedExecutor>(BoundedExecutor::Options{
          "platform", options_.platform_threads, options_.max_queued_calls})),
      peer_pool_(std::make_unique<BoundedExecutor>(BoundedExecutor::Options{
          "peer", options_.peer_threads, options_.max_queued_calls})),
      sequencer_(options_.incarnation),
      compact_above_(options_.compact_after_records) {}

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
  config.history_per_nic = engine->options_.history_per_nic;
  config.kernel_commit = engine->options_.kernel_commit && p.fast_path != nullptr;
  engine->machine_ = std::make_unique<protocol::HandoverMachine>(std::move(config));
  NH_LOG(INFO) << "recovering: " << recover.journal.size() << " journal records, "
               << recover.records.size() << " ownership records, " << nics->size() << " NICs";
  engine->mailbox_->Post(std::move(recover));
  engine->loop_ = std::thread([e = engine.get()] { e->Loop(); });
  // Read even when the config turns the path off: a kernel armed before a
  // restart still commits alone, and the machine should hear of it.
  if (p.fast_path != nullptr) {
    engine->kernel_events_ = std::thread([e = engine.get()] { e->ReadKernelEvents(); });
  }
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
  {
    std::lock_guard<std::mutex> lock(reader_mu_);
    reader_stop_ = true;
    reader_wake_.notify_all();
  }
  // At most one WaitEvents (kernel_event_wait) away.
  if (kernel_events_.joinable()) kernel_events_.join();
  if (loop_.joinable()) loop_.join();
  // The loop is gone: nobody arms timers any more.
  for (const auto& [id, handle] : armed_timers_) clock_->Cancel(handle);
  armed_timers_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = true;
  for (auto& [id, watchers] : watchers_) {
    for (auto& [watch_id, watcher] : watchers) watcher->OnEngineStopped();
  }
  watchers_.clear();
  watched_.clear();
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
      mailbox_->stepping = false;
      mailbox_->cv.wait(lock, [&] { return mailbox_->closed || !mailbox_->events.empty(); });
      mailbox_->stepping = true;
      if (mailbox_->closed) return;
      event = std::move(mailbox_->events.front());
      mailbox_->events.pop_front();
    }
    if (const auto* fired = std::get_if<protocol::TimerFiredEvent>(&event)) {
      armed_timers_.erase(fired->timer_id);
    }
    std::optional<platform::KernelEvent> kernel_event;
    if (const auto* k = std::get_if<protocol::KernelEventEvent>(&event)) kernel_event = k->event;
    Ready ready;
    {
      std::lock_guard<std::mutex> lock(machine_mu_);
      machine_->Step(std::move(event));
      ready = machine_->TakeReady();
    }
    if (kernel_event && options_.observer) options_.observer->KernelEventStepped(*kernel_event);
    if (!ready.empty()) Execute(std::move(ready));
  }
}

void NodeEngine::ReadKernelEvents() {
  platform::FastPath& fast_path = *options_.platform->fast_path;
  uint64_t after_seq = 0;
  // Failures in a row: the first is logged, the streak's end too, and the
  // back-off doubles in between.
  uint64_t failures = 0;
  absl::Status first_failure;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(reader_mu_);
      if (reader_stop_) return;
    }
    absl::StatusOr<platform::KernelEvents> read =
        fast_path.WaitEvents(after_seq, options_.kernel_event_wait);
    if (!read.ok()) {
      if (failures++ == 0) {
        first_failure = read.status();
        NH_LOG(WARNING) << "reading the kernel's events failed (retrying, logged once until it "
                           "works again): "
                        << read.status();
      }
      absl::Duration delay = options_.kernel_event_backoff;
      for (uint64_t i = 1; i < failures && delay < options_.kernel_event_max_backoff; ++i) {
        delay *= 2;
      }
      if (!BackOff(std::min(delay, options_.kernel_event_max_backoff))) return;
      continue;
    }
    if (failures > 0) {
      NH_LOG(INFO) << "reading the kernel's events works again after " << failures
                   << " failures (the first: " << first_failure << ")";
      failures = 0;
    }
    for (auto& event : read->events) {
      NH_LOG(INFO) << "kernel event " << event.seq << ": "
                   << (event.kind == platform::KernelEvent::Kind::kCommitted ? "committed"
                                                                             : "not committed")
                   << " " << event.bdf << " epoch " << event.epoch
                   << (event.message.empty() ? "" : ": ") << event.message;
      Post(protocol::KernelEventEvent{std::move(event)});
    }
    // A timeout may leave last_seq unset: keep the place then.
    if (!read->events.empty() || read->last_seq != 0) after_seq = read->last_seq;
  }
}

bool NodeEngine::BackOff(absl::Duration delay) {
  // On the engine's clock, so that tests on a FakeClock decide when the
  // reader tries again.
  auto due = std::make_shared<bool>(false);
  const Clock::TimerHandle timer = clock_->Schedule(clock_->Now() + delay, [this, due] {
    std::lock_guard<std::mutex> lock(reader_mu_);
    *due = true;
    reader_wake_.notify_all();
  });
  std::unique_lock<std::mutex> lock(reader_mu_);
  reader_wake_.wait(lock, [&] { return *due || reader_stop_; });
  const bool stopped = reader_stop_;
  lock.unlock();
  clock_->Cancel(timer);
  return !stopped;
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
    const absl::Time sync_start = clock_->Now();
    absl::Status s = options_.journal->Append(bytes);
    if (s.ok()) s = options_.journal->Sync();
    if (options_.observer) options_.observer->JournalSynced(clock_->Now() - sync_start, s);
    // Acting on an intent that is not durable could let a restart forget a
    // CAS it made; stopping is the only safe answer (the record and the
    // kernel state survive, and recovery resumes from them).
    NH_CHECK(s.ok()) << "journal write failed, cannot act safely: " << s.message();
  }
  for (uint64_t id : ready.cancel_timers) CancelTimer(id);
  for (const auto& t : ready.timers) ArmTimer(t.timer_id, t.after);
  for (const auto& op : ready.ops) RunOp(op);
  for (const auto& send : ready.sends) Send(send);
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
  // Keep the engine's stamps bounded as the machine's history is.
  {
    std::lock_guard<std::mutex> machine_lock(machine_mu_);
    std::lock_guard<std::mutex> lock(mu_);
    ForgetTrimmedHandovers();
  }
  // Keep the journal bounded: the machine can always describe its state in
  // one record per known handover.
  if (options_.journal->Stats().records > compact_above_) {
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
    // The next compaction when the journal has doubled: a history of more
    // live records than compact_after_records would otherwise be rewritten
    // on every step.
    compact_above_ = std::max(options_.compact_after_records, 2 * live.size());
    if (s.ok()) {
      NH_LOG(INFO) << "journal compacted to " << live.size() << " records";
    } else {
      NH_LOG(ERROR) << "journal compaction failed, the journal keeps growing: " << s.message();
    }
  }
}

void NodeEngine::ArmTimer(uint64_t timer_id, absl::Duration after) {
  std::shared_ptr<Mailbox> mailbox = mailbox_;
  armed_timers_[timer_id] = clock_->Schedule(
      clock_->Now() + after, [mailbox, timer_id] { mailbox->Post(protocol::TimerFiredEvent{timer_id}); });
}

void NodeEngine::CancelTimer(uint64_t timer_id) {
  auto it = armed_timers_.find(timer_id);
  if (it == armed_timers_.end()) return;
  clock_->Cancel(it->second);
  armed_timers_.erase(it);
}

absl::Duration NodeEngine::CallDeadline(const PlatformOp& op) const {
  // A quiesce, and a hand-off that starts with one, waits for the driver
  // to drain by design: its drain bound comes on top (an absurd one
  // saturates to a deadline that never fires).
  if (op.kind == OpKind::kQuiesce || op.kind == OpKind::kHandOff) {
    return options_.platform_call_deadline + op.timeout;
  }
  return options_.platform_call_deadline;
}

// Whichever of a call's result and its deadline comes first answers the
// machine; the other is dropped.
using AnswerClaim = std::shared_ptr<std::atomic<bool>>;

void NodeEngine::RunOp(const PlatformOp& op) {
  // A call may block (a quiesce waits for the driver) or hang (a broken
  // kernel): it runs on the pool and holds one of its threads while it
  // does; the machine hears DEADLINE_EXCEEDED at the deadline, and a result
  // that comes later is dropped here (and would be by the machine as stale).
  std::shared_ptr<Mailbox> mailbox = mailbox_;
  AnswerClaim claim = std::make_shared<std::atomic<bool>>(false);
  const uint64_t op_id = op.op_id;
  const absl::Duration deadline = CallDeadline(op);
  auto answer = [mailbox, claim, op_id](OpResult result) {
    if (claim->exchange(true)) return false;
    mailbox->Post(protocol::OpDoneEvent{op_id, std::move(result)});
    return true;
  };
  const std::string what = absl::StrCat(protocol::OpKindName(op.kind), " ", op.bdf);
  const Clock::TimerHandle timer =
      clock_->Schedule(clock_->Now() + deadline, [answer, what, deadline] {
        OpResult expired;
        expired.status = absl::DeadlineExceededError(absl::StrCat(
            what, ": the platform call did not return within ", absl::FormatDuration(deadline),
            " (a hung kernel call holds one of the engine's platform threads until it returns)"));
        if (answer(std::move(expired))) NH_LOG(WARNING) << what << ": platform call timed out";
      });
  platform::Platform* p = options_.platform;
  std::shared_ptr<EngineObserver> observer = options_.observer;
  std::shared_ptr<Clock> clock = clock_;
  // Stamped here, on the protocol thread, in the order the machine asked.
  const platform::Fence fence{op.epoch, sequencer_.Next()};
  absl::Status queued = platform_pool_->Submit([answer, claim, p, observer, clock, op, fence, timer] {
    if (claim->load()) return;  // its deadline passed while it waited for a thread
    const absl::Time start = clock->Now();
    OpResult result = CallPlatform(*p, op, fence);
    clock->Cancel(timer);
    if (observer) observer->PlatformCallDone(op.kind, clock->Now() - start, result.status);
    if (!result.status.ok()) {
      NH_LOG(DEBUG) << protocol::OpKindName(op.kind) << " " << op.bdf << " failed: "
                    << result.status;
    }
    if (!answer(std::move(result))) {
      NH_LOG(INFO) << protocol::OpKindName(op.kind) << " " << op.bdf
                   << " returned after its deadline; result dropped";
    }
  });
  if (!queued.ok()) {
    clock_->Cancel(timer);
    OpResult refused;
    refused.status = queued;
    answer(std::move(refused));
  }
}

void NodeEngine::Send(const protocol::PeerSend& send) {
  std::shared_ptr<Mailbox> mailbox = mailbox_;
  AnswerClaim claim = std::make_shared<std::atomic<bool>>(false);
  const uint64_t call_id = send.call_id;
  auto answer = [mailbox, claim, call_id](const absl::StatusOr<PeerResponseBody>& response) {
    if (claim->exchange(true)) return;
    protocol::PeerResponseEvent event;
    event.call_id = call_id;
    event.status = response.status();
    if (response.ok()) event.body = *response;
    mailbox->Post(std::move(event));
  };
  // The transport enforces `deadline` itself; this bounds a transport that
  // never calls back.
  const absl::Duration wait = send.deadline + options_.peer_answer_grace;
  const std::string peer = send.to_node;
  const Clock::TimerHandle timer = clock_->Schedule(clock_->Now() + wait, [answer, peer, wait] {
    answer(absl::DeadlineExceededError(
        absl::StrCat("no answer from ", peer, " within ", absl::FormatDuration(wait))));
  });
  std::shared_ptr<EngineObserver> observer = options_.observer;
  std::shared_ptr<Clock> clock = clock_;
  PeerTransport* transport = options_.transport;
  absl::Status queued = peer_pool_->Submit([answer, claim, observer, clock, transport, send,
                                            timer] {
    if (claim->load()) return;
    const absl::Time sent = clock->Now();
    transport->Send(send.to_node, send.body, send.deadline,
                    [answer, observer, clock, peer = send.to_node, sent,
                     timer](absl::StatusOr<PeerResponseBody> response) {
                      clock->Cancel(timer);
                      if (observer) {
                        observer->PeerCallDone(peer, clock->Now() - sent, response.status());
                      }
                      answer(response);
                    });
  });
  if (!queued.ok()) {
    clock_->Cancel(timer);
    answer(queued);
  }
}

v1::Handover NodeEngine::Stamp(v1::Handover h) {
  // Called with mu_ held.
  const absl::Time now = clock_->Now();
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
    // A watcher hears of phase changes and the end, not of every snapshot.
    auto prev_phase = latest_.find(id);
    const bool news = prev_phase == latest_.end() ||
                      prev_phase->second.phase() != stamped.phase() || stamped.done();
    latest_[id] = stamped;
    if (!news) continue;
    auto watchers = watchers_.find(id);
    if (watchers == watchers_.end()) continue;
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
    for (auto& [watch_id, watcher] : watchers->second) watcher->OnEvent(event);
    if (stamped.done()) {
      // The end was the last event: the watches are over.
      for (auto& [watch_id, watcher] : watchers->second) watched_.erase(watch_id);
      watchers_.erase(watchers);
    }
  }
  changed_.notify_all();
}

void NodeEngine::ForgetTrimmedHandovers() {
  if (created_.size() <= forget_above_) return;
  std::set<std::string> kept;
  for (const auto& h : machine_->ListHandovers("")) kept.insert(h.handover_id());
  for (auto it = created_.begin(); it != created_.end();) {
    const std::string& id = it->first;
    // Not yet in the history (being created) or watched: still needed.
    if (kept.count(id) || watchers_.count(id) || machine_->GetHandover(id).ok()) {
      ++it;
      continue;
    }
    latest_.erase(id);
    phase_starts_.erase(id);
    it = created_.erase(it);
  }
  // Look again after this many more: amortized, the look is cheap.
  forget_above_ = created_.size() + kForgetBatch;
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
  event.handover_id = absl::StrCat(options_.node_id, "-", absl::ToUnixMicros(clock_->Now()), "-",
                                   event.request_token);
  event.request_id = request.request_id();
  event.nic = request.nic();
  event.target_node = request.target_node();
  if (request.has_timeout()) event.timeout = FromProto(request.timeout());
  event.commit_path = request.commit_path();
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
  // The machine's history decides what is known (latest_ may still hold a
  // handover it trimmed, until ForgetTrimmedHandovers runs).
  absl::StatusOr<v1::Handover> known;
  {
    std::lock_guard<std::mutex> lock(machine_mu_);
    known = machine_->GetHandover(handover_id);
  }
  if (!known.ok()) return known;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = latest_.find(handover_id);
  return it != latest_.end() ? it->second : known;
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

absl::StatusOr<uint64_t> NodeEngine::Watch(const std::string& handover_id,
                                           std::shared_ptr<HandoverWatcher> watcher) {
  // Both locks: the first event and the registration are one step, so no
  // change falls between them (Publish runs under mu_).
  std::lock_guard<std::mutex> machine_lock(machine_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) return absl::UnavailableError("the daemon is shutting down");
  absl::StatusOr<v1::Handover> current;
  auto it = latest_.find(handover_id);
  if (it != latest_.end()) {
    current = it->second;
  } else {
    current = machine_->GetHandover(handover_id);
  }
  if (!current.ok()) return current.status();
  v1::HandoverEvent first;
  *first.mutable_handover() = *current;
  first.set_phase(current->phase());
  *first.mutable_time() = current->update_time();
  first.set_message("current state");
  watcher->OnEvent(first);
  if (current->done()) return 0;
  const uint64_t watch_id = next_watch_id_++;
  watchers_[handover_id][watch_id] = std::move(watcher);
  watched_[watch_id] = handover_id;
  return watch_id;
}

void NodeEngine::Unwatch(uint64_t watch_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = watched_.find(watch_id);
  if (it == watched_.end()) return;
  auto watchers = watchers_.find(it->second);
  if (watchers != watchers_.end()) {
    watchers->second.erase(watch_id);
    if (watchers->second.empty()) watchers_.erase(watchers);
  }
  watched_.erase(it);
}

bool NodeEngine::Idle(size_t running_platform_calls) {
  {
    std::lock_guard<std::mutex> lock(mailbox_->mu);
    // A stopped engine steps nothing more, whatever is left in its mailbox.
    if (!mailbox_->closed && (mailbox_->stepping || !mailbox_->events.empty())) return false;
  }
  const BoundedExecutor::Stats platform = platform_pool_->GetStats();
  const BoundedExecutor::Stats peer = peer_pool_->GetStats();
  return platform.running <= running_platform_calls && platform.queued == 0 &&
         peer.running == 0 && peer.queued == 0;
}

size_t NodeEngine::WatcherCount() {
  std::lock_guard<std::mutex> lock(mu_);
  return watched_.size();
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
  // The wait is measured on the engine's clock, like everything else.
  const Clock::TimerHandle timer = clock_->Schedule(clock_->Now() + wait, [this, pending] {
    std::lock_guard<std::mutex> lock(mu_);
    pending->expired = true;
    changed_.notify_all();
  });
  Post(std::move(event));
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return pending->done || pending->expired || stopped_; });
  pending_.erase(token);
  lock.unlock();
  clock_->Cancel(timer);
  return pending->done ? pending : nullptr;
}

}  // namespace engine
}  // namespace nichandover
