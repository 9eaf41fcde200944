// The sim backend against a real simulated machine: a device thread, two
// kernels serving their control sockets, and the four interfaces driving a
// handover as the daemons would.
#include "daemon/platform/sim/sim_platform.h"
#include "daemon/platform/sim/record_testing.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "pci/x86_msi.h"
#include "sim/control_server.h"
#include "sim/kernel.h"
#include "sim/testing.h"
#include "sim/traffic.h"

namespace nichandover {
namespace platform {
namespace sim {
namespace {

using ::nichandover::sim::ControlServer;
using ::nichandover::sim::DeviceThread;
using ::nichandover::sim::Kernel;
using ::nichandover::sim::KernelOptions;
using ::nichandover::sim::Machine;
using ::nichandover::sim::TestPath;
using ::nichandover::sim::Traffic;
using ::nichandover::sim::TrafficOptions;
using ::nichandover::sim::TrafficReport;

constexpr char kBdf[] = "0000:03:00.0";
constexpr absl::Duration kTimeout = absl::Seconds(5);



class SimPlatformTest : public ::testing::Test {
 protected:
  void SetUp() override { StartMachine("sim_platform_machine", ::nichandover::sim::TwoNodeSpec()); }

  // The machine, its device, both nodes' kernels with their control servers
  // and both nodes' sim platforms.
  void StartMachine(const std::string& name, const ::nichandover::sim::MachineSpec& spec) {
    path_ = TestPath(name);
    auto machine = Machine::Create(path_, spec);
    ASSERT_TRUE(machine.ok()) << machine.status();
    machine_ = std::move(*machine);
    device_ = std::make_unique<DeviceThread>(*machine_);
    for (int i = 0; i < 2; ++i) {
      std::string node = "node" + std::to_string(i);
      KernelOptions options;
      options.node_id = node;
      auto kernel = Kernel::Boot(machine_.get(), options);
      ASSERT_TRUE(kernel.ok()) << kernel.status();
      std::string socket = ::nichandover::sim::SocketPath(node + "-kernel.sock");
      auto server = ControlServer::Start(kernel->get(), socket);
      ASSERT_TRUE(server.ok()) << server.status().ToString();
      kernels_.push_back(std::move(*kernel));
      servers_.push_back(std::move(*server));
      v1::DaemonConfig config;
      config.set_node_id(node);
      v1::CpuConfig* cpu = config.add_cpus();
      cpu->set_cpu(0);
      cpu->set_apic_id(i * 2);
      v1::SimPlatformConfig sim;
      sim.set_machine_path(path_);
      sim.set_kernel_socket(socket);
      auto platform = MakeSimPlatform(sim, config);
      ASSERT_TRUE(platform.ok()) << platform.status();
      platforms_.push_back(std::move(*platform));
    }
  }

  void TearDown() override {
    traffic_.reset();
    for (auto& server : servers_) server->Shutdown();
    kernels_.clear();
    device_.reset();
  }

