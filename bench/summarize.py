#!/usr/bin/env python3
"""Turns bench/handover_bench.sh's raw results into the numbers it prints.

  summarize.py handovers TRAFFIC_JSON HANDOVERS_JSONL RSS_BEFORE_KIB RSS_AFTER_KIB
      TRAFFIC_JSON: nh-sim-traffic's report over all handovers.
      HANDOVERS_JSONL: one `nicctl --json handover` document per line.
      Prints blackout percentiles (as the traffic saw it: per direction, and
      per handover the longer of the two), the daemon's phase durations, the
      totals of lost/duplicated/reordered packets, and the daemons' RSS.
      Exit 1 if a handover did not commit or the traffic did not see every
      handover in both directions.

  summarize.py throughput RUNS_TSV
      RUNS_TSV: "hook offered_pps seconds delivered cpu_ticks lost" per run.
      Prints per hook setting the median delivered rate and the kernel's CPU
      time per packet, and the hook's cost as the difference of the medians.
"""
import json
import os
import statistics
import sys

DIRECTIONS = ("inbound", "outbound")
PHASES = ("OFFERING", "QUIESCING", "REROUTING", "HANDING_OFF", "ATTACHING")


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(rank) - 1]


def line(label, values_us):
    return "  %-22s p50 %8.3f  p90 %8.3f  p99 %8.3f  max %8.3f ms  (n=%d)" % (
        label, percentile(values_us, 50) / 1e3, percentile(values_us, 90) / 1e3,
        percentile(values_us, 99) / 1e3, max(values_us) / 1e3, len(values_us))


def seconds(duration):
    return float(duration.rstrip("s")) if duration else 0.0


def handovers(traffic_path, handovers_path, rss_before, rss_after):
    with open(traffic_path) as f:
        traffic = json.load(f)
    with open(handovers_path) as f:
        docs = [json.loads(l) for l in f if l.strip()]
    ok = True
    committed = [d for d in docs if d.get("phase") == "HANDOVER_PHASE_COMMITTED"]
    if len(committed) != len(docs):
        print("bench: %d of %d handovers did not commit" % (len(docs) - len(committed), len(docs)))
        ok = False
    changes = {name: traffic[name]["handovers"] for name in DIRECTIONS}
    for name in DIRECTIONS:
        if len(changes[name]) != len(docs):
            print("bench: %s traffic saw %d node changes for %d handovers"
                  % (name, len(changes[name]), len(docs)))
            ok = False
    print("blackout, as the traffic saw it (last packet via the old node -> first via the new):")
    per_direction = {name: [c["blackout_us"] for c in changes[name]] for name in DIRECTIONS}
    for name in DIRECTIONS:
        if per_direction[name]:
            print(line(name, per_direction[name]))
    both = [max(i, o) for i, o in zip(per_direction["inbound"], per_direction["outbound"])]
    if both:
        print(line("handover (longer)", both))

    print("phases, as the source daemon recorded them:")
    for phase in PHASES:
        values = [seconds(p["duration"]) * 1e6 for d in committed for p in d["phases"]
                  if p["phase"] == "HANDOVER_PHASE_" + phase]
        if values:
            print(line(phase.lower().replace("_", "-"), values))
    # The daemon's view of the blackout: the source's gates close in
    # QUIESCING; the source ends ATTACHING when the target answers Committed
    # (its attach runs in parallel, so this is a lower bound).
    gated = [sum(seconds(p["duration"]) for p in d["phases"]
                 if p["phase"] in ["HANDOVER_PHASE_" + x for x in PHASES[1:]]) * 1e6
             for d in committed]
    if gated:
        print(line("quiesce..committed", gated))

    print("packets over the whole run:")
    for name in DIRECTIONS:
        d = traffic[name]
        print("  %-9s sent %d, received %d, lost %d, duplicated %d, reordered %d, refused %d"
              % (name, d["sent"], d["unique"], d["lost"], d["duplicated"], d["out_of_order"],
                 d["refused"]))
    print("  device    rx ring full %d, socket drops %d"
          % (traffic["device"]["rx_missed"], traffic["rx_socket_drops"]))
    print("daemon RSS (node0, node1): before %s KiB, after %s KiB" % (rss_before, rss_after))
    return 0 if ok else 1


def throughput(runs_path):
    runs = {}
    with open(runs_path) as f:
        for row in f:
            hook, offered, secs, delivered, ticks, lost = row.split()
            runs.setdefault(hook, []).append(
                (float(offered), float(secs), int(delivered), int(ticks), int(lost)))
    tick_ns = 1e9 / os.sysconf("SC_CLK_TCK")
    medians = {}
    for hook in ("on", "off"):
        if hook not in runs:
            continue
        rates = [d / s for _, s, d, _, _ in runs[hook]]
        costs = [t * tick_ns / d for _, _, d, t, _ in runs[hook] if d]
        lost = sum(r[4] for r in runs[hook])
        medians[hook] = (statistics.median(rates), statistics.median(costs))
        print("  hook %-3s delivered %10.0f pkt/s (median of %d; min %.0f max %.0f), "
              "kernel CPU %6.0f ns/pkt (min %.0f max %.0f), lost %d"
              % (hook, medians[hook][0], len(rates), min(rates), max(rates), medians[hook][1],
                 min(costs), max(costs), lost))
    if "on" in medians and "off" in medians:
        rate_cost = (medians["off"][0] - medians["on"][0]) / medians["off"][0] * 100
        cpu_cost = (medians["on"][1] - medians["off"][1]) / medians["off"][1] * 100
        print("  hook cost: throughput %+.2f %%, kernel CPU per packet %+.2f %%"
              % (rate_cost, cpu_cost))
    return 0


def main(argv):
    if len(argv) == 6 and argv[1] == "handovers":
        return handovers(*argv[2:])
    if len(argv) == 3 and argv[1] == "throughput":
        return throughput(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
