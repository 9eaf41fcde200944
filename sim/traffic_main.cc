// nh-sim-traffic: sequence-numbered traffic in both directions and the sink
// that checks it. Runs for --duration seconds or until SIGTERM/SIGINT, then
// stops sending, waits for packets in flight, and writes the JSON report
// (stdout, or --report FILE).
//
//   nh-sim-traffic --machine P [--pps 10000 | --inbound-pps N --outbound-pps N]
//                  [--duration S] [--report FILE] [--echo] [--realtime-priority N]
//                  [--tick-us 200]
// --tick-us: the generator sends what is due every tick (a burst); the
// blackout the sink measures includes up to one tick, so a benchmark of a
// sub-millisecond blackout wants a finer one (bench/handover_bench.sh --tick-us).
//
// --echo: the node runs an echo of inbound packets (a QEMU guest with
// tests/vm/frame_echo): only inbound traffic is generated and the outbound
// report is the round trip (sim/traffic.h).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "common/log.h"
#include "sim/flags.h"
#include "sim/realtime.h"
#include "sim/traffic.h"

namespace nichandover {
namespace sim {
namespace {

int Main(int argc, char** argv) {
  auto flags = Flags::Parse(argc, argv,
                            {"machine", "pps", "inbound-pps", "outbound-pps", "duration", "report", "echo",
                             "realtime-priority", "tick-us"},
                            /*booleans=*/{"echo"});
  if (!flags.ok() || !flags->Has("machine")) {
    std::fprintf(stderr,
                 "usage: nh-sim-traffic --machine P [--pps N | --inbound-pps N --outbound-pps N]"
                 " [--duration S] [--report FILE] [--echo] [--realtime-priority N] [--tick-us N]\n");
    return 2;
  }
  auto pps = flags->GetNumber("pps", 10000);
  auto in = pps.ok() ? flags->GetNumber("inbound-pps", *pps) : pps;
  auto out = pps.ok() ? flags->GetNumber("outbound-pps", *pps) : pps;
  auto duration = flags->GetNumber("duration", -1);
  // The generator's period: a blackout as the sink measures it includes up
  // to one tick before the gates close (packets go out once per tick).
  TrafficOptions options;
  auto tick_us = flags->GetNumber("tick-us", absl::ToDoubleMicroseconds(options.tick));
  if (!in.ok() || !out.ok() || !duration.ok() || !tick_us.ok() || *in < 0 || *out < 0 ||
      *tick_us < 1 || *tick_us > 1000000) {
    std::fprintf(stderr,
                 "nh-sim-traffic: rates and duration must be numbers >= 0,"
                 " --tick-us 1..1000000\n");
    return 2;
  }
  options.tick = absl::Microseconds(*tick_us);
  auto realtime = ParseRealtimePriority(flags->Get("realtime-priority", "0"));
  if (!realtime.ok()) {
    std::fprintf(stderr, "nh-sim-traffic: %s\n", std::string(realtime.status().message()).c_str());
    return 2;
  }
  SetLogTag("traffic");
  BlockTerminationSignals();
  auto machine = Machine::Open(flags->Get("machine"));
  if (!machine.ok()) {
    NH_LOG(ERROR) << machine.status();
    return 1;
  }
  // One generator/sink per machine: its queues have a single reader each.
  int32_t none = 0;
  std::atomic<int32_t>& owner = (*machine)->layout().traffic_pid;
  if (!owner.compare_exchange_strong(none, getpid())) {
    if (kill(none, 0) == 0) {
      std::fprintf(stderr, "nh-sim-traffic: traffic already runs on this machine as pid %d\n",
                   none);
      return 1;
    }
    owner.store(getpid());  // its last runner died without clearing it
  }
  options.inbound_pps = *in;
  options.outbound_pps = *out;
  options.echo = flags->Has("echo") && flags->Get("echo") != "false";
  Traffic traffic(**machine, options);
  traffic.Start();
  if (absl::Status s = traffic.SetRealtimePriority(*realtime); !s.ok()) {
    NH_LOG(ERROR) << s;
    traffic.Stop();
    owner.store(0);
    return 1;
  }
  WaitForTerminationSignal(*duration);
  traffic.StopSending();
  if (!traffic.WaitDelivered(absl::Seconds(2))) {
    NH_LOG(WARNING) << "packets still missing 2s after sending stopped: counted as lost";
  }
  traffic.Stop();
  std::string json = TrafficReportJson(traffic.Report(), **machine);
  owner.store(0);
  if (flags->Has("report")) {
    FILE* f = std::fopen(flags->Get("report").c_str(), "w");
    if (f == nullptr) {
      NH_LOG(ERROR) << "cannot write " << flags->Get("report");
      std::fputs(json.c_str(), stdout);
      return 1;
    }
    std::fputs(json.c_str(), f);
    std::fclose(f);
  } else {
    std::fputs(json.c_str(), stdout);
  }
  return 0;
}

}  // namespace
}  // namespace sim
}  // namespace nichandover

int main(int argc, char** argv) { return nichandover::sim::Main(argc, argv); }