  // A handover through the four interfaces, in the protocol's order.
  void Handover(int from, int to) {
    Platform& source = platforms_[from];
    Platform& target = platforms_[to];
    std::string s = "node" + std::to_string(from), t = "node" + std::to_string(to);
    auto active = source.arbiter->Read(kBdf);
    ASSERT_TRUE(active.ok());
    uint64_t epoch = active->epoch() + 1;
    auto nic = source.inventory->GetNic(kBdf);
    ASSERT_TRUE(nic.ok());
    auto messages = target.router->ReserveTargetMessages(kBdf, Fence{epoch, 0},
                                                         nic->interrupts.vectors_enabled());
    ASSERT_TRUE(messages.ok()) << messages.status();
    auto preparing = Record(v1::OWNERSHIP_STATE_PREPARING, s, t, epoch);
    ASSERT_TRUE(Same(*source.arbiter->CompareAndSwap(kBdf, *active, preparing), preparing));
    auto quiesced = source.hook->Quiesce(kBdf, Fence{epoch, 0}, kTimeout);
    ASSERT_TRUE(quiesced.ok()) << quiesced.status();
    ASSERT_TRUE(source.router->Reroute(kBdf, Fence{epoch, 0}, *messages).ok());
    ASSERT_TRUE(source.arbiter->WriteHandoffRings(kBdf, Fence{epoch, 0}, quiesced->rings).ok());
    auto handoff = Record(v1::OWNERSHIP_STATE_HANDOFF, s, t, epoch);
    ASSERT_TRUE(Same(*source.arbiter->CompareAndSwap(kBdf, preparing, handoff), handoff));
    auto committed = Record(v1::OWNERSHIP_STATE_ACTIVE, t, "", epoch);
    ASSERT_TRUE(Same(*target.arbiter->CompareAndSwap(kBdf, handoff, committed), committed));
    auto rings = target.arbiter->ReadHandoffRings(kBdf, epoch);
    ASSERT_TRUE(rings.ok());
    ASSERT_TRUE(target.hook->Attach(kBdf, Fence{epoch, 0}, *rings).ok());
    ASSERT_TRUE(source.hook->Release(kBdf, Fence{epoch, 0}).ok());
  }

  // A handover on the kernel commit path through the FastPath: the target
  // reserves and arms, the source CASes PREPARING and makes its one HandOff
  // call; the target's kernel commits alone and says so in an event.
  void FastHandover(int from, int to, uint64_t* target_seen) {
    Platform& source = platforms_[from];
    Platform& target = platforms_[to];
    ASSERT_NE(source.fast_path, nullptr);
    std::string s = "node" + std::to_string(from), t = "node" + std::to_string(to);
    auto active = source.arbiter->Read(kBdf);
    ASSERT_TRUE(active.ok());
    const uint64_t epoch = active->epoch() + 1;
    auto messages = target.router->ReserveTargetMessages(kBdf, Fence{epoch, 0}, 5);
    ASSERT_TRUE(messages.ok()) << messages.status();
    auto handoff = Record(v1::OWNERSHIP_STATE_HANDOFF, s, t, epoch);
    ASSERT_TRUE(target.fast_path->Arm(kBdf, Fence{epoch, 0}, handoff).ok());
    auto preparing = Record(v1::OWNERSHIP_STATE_PREPARING, s, t, epoch);
    ASSERT_TRUE(Same(*source.arbiter->CompareAndSwap(kBdf, *active, preparing), preparing));
    HandOffRequest request;
    request.bdf = kBdf;
    request.fence = Fence{epoch, 0};
    request.expected = preparing;
    request.desired = handoff;
    request.target_messages = *messages;
    request.drain_timeout = kTimeout;
    auto result = source.fast_path->HandOff(request);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->reached, HandOffStage::kDoorbellRung);
    EXPECT_TRUE(Same(result->record, handoff));
    EXPECT_EQ(result->previous.size(), 5u);
    EXPECT_EQ(result->quiesce.rings.size(), 1u);
    EXPECT_EQ(result->quiesce.polls_while_quiesced, 0u);
    auto committed = Record(v1::OWNERSHIP_STATE_ACTIVE, t, "", epoch);
    absl::StatusOr<KernelEvents> events = target.fast_path->WaitEvents(*target_seen, kTimeout);
    ASSERT_TRUE(events.ok()) << events.status();
    ASSERT_EQ(events->events.size(), 1u);
    const KernelEvent& event = events->events[0];
    EXPECT_EQ(event.kind, KernelEvent::Kind::kCommitted) << event.message;
    EXPECT_EQ(event.bdf, kBdf);
    EXPECT_EQ(event.epoch, epoch);
    EXPECT_TRUE(Same(event.record, committed));
    EXPECT_EQ(events->last_seq, event.seq);
    *target_seen = events->last_seq;
    EXPECT_TRUE(Same(*target.arbiter->Read(kBdf), committed));
    // The target daemon's Attach, when it learns it: the kernel runs it already.
    auto rings = target.arbiter->ReadHandoffRings(kBdf, epoch);
    ASSERT_TRUE(rings.ok());
    EXPECT_TRUE(target.hook->Attach(kBdf, Fence{epoch, 1}, *rings).ok());
    ASSERT_TRUE(source.hook->Release(kBdf, Fence{epoch, 0}).ok());
  }

  // Stops the traffic and checks its report: every packet once, in order,
  // carried by a node change per handover.
  void ExpectEveryPacketOnceInOrder(size_t handovers) {
    traffic_->StopSending();
    ASSERT_TRUE(traffic_->WaitDelivered(kTimeout));
    TrafficReport report = traffic_->Report();
    for (const auto* d : {&report.inbound, &report.outbound}) {
      EXPECT_EQ(d->unique, d->sent);
      EXPECT_EQ(d->received, d->sent);
      EXPECT_EQ(d->out_of_order, 0u);
      EXPECT_EQ(d->node_changes.size(), handovers);
    }
  }

  std::string path_;
  std::unique_ptr<Machine> machine_;
  std::unique_ptr<DeviceThread> device_;
  std::vector<std::unique_ptr<Kernel>> kernels_;
  std::vector<std::unique_ptr<ControlServer>> servers_;
  std::vector<Platform> platforms_;
  std::unique_ptr<Traffic> traffic_;
};

TEST_F(SimPlatformTest, InventoryDecodesTheNicAndItsRouting) {
  auto nics = platforms_[1].inventory->ListNics();
  ASSERT_TRUE(nics.ok()) << nics.status();
  ASSERT_EQ(nics->size(), 1u);
  const NicInfo& nic = (*nics)[0];
  EXPECT_EQ(nic.bdf, kBdf);
  EXPECT_EQ(nic.vendor_id, 0x8086);
  EXPECT_EQ(nic.device_id, 0x1533);
  EXPECT_EQ(nic.class_code, 0x020000u);
  EXPECT_EQ(nic.netdev, "");  // node1 does not run it
  EXPECT_EQ(nic.interrupts.mode(), v1::INTERRUPT_MODE_MSIX);
  EXPECT_TRUE(nic.interrupts.enabled());
  ASSERT_EQ(nic.interrupts.vectors_size(), 5);
  for (const auto& v : nic.interrupts.vectors()) {
    EXPECT_LE(v.route().destination_apic_id(), 1u);  // node0's CPUs
    EXPECT_FALSE(v.masked());
  }
  EXPECT_EQ(platforms_[0].inventory->GetNic(kBdf)->netdev, kSimNetdev);
  EXPECT_EQ(platforms_[0].inventory->GetNic("0000:04:00.0").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SimPlatformTest, HandoverThroughTheBackendUnderTrafficLosesNothing) {
  TrafficOptions options;
  options.inbound_pps = 20000;
  options.outbound_pps = 20000;
  traffic_ = std::make_unique<Traffic>(*machine_, options);
  traffic_->Start();
  absl::SleepFor(absl::Milliseconds(50));
  Handover(0, 1);
  absl::SleepFor(absl::Milliseconds(50));
  // The table now names node1's CPUs, and node1 runs the interface.
  auto nic = platforms_[0].inventory->GetNic(kBdf);
  for (const auto& v : nic->interrupts.vectors()) {
    EXPECT_GE(v.route().destination_apic_id(), 2u);
  }
  EXPECT_EQ(platforms_[1].inventory->GetNic(kBdf)->netdev, kSimNetdev);
  EXPECT_EQ(platforms_[0].hook->Status(kBdf)->state, HookState::kDetached);
  EXPECT_EQ(platforms_[1].hook->Status(kBdf)->state, HookState::kRunning);
  Handover(1, 0);
  absl::SleepFor(absl::Milliseconds(50));
  ExpectEveryPacketOnceInOrder(/*handovers=*/2);
  EXPECT_EQ(platforms_[0].arbiter->Read(kBdf)->epoch(), 3u);
}

TEST_F(SimPlatformTest, FastPathHandsOverUnderTrafficAndTheTargetKernelCommitsAlone) {
  TrafficOptions options;
  options.inbound_pps = 20000;
  options.outbound_pps = 20000;
  traffic_ = std::make_unique<Traffic>(*machine_, options);
  traffic_->Start();
  uint64_t seen[2] = {0, 0};
  absl::SleepFor(absl::Milliseconds(50));
  FastHandover(0, 1, &seen[1]);
  if (HasFatalFailure()) return;
  EXPECT_EQ(platforms_[1].hook->Status(kBdf)->state, HookState::kRunning);
  EXPECT_EQ(platforms_[0].hook->Status(kBdf)->state, HookState::kDetached);
  absl::SleepFor(absl::Milliseconds(50));
  FastHandover(1, 0, &seen[0]);
  if (HasFatalFailure()) return;
  absl::SleepFor(absl::Milliseconds(50));
  ExpectEveryPacketOnceInOrder(/*handovers=*/2);
  // No new event on node1 since: WaitEvents times out with none.
  auto none = platforms_[1].fast_path->WaitEvents(seen[1], absl::Milliseconds(1));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->events.empty());
  EXPECT_EQ(none->last_seq, seen[1]);
}

TEST_F(SimPlatformTest, FastPathCarriesTheKernelsRefusals) {
  FastPath& target = *platforms_[1].fast_path;
  auto handoff = Record(v1::OWNERSHIP_STATE_HANDOFF, "node0", "node1", 2);
  // No reservation yet.
  EXPECT_EQ(target.Arm(kBdf, Fence{2, 0}, handoff).code(), absl::StatusCode::kFailedPrecondition);
  // A record naming a node the machine lacks.
  EXPECT_EQ(target.Arm(kBdf, Fence{2, 0}, Record(v1::OWNERSHIP_STATE_HANDOFF, "node7", "node1", 2))
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(target.Arm("0000:09:00.0", Fence{2, 0}, handoff).code(),
            absl::StatusCode::kNotFound);
  // A HandOff on a record that is still ACTIVE: the CAS is lost, nothing moved.
  auto messages = platforms_[1].router->ReserveTargetMessages(kBdf, Fence{2, 0}, 5);
  ASSERT_TRUE(messages.ok());
  HandOffRequest request;
  request.bdf = kBdf;
  request.fence = Fence{2, 0};
  request.expected = Record(v1::OWNERSHIP_STATE_PREPARING, "node0", "node1", 2);
  request.desired = handoff;
  request.target_messages = *messages;
  request.drain_timeout = kTimeout;
  auto lost = platforms_[0].fast_path->HandOff(request);
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_EQ(lost->reached, HandOffStage::kNothing);
  EXPECT_TRUE(Same(lost->record, Record(v1::OWNERSHIP_STATE_ACTIVE, "node0", "", 1)));
  EXPECT_EQ(platforms_[0].hook->Status(kBdf)->state, HookState::kRunning);
  // A fence below the highest the source's kernel accepted: refused, and the
  // error names the stage reached.
  ASSERT_TRUE(platforms_[0].hook->Resume(kBdf, Fence{4, 0}).ok());
  auto refused = platforms_[0].fast_path->HandOff(request);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("reached HAND_OFF_STAGE_NOTHING"), std::string::npos)
      << refused.status();
}

TEST_F(SimPlatformTest, ArbiterIsACompareAndSwapOfTheWholeRecord) {
  auto active = platforms_[0].arbiter->Read(kBdf);
  ASSERT_TRUE(active.ok());
  EXPECT_TRUE(Same(*active, Record(v1::OWNERSHIP_STATE_ACTIVE, "node0", "", 1)));
  // Any field differing in `expected` loses, and the answer is the record.
  auto stale = Record(v1::OWNERSHIP_STATE_ACTIVE, "node0", "", 0);
  auto wrong_owner = Record(v1::OWNERSHIP_STATE_ACTIVE, "node1", "", 1);
  auto desired = Record(v1::OWNERSHIP_STATE_PREPARING, "node0", "node1", 2);
  for (const auto& expected : {stale, wrong_owner}) {
    auto after = platforms_[1].arbiter->CompareAndSwap(kBdf, expected, desired);
    ASSERT_TRUE(after.ok());
    EXPECT_TRUE(Same(*after, *active));
  }
  // Seen by the other node's backend at once: one word in shared memory.
  ASSERT_TRUE(Same(*platforms_[0].arbiter->CompareAndSwap(kBdf, *active, desired), desired));
  EXPECT_TRUE(Same(*platforms_[1].arbiter->Read(kBdf), desired));
  EXPECT_EQ(platforms_[0]
                .arbiter->CompareAndSwap(kBdf, desired, Record(v1::OWNERSHIP_STATE_ACTIVE,
                                                               "node9", "", 3))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  v1::QueueRingState ring;
  ring.set_rx_next_to_clean(12);
  ring.set_tx_next_to_use(7);
  ASSERT_TRUE(platforms_[0].arbiter->WriteHandoffRings(kBdf, Fence{2, 0}, {ring}).ok());
  auto read = platforms_[1].arbiter->ReadHandoffRings(kBdf, 2);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ((*read)[0].rx_next_to_clean(), 12u);
  EXPECT_EQ((*read)[0].tx_next_to_use(), 7u);
  EXPECT_EQ(platforms_[1].arbiter->ReadHandoffRings(kBdf, 1).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SimPlatformTest, HookAndRouterFenceStaleEpochs) {
  ASSERT_TRUE(platforms_[0].hook->Quiesce(kBdf, Fence{7, 0}, kTimeout).ok());
  EXPECT_EQ(platforms_[0].hook->Resume(kBdf, Fence{6, 0}).code(),
            absl::StatusCode::kFailedPrecondition);
  auto messages = platforms_[1].router->ReserveTargetMessages(kBdf, Fence{7, 0}, 5);
  ASSERT_TRUE(messages.ok());
  EXPECT_EQ(platforms_[0].router->Reroute(kBdf, Fence{6, 0}, *messages).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(platforms_[0].hook->Status(kBdf)->epoch, 7u);
  // Reroute and Restore put the table back exactly.
  auto before = platforms_[0].router->ReadMessages(kBdf);
  auto previous = platforms_[0].router->Reroute(kBdf, Fence{7, 0}, *messages);
  ASSERT_TRUE(previous.ok()) << previous.status();
  EXPECT_EQ(platforms_[0].router->ReadMessages(kBdf)->at(1).data(), (*messages)[1].data());
  ASSERT_TRUE(platforms_[0].router->Restore(kBdf, Fence{7, 0}, *previous).ok());
  auto after = platforms_[0].router->ReadMessages(kBdf);
  for (size_t i = 0; i < before->size(); ++i) {
    EXPECT_EQ((*after)[i].address(), (*before)[i].address());
    EXPECT_EQ((*after)[i].data(), (*before)[i].data());
  }
  EXPECT_TRUE(platforms_[0].hook->Resume(kBdf, Fence{7, 0}).ok());
}

TEST_F(SimPlatformTest, AbsentKernelIsUnavailable) {
  servers_[1]->Shutdown();
  EXPECT_EQ(platforms_[1].hook->Status(kBdf).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(platforms_[1].fast_path->WaitEvents(0, absl::Milliseconds(1)).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(SimPlatformConfigTest, RefusesMissingPathsUnknownNodesAndForeignCpus) {
  std::string path = TestPath("sim_platform_config");
  ASSERT_TRUE(Machine::Create(path, ::nichandover::sim::TwoNodeSpec()).ok());
  v1::DaemonConfig config;
  config.set_node_id("node1");
  v1::SimPlatformConfig sim;
  EXPECT_EQ(MakeSimPlatform(sim, config).status().code(), absl::StatusCode::kInvalidArgument);
  sim.set_machine_path(path);
  sim.set_kernel_socket(TestPath("none.sock"));
  EXPECT_TRUE(MakeSimPlatform(sim, config).ok());
  config.add_cpus()->set_apic_id(0);  // node0's CPU
  EXPECT_EQ(MakeSimPlatform(sim, config).status().code(), absl::StatusCode::kFailedPrecondition);
  config.set_node_id("node5");
  EXPECT_EQ(MakeSimPlatform(sim, config).status().code(), absl::StatusCode::kNotFound);
}

// Three NICs of two queue pairs, NIC i on node i % 2: the inventory lists
// every NIC with its queues and its five MSI-X vectors, the netdev only where
// the node runs the NIC; ring state travels per queue, one per queue only.
class MultiNicSimPlatformTest : public SimPlatformTest {
 protected:
  void SetUp() override {
    ::nichandover::sim::MachineSpec spec = ::nichandover::sim::TwoNodeSpec();
    spec.nic_count = 3;
    spec.queue_count = 2;
    spec.spread_owners = true;
    StartMachine("sim_platform_multi", spec);
  }
};

TEST_F(MultiNicSimPlatformTest, InventoryListsEveryNicWithItsQueuesAndVectors) {
  auto nics = platforms_[0].inventory->ListNics();
  ASSERT_TRUE(nics.ok()) << nics.status();
  ASSERT_EQ(nics->size(), 3u);
  const char* bdfs[] = {"0000:03:00.0", "0000:04:00.0", "0000:05:00.0"};
  for (int i = 0; i < 3; ++i) {
    const NicInfo& nic = (*nics)[i];
    EXPECT_EQ(nic.bdf, bdfs[i]);
    EXPECT_EQ(nic.queue_count, 2u);
    EXPECT_EQ(nic.interrupts.vectors_size(), 5);
    EXPECT_EQ(nic.netdev, i % 2 == 0 ? SimNetdev(i) : "") << nic.bdf;
  }
  EXPECT_EQ(platforms_[1].inventory->GetNic(bdfs[1])->netdev, SimNetdev(1));
  EXPECT_EQ(platforms_[0].inventory->GetNic("0000:06:00.0").status().code(),
            absl::StatusCode::kNotFound);

  v1::QueueRingState q0, q1;
  q0.set_queue(0);
  q0.set_rx_next_to_clean(3);
  q1.set_queue(1);
  q1.set_tx_next_to_use(9);
  Arbiter& arbiter = *platforms_[0].arbiter;
  EXPECT_EQ(arbiter.WriteHandoffRings(bdfs[2], Fence{2, 0}, {q0}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(arbiter.WriteHandoffRings(bdfs[2], Fence{2, 0}, {q1, q1}).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(arbiter.WriteHandoffRings(bdfs[2], Fence{2, 0}, {q1, q0}).ok());
  auto rings = platforms_[1].arbiter->ReadHandoffRings(bdfs[2], 2);
  ASSERT_TRUE(rings.ok()) << rings.status();
  ASSERT_EQ(rings->size(), 2u);
  EXPECT_EQ((*rings)[0].queue(), 0u);
  EXPECT_EQ((*rings)[0].rx_next_to_clean(), 3u);
  EXPECT_EQ((*rings)[1].queue(), 1u);
  EXPECT_EQ((*rings)[1].tx_next_to_use(), 9u);
  // The other NICs' slots are their own.
  EXPECT_EQ(platforms_[1].arbiter->ReadHandoffRings(bdfs[1], 2).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace sim
}  // namespace platform
}  // namespace nichandover
